import AdminAPI
import Hummingbird

/// `/api/v1/relays`: the relays connected now. They belong to the installation, so every account's
/// admins see the same list, without their secrets.
struct RelaysController {
    let presence: RelayPresence

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { _, _ in try await list() }
    }

    func list() async throws -> Response {
        _ = try AdminSession.require()
        let relays = await presence.online().map { relay in
            Relay(id: relay.id, name: relay.join.name, ipv4: relay.join.ipv4, ipv6: relay.join.ipv6, port: relay.join.port,
                  connectedAt: relay.connectedAt)
        }
        return try answer(Page(data: relays))
    }
}
