import Addresses
package import Foundation
package import Identifiers
package import Persistence
import Policy

/// What an account's clients may reach, kept in memory and brought up to date change by change: a
/// change re-evaluates only the clients it can affect (a membership: that actor's clients; a policy:
/// the clients of its groups' members; a resource: the clients its policies reach), and says who must
/// be told what exactly as two full `AccessSnapshot`s before and after it would (that is the oracle
/// its property test checks it against). Pure: rows and `now` in, notifications out.
package struct AccessView: Sendable {
    package private(set) var data: AccessData
    package private(set) var now: Date
    private var everyone: GroupID?
    /// Each policy's conditions, decoded once; nil when they no longer parse (such a policy grants nothing).
    private var conditions: [PolicyID: [Condition]?] = [:]
    private var policiesByGroup: [GroupID: [PolicyRecord]] = [:]
    private var policiesByResource: [ResourceID: [PolicyRecord]] = [:]
    /// Client → resource → the policies that grant it now.
    private var granting: [DeviceID: [ResourceID: Set<PolicyID>]] = [:]
    /// The authorisations whose policy still grants them and whose own expiry has not come.
    private var valid: Set<AuthorizationRecord> = []
    /// Authorisations revoked although their grant stands (their resource moved or changed address),
    /// until their rows are deleted: the gateway was told once, and deleting them tells nothing more.
    private var withdrawn: Set<AuthorizationID> = []
    /// The first instant after `now` at which time alone may change what the view says (as
    /// `AccessSnapshot.nextChange`); nil when nothing here runs out.
    package private(set) var nextChange: Date?
    /// The next time-window boundary after `now` of each policy that has one, computed when the policy
    /// changes or `now` passes it (a boundary takes calendar arithmetic in the window's time zone, too
    /// slow to redo for every policy at every change).
    private var boundaries: [PolicyID: Date] = [:]
    /// Whether each such policy's time windows hold at `now`: the same for every client, and constant
    /// until the policy's boundary, so worked out once rather than for each client evaluated.
    private var timeHolds: [PolicyID: Bool] = [:]

    package init(_ data: AccessData, now: Date) {
        self.data = data
        self.now = now
        reindexPolicies()
        for client in data.clients { granting[client.id] = grants(for: client) }
        valid = validAuthorizations()
        nextChange = computeNextChange()
    }

    /// Moves the view's clock to `instant`: re-evaluates every client when that reaches `nextChange`,
    /// and otherwise only notes the time (nothing can have changed before it).
    package mutating func advance(to instant: Date) -> (notifications: [AccessNotification], revoked: [AuthorizationID]) {
        guard instant > now else { return ([], []) }
        guard let nextChange, instant >= nextChange else {
            now = instant
            return ([], [])
        }
        return apply(.clock(to: instant))
    }

    /// What evaluating `actor`'s access to `resource` reads, from memory (the repository's
    /// `evaluationInputs` reads the same from the database).
    package func evaluationInputs(actor: ActorID, resource: ResourceID) -> EvaluationInputs {
        let policies = policiesByResource[resource] ?? []
        var names: [GroupID: String] = [:]
        for policy in policies { names[policy.groupID] = data.groups[policy.groupID]?.name }
        if let everyone { names[everyone] = data.groups[everyone]?.name }
        return EvaluationInputs(policies: policies, groupNames: names, memberOf: data.memberships[actor] ?? [], everyone: everyone)
    }

    /// The resources `client` may reach now, with the policies that grant each.
    package func access(of client: DeviceID) -> [ResourceID: Set<PolicyID>] {
        granting[client] ?? [:]
    }

    /// The authorisations of `gateway` that stand now (their policy still grants them, their expiry
    /// has not come), oldest ID first.
    package func standing(ofGateway gateway: DeviceID) -> [AuthorizationRecord] {
        valid.filter { $0.gatewayID == gateway }.sorted { $0.id < $1.id }
    }

    /// Client → the resources some policy grants it now.
    package var visible: [DeviceID: Set<ResourceID>] { granting.mapValues { Set($0.keys) } }

    /// Applies `change` and returns who must be told what, and the authorisations it revoked.
    package mutating func apply(_ change: AccessChange) -> (notifications: [AccessNotification], revoked: [AuthorizationID]) {
        let validBefore = valid
        let resourcesBefore = data.resources
        let clientsBefore = Set(data.clients.map(\.id))
        var affected = affectedClients(change)

        data.apply(change)
        switch change {
        case let .policy(before, after):
            if let before {
                policiesByGroup[before.groupID]?.removeAll { $0.id == before.id }
                policiesByResource[before.resourceID]?.removeAll { $0.id == before.id }
                conditions[before.id] = nil
                refreshTime(before.id, [])
            }
            if let after {
                policiesByGroup[after.groupID, default: []].append(after)
                policiesByResource[after.resourceID, default: []].append(after)
                let decoded = Self.decode(after)
                conditions[after.id] = decoded
                refreshTime(after.id, decoded ?? [])
            }
        case let .group(_, after) where after != nil:
            everyone = data.groups.values.first(where: \.isEveryone)?.id
        case .group, .resource(_, nil), .site:
            reindexPolicies()
        case let .clock(to):
            now = to
            refreshPassedBoundaries()
        case .resource, .membership, .actor, .device, .token, .authorization:
            break
        }
        // A policy's change alters neither memberships nor grants before this point: the same clients.
        if case .policy = change {} else { affected.formUnion(affectedClients(change)) }
        // The resources whose grants the change can alter (nil: any); a client's others stay as they were.
        let scope = touchedResources(change)

        // Each affected client's grants before the change: those in the scope only when there is one
        // (the rest stay as they are). Taken out or copied entry by entry, so that the grants are changed
        // in place rather than copied whole for every client.
        var clients: [DeviceID: Int] = [:]
        for index in data.clients.indices { clients[data.clients[index].id] = clients[data.clients[index].id] ?? index }
        var previous: [DeviceID: [ResourceID: Set<PolicyID>]] = [:]
        for id in affected {
            guard let index = clients[id] else {
                granting[id] = nil
                continue
            }
            let client = data.clients[index]
            if let scope, granting[id] != nil {
                var before: [ResourceID: Set<PolicyID>] = [:]
                for resource in scope {
                    let policies = grants(for: client, resource: resource)
                    before[resource] = granting[id]?[resource]
                    granting[id]?[resource] = policies
                }
                previous[id] = before
            } else {
                previous[id] = granting.removeValue(forKey: id) ?? [:]
                granting[id] = grants(for: client)
            }
        }
        valid = validAuthorizations()
        nextChange = computeNextChange()

        // Who is told what, in the order `AccessSnapshot.changes` tells it.
        var notifications: [AccessNotification] = []
        var revoked: [AuthorizationID] = []
        var filterUpdates = Set<AccessNotification>()
        // Only an authorisation that lost its grant, or whose resource the change touched, has anything to
        // tell; only resource and site changes touch resources.
        let resourcesTouched: Bool = switch change {
        case .resource, .site: true
        default: false
        }
        let told = validBefore.filter { authorization in
            !valid.contains(authorization) || (resourcesTouched && (scope.map { $0.contains(authorization.resourceID) } ?? true))
        }
        // In ID order: positions sorted, not the records (moving thousands of records was most of a sort).
        let toldList = Array(told)
        for position in toldList.indices.sorted(by: { toldList[$0].id < toldList[$1].id }) {
            let authorization = toldList[position]
            func reject() {
                notifications.append(.rejectAccess(gateway: authorization.gatewayID, client: authorization.clientID, resource: authorization.resourceID))
                revoked.append(authorization.id)
            }
            guard valid.contains(authorization) else {
                reject()
                continue
            }
            let old = resourcesBefore[authorization.resourceID]
            let new = data.resources[authorization.resourceID]
            let sameTarget = old != nil && new != nil && old?.address == new?.address && old?.type == new?.type && old?.siteID == new?.siteID
            if !sameTarget {
                reject()
            } else if old?.filters != new?.filters {
                let update = AccessNotification.resourceUpdated(gateway: authorization.gatewayID, resource: authorization.resourceID)
                if filterUpdates.insert(update).inserted { notifications.append(update) }
            }
        }
        for client in affected.sorted() where clientsBefore.contains(client) && clients[client] != nil {
            let before = previous[client] ?? [:]
            let after = granting[client] ?? [:]
            // Resources outside the scope kept their grants and their rows: nothing to tell of them.
            let candidates = scope.map(Array.init) ?? Array(Set(before.keys).union(after.keys))
            let ordered = candidates.sorted()
            for resource in ordered where before[resource] != nil && after[resource] == nil {
                notifications.append(.resourceDeleted(client: client, resource: resource))
            }
            for resource in ordered where after[resource] != nil
                && (before[resource] == nil || !AccessSnapshot.sameView(resourcesBefore[resource], data.resources[resource])) {
                notifications.append(.resourceCreatedOrUpdated(client: client, resource: resource))
            }
        }
        if !revoked.isEmpty {
            let stillGranted = Set(valid.map(\.id))
            for id in revoked where stillGranted.contains(id) { withdrawn.insert(id) }
        }
        if !withdrawn.isEmpty {
            if !revoked.isEmpty { valid = valid.filter { !withdrawn.contains($0.id) } }
            let held = Set(data.authorizations.map(\.id))
            withdrawn.formIntersection(held)
        }
        return (notifications, revoked)
    }

    /// Applies `changes` in order; deleted authorisation rows in a row (the bookkeeping after a
    /// revocation: thousands at once) are taken in one pass.
    package mutating func apply(_ changes: [AccessChange]) -> (notifications: [AccessNotification], revoked: [AuthorizationID]) {
        var notifications: [AccessNotification] = []
        var revoked: [AuthorizationID] = []
        var deletedRows: [AuthorizationRecord] = []
        func take(_ outcome: (notifications: [AccessNotification], revoked: [AuthorizationID])) {
            notifications += outcome.notifications
            revoked += outcome.revoked
        }
        for change in changes {
            if case let .authorization(before?, nil) = change {
                deletedRows.append(before)
                continue
            }
            take(removeAuthorizations(deletedRows))
            deletedRows = []
            take(apply(change))
        }
        take(removeAuthorizations(deletedRows))
        return (notifications, revoked)
    }

    /// Applies the deletion of several authorisation rows: what applying `.authorization(before: row,
    /// after: nil)` for each in turn does and tells (a row that still stood is revoked and its gateway
    /// told), in one pass rather than one pass over every authorisation per row.
    private mutating func removeAuthorizations(_ rows: [AuthorizationRecord]) -> (notifications: [AccessNotification], revoked: [AuthorizationID]) {
        guard !rows.isEmpty else { return ([], []) }
        let ids = Set(rows.map(\.id))
        data.authorizations.removeAll { ids.contains($0.id) }
        var notifications: [AccessNotification] = []
        var revoked: [AuthorizationID] = []
        for row in rows where valid.remove(row) != nil {
            notifications.append(.rejectAccess(gateway: row.gatewayID, client: row.clientID, resource: row.resourceID))
            revoked.append(row.id)
        }
        withdrawn.subtract(ids)
        nextChange = computeNextChange()
        return (notifications, revoked)
    }

    /// The clients whose access `change` can affect, judged on the rows as they are now (the view asks
    /// before and after applying it).
    private func affectedClients(_ change: AccessChange) -> Set<DeviceID> {
        func clients(inAnyOf groups: Set<GroupID>) -> Set<DeviceID> {
            let viaEveryone = everyone.map(groups.contains) ?? false
            var result = Set<DeviceID>()
            for index in data.clients.indices {
                guard let actorID = data.clients[index].actorID, let actor = data.actors[actorID] else { continue }
                if (viaEveryone && actor.type != .serviceAccount) || (data.memberships[actorID].map { !$0.isDisjoint(with: groups) } ?? false) {
                    result.insert(data.clients[index].id)
                }
            }
            return result
        }
        switch change {
        case let .resource(before, after):
            guard let id = before?.id ?? after?.id else { return [] }
            var holding = clients(inAnyOf: Set((policiesByResource[id] ?? []).map(\.groupID)))
            for (client, grants) in granting where grants[id] != nil { holding.insert(client) }
            return holding
        case let .policy(before, after):
            guard let id = before?.id ?? after?.id else { return [] }
            // A client holding the policy holds it for the policy's resource.
            let resources = Set([before?.resourceID, after?.resourceID].compactMap { $0 })
            var holding = clients(inAnyOf: Set([before?.groupID, after?.groupID].compactMap { $0 }))
            for (client, grants) in granting where resources.contains(where: { grants[$0]?.contains(id) == true }) { holding.insert(client) }
            return holding
        case let .group(before, after):
            // A rename changes no access; a deletion takes the group's policies with it.
            guard after == nil, let before else { return [] }
            return clients(inAnyOf: [before.id])
        case let .membership(actor, _, _):
            return Set(data.clients.filter { $0.actorID == actor }.map(\.id))
        case let .actor(before, after):
            let id = before?.id ?? after?.id
            return Set(data.clients.filter { $0.actorID == id }.map(\.id))
        case let .device(before, after):
            return Set([before, after].compactMap { $0 }.filter { $0.kind == .client }.map(\.id))
        case let .token(before, after):
            let id = before?.id ?? after?.id
            return Set(data.clients.filter { $0.tokenID == id }.map(\.id))
        case .authorization:
            return []
        case .site, .clock:
            return Set(data.clients.map(\.id))
        }
    }

    /// The resources whose grants `change` can alter, for every client: a policy's resource (before and
    /// after), a membership's group's resources, a resource itself; nil when it can be any (an actor,
    /// a token or a device changes all its client's grants; time, a group or a site deleted, all).
    private func touchedResources(_ change: AccessChange) -> Set<ResourceID>? {
        switch change {
        case let .policy(before, after):
            return Set([before?.resourceID, after?.resourceID].compactMap { $0 })
        case let .membership(_, group, _):
            return Set((policiesByGroup[group] ?? []).map(\.resourceID))
        case let .resource(before, after):
            return Set([before?.id, after?.id].compactMap { $0 })
        case .authorization:
            return []
        case let .device(before, after):
            // A gateway's row grants nothing; a client's may change all its grants (its address, verified flag, token).
            return [before, after].contains { $0?.kind == .client } ? nil : []
        case .group, .actor, .token, .site, .clock:
            return nil
        }
    }

    /// The groups a client's actor is in, Everyone included for users and admins.
    private func groups(of client: DeviceRecord) -> Set<GroupID> {
        guard let actorID = client.actorID, let actor = data.actors[actorID] else { return [] }
        var groups = data.memberships[actorID] ?? []
        if actor.type != .serviceAccount, let everyone { groups.insert(everyone) }
        return groups
    }

    /// Whether `client` may use its grants at all (actor enabled, token unexpired), and the context its
    /// policies' conditions are judged in.
    private func context(for client: DeviceRecord) -> ConditionContext? {
        guard let actorID = client.actorID, let actor = data.actors[actorID], !actor.disabled,
              let tokenID = client.tokenID, let token = data.tokens[tokenID], token.expiresAt.map({ $0 > now }) ?? true
        else { return nil }
        return ConditionContext(
            sourceAddress: client.lastSeenAddress.flatMap { try? SocketAddress($0, port: 0).ip }, clientVerified: client.verified, now: now)
    }

    /// Whether `policy` grants its resource to a client in `context`.
    private func holds(_ policy: PolicyRecord, _ context: ConditionContext) -> Bool {
        guard !policy.disabled, data.resources[policy.resourceID] != nil else { return false }
        // A condition list that no longer parses grants nothing: never access on a guess.
        guard let conditions = conditions[policy.id] ?? nil else { return false }
        if conditions.isEmpty { return true }
        if timeHolds[policy.id] == false { return false }
        // Time windows are in `timeHolds`; the rest depend on the client.
        return conditions.allSatisfy { condition in
            if case .timeWindows = condition { return true }
            return condition.evaluate(context).holds
        }
    }

    /// What `client` may reach now, resource by resource, with the policies that grant it.
    private func grants(for client: DeviceRecord) -> [ResourceID: Set<PolicyID>] {
        guard let context = context(for: client) else { return [:] }
        var result: [ResourceID: Set<PolicyID>] = [:]
        for group in groups(of: client) {
            for policy in policiesByGroup[group] ?? [] where holds(policy, context) {
                result[policy.resourceID, default: []].insert(policy.id)
            }
        }
        return result
    }

    /// The policies that grant `client` one resource now; nil when none does.
    private func grants(for client: DeviceRecord, resource: ResourceID) -> Set<PolicyID>? {
        guard let context = context(for: client) else { return nil }
        let groups = groups(of: client)
        let granting = Set((policiesByResource[resource] ?? []).filter { groups.contains($0.groupID) && holds($0, context) }.map(\.id))
        return granting.isEmpty ? nil : granting
    }

    private func validAuthorizations() -> Set<AuthorizationRecord> {
        Set(data.authorizations.filter { authorization in
            !withdrawn.contains(authorization.id) && authorization.expiresAt > now && granting[authorization.clientID]?[authorization.resourceID]?.contains(authorization.policyID) == true
        })
    }

    /// As `AccessSnapshot.nextChange`: authorisation and client token expiries, time-window boundaries.
    private mutating func computeNextChange() -> Date? {
        var next: Date?
        func consider(_ instant: Date?) {
            guard let instant, instant > now else { return }
            if next.map({ instant < $0 }) ?? true { next = instant }
        }
        for authorization in data.authorizations { consider(authorization.expiresAt) }
        for client in data.clients { consider(client.tokenID.flatMap { data.tokens[$0]?.expiresAt }) }
        refreshPassedBoundaries()
        for boundary in boundaries.values { consider(boundary) }
        return next
    }

    /// Works out again the time windows of the policies whose boundary `now` has reached.
    private mutating func refreshPassedBoundaries() {
        for (policy, boundary) in boundaries where boundary <= now {
            refreshTime(policy, (conditions[policy] ?? nil) ?? [])
        }
    }

    /// Notes whether `policy`'s time windows hold now, and their next boundary (nothing when it has none).
    private mutating func refreshTime(_ policy: PolicyID, _ decoded: [Condition]) {
        let windows = decoded.filter { if case .timeWindows = $0 { true } else { false } }
        guard !windows.isEmpty else {
            boundaries[policy] = nil
            timeHolds[policy] = nil
            return
        }
        let context = ConditionContext(sourceAddress: nil, clientVerified: nil, now: now)
        timeHolds[policy] = windows.allSatisfy { $0.evaluate(context).holds }
        boundaries[policy] = Self.boundary(windows, after: now)
    }

    /// The first instant after `now` at which one of `conditions` may start or stop holding.
    private static func boundary(_ conditions: [Condition], after now: Date) -> Date? {
        conditions.compactMap { $0.nextChange(after: now) }.min()
    }

    /// Rebuilds the policy indexes after a change that took policies away in bulk (a group, resource
    /// or site deleted). The conditions and boundaries of the policies that remain are kept: their rows
    /// did not change, and a boundary still ahead of `now` is still the next one.
    private mutating func reindexPolicies() {
        everyone = data.groups.values.first(where: \.isEveryone)?.id
        policiesByGroup = Dictionary(grouping: data.policies, by: \.groupID)
        policiesByResource = Dictionary(grouping: data.policies, by: \.resourceID)
        let (decodedBefore, boundariesBefore, holdsBefore) = (conditions, boundaries, timeHolds)
        conditions = [:]
        boundaries = [:]
        timeHolds = [:]
        for policy in data.policies {
            let decoded = decodedBefore[policy.id] ?? Self.decode(policy)
            conditions[policy.id] = .some(decoded)
            guard let decoded, !decoded.isEmpty else { continue }
            if let boundary = boundariesBefore[policy.id], boundary > now, let holds = holdsBefore[policy.id] {
                boundaries[policy.id] = boundary
                timeHolds[policy.id] = holds
            } else {
                refreshTime(policy.id, decoded)
            }
        }
    }

    private static func decode(_ policy: PolicyRecord) -> [Condition]? {
        policy.conditions == "[]" ? [] : try? PolicyConditions.decode(policy.conditions)
    }
}
