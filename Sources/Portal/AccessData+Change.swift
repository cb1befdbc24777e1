import Foundation
package import Identifiers
package import Persistence

extension AccessData {
    /// The rows after `change`, with the schema's cascades (a deleted resource takes its policies and
    /// authorisations, a deleted group its memberships and policies, a deleted actor its memberships,
    /// tokens and devices, a deleted site its resources, tokens and devices; a deleted token leaves its
    /// devices without one). A deleted policy leaves its authorisations: the evaluator deletes them once
    /// their gateways were told.
    package mutating func apply(_ change: AccessChange) {
        switch change {
        case let .resource(before, after):
            if let after {
                resources[after.id] = after
            } else if let before {
                removeResource(before.id)
            }
        case let .policy(before, after):
            if let before { policies.removeAll { $0.id == before.id } }
            if let after { policies.append(after) }
        case let .group(before, after):
            if let after {
                groups[after.id] = after
            } else if let before {
                groups[before.id] = nil
                policies.removeAll { $0.groupID == before.id }
                for actor in memberships.keys { memberships[actor]?.remove(before.id) }
            }
        case let .membership(actor, group, added):
            if added {
                memberships[actor, default: []].insert(group)
            } else {
                memberships[actor]?.remove(group)
            }
        case let .actor(before, after):
            if let after {
                actors[after.id] = after
            } else if let before {
                actors[before.id] = nil
                memberships[before.id] = nil
                tokens = tokens.filter { $0.value.actorID != before.id }
                for client in clients where client.actorID == before.id { removeDevice(client.id) }
            }
        case let .device(before, after):
            if let before { removeDevice(before.id, keepingAuthorizations: after != nil) }
            if let after {
                switch after.kind {
                case .client: clients.append(after)
                case .gateway: gateways.append(after)
                }
            }
        case let .token(before, after):
            if let after {
                tokens[after.id] = after
            } else if let before {
                tokens[before.id] = nil
                for index in clients.indices where clients[index].tokenID == before.id { clients[index].tokenID = nil }
                for index in gateways.indices where gateways[index].tokenID == before.id { gateways[index].tokenID = nil }
            }
        case let .authorization(before, after):
            if let before { authorizations.removeAll { $0.id == before.id } }
            if let after { authorizations.append(after) }
        case let .site(deleted):
            for resource in resources.values where resource.siteID == deleted { removeResource(resource.id) }
            tokens = tokens.filter { $0.value.siteID != deleted }
            for device in clients + gateways where device.siteID == deleted { removeDevice(device.id) }
        case .clock:
            break
        }
    }

    /// The authorisations whose policy is gone (the evaluator deletes them after telling their gateways).
    package var authorizationsWithoutPolicy: [AuthorizationID] {
        let policies = Set(policies.map(\.id))
        return authorizations.filter { !policies.contains($0.policyID) }.map(\.id)
    }

    private mutating func removeResource(_ id: ResourceID) {
        resources[id] = nil
        policies.removeAll { $0.resourceID == id }
        authorizations.removeAll { $0.resourceID == id }
    }

    private mutating func removeDevice(_ id: DeviceID, keepingAuthorizations: Bool = false) {
        clients.removeAll { $0.id == id }
        gateways.removeAll { $0.id == id }
        if !keepingAuthorizations { authorizations.removeAll { $0.clientID == id || $0.gatewayID == id } }
    }
}
