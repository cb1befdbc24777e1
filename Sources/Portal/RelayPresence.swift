import AdminAPI
package import ControlProtocol
package import Foundation
package import Identifiers

/// The relays connected to this portal now: presence from live connections, not a guess from a
/// last-seen time. A relay is online from its accepted `join` until its connection ends.
package actor RelayPresence {
    package struct OnlineRelay: Sendable, Equatable {
        package var id: RelayID
        package var join: RelayJoin
        package var connectedAt: Date
    }

    private var relays: [RelayID: OnlineRelay] = [:]

    package init() {}

    /// Notes a relay that joined; the ID lasts as long as its connection.
    package func connect(_ join: RelayJoin, at now: Date = Date()) -> RelayID {
        let id = RelayID()
        relays[id] = OnlineRelay(id: id, join: join, connectedAt: now)
        return id
    }

    package func disconnect(_ id: RelayID) {
        relays[id] = nil
    }

    /// Online relays, oldest connection first.
    package func online() -> [OnlineRelay] {
        relays.values.sorted { ($0.connectedAt, $0.id) < ($1.connectedAt, $1.id) }
    }
}
