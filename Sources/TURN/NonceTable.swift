package import Addresses

/// Nonces handed out in 401 and 438 responses (RFC 8489 section 9.2), each bound to the client's
/// transport address, valid for a bounded number of uses and a bounded time. The table is the only
/// state the relay keeps for a client that has not authenticated, so it is bounded: when full, the
/// oldest nonce goes.
package struct NonceTable: Sendable {
    package struct Limits: Sendable {
        package var lifetime: Duration = .seconds(3600)
        package var uses = 10_000
        package var capacity = 65_536

        package init() {}
    }

    private struct Entry {
        var nonce: String
        var expiry: Duration
        var usesLeft: Int
    }

    package let limits: Limits
    private var entries: [SocketAddress: Entry] = [:]
    /// Issue order, for evicting the oldest; may hold keys whose entry was replaced or removed.
    private var order: [SocketAddress] = []
    private var orderStart = 0

    package init(limits: Limits = Limits()) {
        self.limits = limits
    }

    package var count: Int { entries.count }

    /// A fresh nonce for `client`, replacing any it had. `random` supplies 12 bytes of randomness.
    package mutating func issue(for client: SocketAddress, now: TURNTime, random: inout some RandomNumberGenerator) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12)
        for _ in 0..<12 { bytes.append(UInt8.random(in: .min ... .max, using: &random)) }
        let nonce = bytes.map { byte in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]], as: UTF8.self)
        }.joined()
        if entries[client] == nil {
            order.append(client)
            evictIfFull()
        }
        entries[client] = Entry(nonce: nonce, expiry: now.monotonic + limits.lifetime, usesLeft: limits.uses)
        return nonce
    }

    /// Whether `nonce` is the current, unexpired, not used-up nonce of `client`; counts one use.
    package mutating func use(_ nonce: String, for client: SocketAddress, now: TURNTime) -> Bool {
        guard var entry = entries[client], entry.nonce == nonce, entry.expiry > now.monotonic, entry.usesLeft > 0 else {
            return false
        }
        entry.usesLeft -= 1
        entries[client] = entry
        return true
    }

    /// Drops expired nonces.
    package mutating func removeExpired(now: TURNTime) {
        entries = entries.filter { $0.value.expiry > now.monotonic }
        compactOrder()
    }

    private mutating func evictIfFull() {
        while entries.count >= limits.capacity && orderStart < order.count {
            let oldest = order[orderStart]
            orderStart += 1
            entries[oldest] = nil
        }
        compactOrder()
    }

    private mutating func compactOrder() {
        if orderStart > 1024 && orderStart * 2 > order.count {
            order = order[orderStart...].filter { entries[$0] != nil }
            orderStart = 0
        }
    }
}
