package import Addresses

/// Relayed ports held for a later Allocate under a RESERVATION-TOKEN (RFC 8656 section 7.2 and 18.9):
/// an Allocate with EVEN-PORT and the R bit gets an even port, and the next-higher port of the same
/// families is kept here for `lifetime` (the RFC suggests about 30 seconds), for the RTCP allocation
/// that names the token. The port stays taken in the `PortAllocator` while reserved; the owner releases
/// it when the reservation expires unused.
package struct ReservationTable: Sendable {
    package struct Reservation: Equatable, Sendable {
        package var port: UInt16
        /// The relayed IPs (one per family) the port is reserved on.
        package var ips: [SocketAddress.IP]
        package var expiry: Duration
    }

    /// RFC 8656 section 7.2: "about 30 seconds".
    package static let defaultLifetime: Duration = .seconds(30)

    package let lifetime: Duration
    private var reservations: [[UInt8]: Reservation] = [:]

    package init(lifetime: Duration = Self.defaultLifetime) {
        self.lifetime = lifetime
    }

    package var count: Int { reservations.count }

    /// Holds `port` on `ips` under a fresh 8-byte token, which it returns.
    package mutating func reserve(port: UInt16, ips: [SocketAddress.IP], now: TURNTime, random: inout some RandomNumberGenerator) -> [UInt8] {
        var token: [UInt8]
        repeat {
            token = (0..<8).map { _ in UInt8.random(in: .min ... .max, using: &random) }
        } while reservations[token] != nil
        reservations[token] = Reservation(port: port, ips: ips, expiry: now.monotonic + lifetime)
        return token
    }

    /// Takes the reservation of `token` if it is known and has not expired (the port passes to the
    /// caller's allocation).
    package mutating func redeem(_ token: [UInt8], now: TURNTime) -> Reservation? {
        guard let reservation = reservations[token], reservation.expiry > now.monotonic else { return nil }
        reservations[token] = nil
        return reservation
    }

    /// Drops the reservations that expired unused and returns their ports, for the caller to release.
    package mutating func removeExpired(now: TURNTime) -> [UInt16] {
        let expired = reservations.filter { $0.value.expiry <= now.monotonic }
        for token in expired.keys { reservations[token] = nil }
        return expired.values.map(\.port)
    }
}
