package import Addresses

/// Picks a device's tunnel addresses from its account's ranges (portal spec, "device"): free in the
/// account, never the range's first or last address, and never inside the ranges clients draw DNS
/// proxy addresses from (client spec), whatever ranges the account chose.
package enum TunnelAddresses {
    /// The ranges a client allocates DNS proxy addresses from (gateway spec, "DNS resources").
    package static let proxyRanges: [AddressRange] = [
        AddressRange(network: .v4(0x6460_0000), prefixLength: 11),  // 100.96.0.0/11
        AddressRange(network: .v6(0xFD00_6761_7465_8000, 0), prefixLength: 64),  // fd00:6761:7465:8000::/64
    ]

    /// A free address of `range`, or nil when none is left. Random draws first (a sparse range is
    /// almost always hit at once); then, for a crowded one, a scan from a random start.
    package static func pick(in range: AddressRange, taken: Set<SocketAddress.IP>,
                             using generator: inout some RandomNumberGenerator) -> SocketAddress.IP?
    {
        let hostBits = range.network.bitWidth - range.prefixLength
        // Offsets 1...last-1: the network's first and last addresses are never handed out.
        let last: UInt128 = hostBits >= 128 ? UInt128.max : (UInt128(1) << hostBits) - 1
        guard last >= 2 else { return nil }
        func usable(_ offset: UInt128) -> SocketAddress.IP? {
            let ip = address(range.network, plus: offset)
            guard !taken.contains(ip), !proxyRanges.contains(where: { $0.contains(ip) }) else { return nil }
            return ip
        }
        for _ in 0..<64 {
            if let ip = usable(UInt128.random(in: 1...(last - 1), using: &generator)) { return ip }
        }
        // Crowded: walk at most a million addresses from a random start (ranges that small are scanned whole).
        let span = last - 1
        let start = UInt128.random(in: 0..<span, using: &generator)
        for step in 0..<min(span, 1 << 20) {
            if let ip = usable(1 + (start + step) % span) { return ip }
        }
        return nil
    }

    static func address(_ network: SocketAddress.IP, plus offset: UInt128) -> SocketAddress.IP {
        switch network {
        case let .v4(value):
            return .v4(value &+ UInt32(truncatingIfNeeded: offset))
        case let .v6(high, low):
            let sum = (UInt128(high) << 64 | UInt128(low)) &+ offset
            return .v6(UInt64(truncatingIfNeeded: sum >> 64), UInt64(truncatingIfNeeded: sum))
        }
    }
}
