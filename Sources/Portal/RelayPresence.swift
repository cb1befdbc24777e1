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
    /// Each relay's token and connection, to close it when the token is revoked.
    private var connections: [RelayID: (token: TokenID, mailbox: Mailbox)] = [:]

    package init() {}

    /// Notes a relay that joined; the ID lasts as long as its connection.
    package func connect(_ join: RelayJoin, at now: Date = Date(), token: TokenID? = nil, mailbox: Mailbox? = nil) -> RelayID {
        let id = RelayID()
        relays[id] = OnlineRelay(id: id, join: join, connectedAt: now)
        if let token, let mailbox { connections[id] = (token, mailbox) }
        return id
    }

    package func disconnect(_ id: RelayID) {
        relays[id] = nil
        connections[id] = nil
    }

    /// Closes the connections of relays whose token is no longer among `tokens` (revoked by the
    /// operator, direct to the database); returns how many.
    package func closeRevoked(keeping tokens: Set<TokenID>) -> Int {
        let revoked = connections.filter { !tokens.contains($0.value.token) }
        for (id, connection) in revoked {
            connection.mailbox.close("its relay token was revoked")
            relays[id] = nil
            connections[id] = nil
        }
        return revoked.count
    }

    /// Online relays, oldest connection first.
    package func online() -> [OnlineRelay] {
        relays.values.sorted { ($0.connectedAt, $0.id) < ($1.connectedAt, $1.id) }
    }
}
