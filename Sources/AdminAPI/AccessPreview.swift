package import Identifiers

/// The answer to a write made with `?dry_run=true`: the access it would grant and revoke, worked out
/// by the same incremental path as the real write, which is rolled back. Clients (with the actor they
/// belong to) gain, lose or see changed resources, through the policies named; gateways would be told
/// to drop authorisations or to take new filters.
package struct AccessPreview: APIObject, Equatable {
    /// A client's access to a resource, and the policies that grant it (that granted it, for a loss).
    package struct Access: APIObject, Equatable, Hashable {
        package var clientID: DeviceID
        package var client: String
        package var actorID: ActorID?
        package var actor: String?
        package var resourceID: ResourceID
        package var resource: String?
        package var policies: [PolicyID]

        package init(clientID: DeviceID, client: String, actorID: ActorID?, actor: String?, resourceID: ResourceID, resource: String?,
                     policies: [PolicyID]) {
            self.clientID = clientID
            self.client = client
            self.actorID = actorID
            self.actor = actor
            self.resourceID = resourceID
            self.resource = resource
            self.policies = policies
        }

        enum CodingKeys: String, CodingKey {
            case client, actor, resource, policies
            case clientID = "client_id"
            case actorID = "actor_id"
            case resourceID = "resource_id"
        }

        package static let schema = ObjectSchema([
            .init("client_id", .id(noun: "client"), required: true), .init("client", .string, required: true),
            .init("actor_id", .id(noun: "actor")), .init("actor", .string),
            .init("resource_id", .id(noun: "resource"), required: true),
            .init("resource", .string, description: "the resource's name; absent when the write deletes it"),
            .init("policies", .list(of: .id(noun: "policy"), maximum: nil), required: true),
        ])
    }

    /// What a gateway would be told about one resource: drop a client's authorisation, or take new filters.
    package struct GatewayChange: APIObject, Equatable, Hashable {
        package var gatewayID: DeviceID
        package var clientID: DeviceID?
        package var resourceID: ResourceID

        package init(gatewayID: DeviceID, clientID: DeviceID?, resourceID: ResourceID) {
            self.gatewayID = gatewayID
            self.clientID = clientID
            self.resourceID = resourceID
        }

        enum CodingKeys: String, CodingKey {
            case gatewayID = "gateway_id"
            case clientID = "client_id"
            case resourceID = "resource_id"
        }

        package static let schema = ObjectSchema([
            .init("gateway_id", .id(noun: "gateway"), required: true), .init("client_id", .id(noun: "client")),
            .init("resource_id", .id(noun: "resource"), required: true),
        ])
    }

    /// Always true: nothing was written.
    package var dryRun = true
    package var gains: [Access] = []
    package var losses: [Access] = []
    /// Resources a client keeps but would see changed (address, name, filters).
    package var updates: [Access] = []
    package var rejectedAuthorizations: [GatewayChange] = []
    package var filterUpdates: [GatewayChange] = []

    package init() {}

    enum CodingKeys: String, CodingKey {
        case gains, losses, updates
        case dryRun = "dry_run"
        case rejectedAuthorizations = "rejected_authorizations"
        case filterUpdates = "filter_updates"
    }

    package static let schema = ObjectSchema([
        .init("dry_run", .boolean, required: true),
        .init("gains", .list(of: .object(Access.schema), maximum: nil), required: true),
        .init("losses", .list(of: .object(Access.schema), maximum: nil), required: true),
        .init("updates", .list(of: .object(Access.schema), maximum: nil), required: true),
        .init("rejected_authorizations", .list(of: .object(GatewayChange.schema), maximum: nil), required: true),
        .init("filter_updates", .list(of: .object(GatewayChange.schema), maximum: nil), required: true),
    ])
}
