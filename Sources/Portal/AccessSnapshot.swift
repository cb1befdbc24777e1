import Addresses
package import Foundation
package import Persistence
package import Identifiers
package import Policy

/// Who must be told what after a change (portal spec, "Live changes"); what the realtime API pushes.
package enum AccessNotification: Hashable, Sendable, CustomStringConvertible {
    /// The gateway must stop accepting the client for the resource.
    case rejectAccess(gateway: DeviceID, client: DeviceID, resource: ResourceID)
    /// Nothing grants the client the resource any more.
    case resourceDeleted(client: DeviceID, resource: ResourceID)
    /// The client gained the resource, or something it shows of it changed.
    case resourceCreatedOrUpdated(client: DeviceID, resource: ResourceID)
    /// Only the filters changed: the gateway gets them and keeps the authorisations.
    case resourceUpdated(gateway: DeviceID, resource: ResourceID)

    package var description: String {
        switch self {
        case let .rejectAccess(gateway, client, resource): "reject_access(gateway: \(gateway), client: \(client), resource: \(resource))"
        case let .resourceDeleted(client, resource): "resource_deleted(client: \(client), resource: \(resource))"
        case let .resourceCreatedOrUpdated(client, resource): "resource_created_or_updated(client: \(client), resource: \(resource))"
        case let .resourceUpdated(gateway, resource): "resource_updated(gateway: \(gateway), resource: \(resource))"
        }
    }
}

/// What every connected client of an account may reach at one instant, and which authorisations still
/// stand. Pure: built from `AccessData` and `now`; two snapshots, before and after a change, say who
/// must be told what, whatever the change was, so that no kind of change can be forgotten.
package struct AccessSnapshot: Sendable {
    /// Client → the resources some policy grants it now.
    package private(set) var visible: [DeviceID: Set<ResourceID>] = [:]
    /// (client, resource) → the policies that grant it.
    private var granting: [Pair: Set<PolicyID>] = [:]
    package private(set) var resources: [ResourceID: ResourceRecord]
    /// The authorisations whose policy still grants them and whose own expiry has not come.
    package private(set) var validAuthorizations: Set<AuthorizationRecord> = []
    /// The first instant after this one at which time alone may change what the snapshot says: a
    /// client token's expiry, an authorisation's expiry, the start or end of a policy's time window.
    /// Nil when nothing here runs out.
    package private(set) var nextChange: Date?

    private struct Pair: Hashable {
        var client: DeviceID
        var resource: ResourceID
    }

    package init(_ data: AccessData, now: Date) {
        resources = data.resources
        let everyone = data.groups.values.first(where: \.isEveryone)?.id
        let policiesByGroup = Dictionary(grouping: data.policies.filter { !$0.disabled }, by: \.groupID)
        // Each policy's conditions are decoded once, not once per client; nil when they no longer parse.
        var conditionsByPolicy: [PolicyID: [Condition]?] = [:]
        for policy in data.policies where !policy.disabled {
            conditionsByPolicy[policy.id] = policy.conditions == "[]" ? [] : try? PolicyConditions.decode(policy.conditions)
        }
        for client in data.clients {
            visible[client.id] = []
            guard let actorID = client.actorID, let actor = data.actors[actorID], !actor.disabled,
                  let tokenID = client.tokenID, let token = data.tokens[tokenID], token.expiresAt.map({ $0 > now }) ?? true
            else { continue }
            var groups = data.memberships[actor.id] ?? []
            if actor.type != .serviceAccount, let everyone { groups.insert(everyone) }
            let context = ConditionContext(
                sourceAddress: client.lastSeenAddress.flatMap { try? SocketAddress($0, port: 0).ip }, clientVerified: client.verified, now: now)
            for group in groups {
                for policy in policiesByGroup[group] ?? [] where data.resources[policy.resourceID] != nil {
                    // A condition list that no longer parses grants nothing: never access on a guess.
                    guard let conditions = conditionsByPolicy[policy.id] ?? nil, conditions.allSatisfy({ $0.evaluate(context).holds })
                    else { continue }
                    visible[client.id, default: []].insert(policy.resourceID)
                    granting[Pair(client: client.id, resource: policy.resourceID), default: []].insert(policy.id)
                }
            }
        }
        for authorization in data.authorizations
        where authorization.expiresAt > now
            && granting[Pair(client: authorization.clientID, resource: authorization.resourceID)]?.contains(authorization.policyID) == true {
            validAuthorizations.insert(authorization)
        }
        var instants: [Date] = data.authorizations.map(\.expiresAt)
        instants += data.clients.compactMap { $0.tokenID.flatMap { data.tokens[$0]?.expiresAt } }
        for case let conditions? in conditionsByPolicy.values {
            instants += conditions.compactMap { $0.nextChange(after: now) }
        }
        nextChange = instants.filter { $0 > now }.min()
    }

    /// The notifications that take the clients and gateways from `before` to `after`, and the
    /// authorisations to delete because they were revoked.
    package static func changes(from before: AccessSnapshot, to after: AccessSnapshot) -> (notifications: [AccessNotification], revoked: [AuthorizationID]) {
        var notifications: [AccessNotification] = []
        var revoked: [AuthorizationID] = []
        var filterUpdates = Set<AccessNotification>()
        for authorization in before.validAuthorizations.sorted(by: { $0.id < $1.id }) {
            let old = before.resources[authorization.resourceID]
            let new = after.resources[authorization.resourceID]
            let sameTarget = old != nil && new != nil && old?.address == new?.address && old?.type == new?.type && old?.siteID == new?.siteID
            if !after.validAuthorizations.contains(authorization) || !sameTarget {
                notifications.append(.rejectAccess(gateway: authorization.gatewayID, client: authorization.clientID, resource: authorization.resourceID))
                revoked.append(authorization.id)
            } else if old?.filters != new?.filters {
                let update = AccessNotification.resourceUpdated(gateway: authorization.gatewayID, resource: authorization.resourceID)
                if filterUpdates.insert(update).inserted { notifications.append(update) }
            }
        }
        for client in after.visible.keys.sorted() {
            // A client that joined during the change gets everything in its `init`.
            guard let had = before.visible[client], let has = after.visible[client] else { continue }
            for resource in had.subtracting(has).sorted() {
                notifications.append(.resourceDeleted(client: client, resource: resource))
            }
            for resource in has.sorted()
            where !had.contains(resource) || !Self.sameView(before.resources[resource], after.resources[resource]) {
                notifications.append(.resourceCreatedOrUpdated(client: client, resource: resource))
            }
        }
        return (notifications, revoked)
    }

    /// Whether a client would show the resource the same way (everything but when it was created).
    static func sameView(_ lhs: ResourceRecord?, _ rhs: ResourceRecord?) -> Bool {
        guard let lhs, let rhs else { return lhs == nil && rhs == nil }
        return lhs.name == rhs.name && lhs.type == rhs.type && lhs.address == rhs.address && lhs.addressDescription == rhs.addressDescription
            && lhs.filters == rhs.filters && lhs.siteID == rhs.siteID && lhs.ipStack == rhs.ipStack
    }
}

/// A policy's conditions as stored: a JSON array of condition texts.
package enum PolicyConditions {
    package static func decode(_ json: String) throws -> [Condition] {
        let texts = try JSONDecoder().decode([String].self, from: Data(json.utf8))
        return try texts.map { text in try Condition(text) }
    }

    package static func encode(_ conditions: [Condition]) -> String {
        let texts = conditions.map(\.description)
        return (try? String(decoding: JSONEncoder().encode(texts), as: UTF8.self)) ?? "[]"
    }
}
