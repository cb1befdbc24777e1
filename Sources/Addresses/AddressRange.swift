/// A network prefix such as 10.0.0.0/8 or fd00::/8: the addresses whose first `prefixLength` bits
/// equal the network's.
package struct AddressRange: Hashable, Sendable, CustomStringConvertible {
    package let network: SocketAddress.IP
    package let prefixLength: Int

    /// Parses "10.0.0.0/8", "fd00::/8", or a single address (a /32 or /128). Host bits must be zero.
    package init(_ text: String) throws(AddressRangeError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let first = parts.first, !first.isEmpty else { throw .malformed(text) }
        let ip: SocketAddress.IP
        do {
            ip = try SocketAddress(String(first), port: 0).ip
        } catch {
            throw .malformed(text)
        }
        let maximum = ip.bitWidth
        var length = maximum
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...maximum).contains(parsed) else {
                throw .prefixLength(text, maximum: maximum)
            }
            length = parsed
        }
        guard ip.masked(to: length) == ip else { throw .hostBitsSet(text) }
        network = ip
        prefixLength = length
    }

    package init(network: SocketAddress.IP, prefixLength: Int) {
        precondition((0...network.bitWidth).contains(prefixLength))
        self.network = network.masked(to: prefixLength)
        self.prefixLength = prefixLength
    }

    package func contains(_ ip: SocketAddress.IP) -> Bool {
        switch (network, ip) {
        case (.v4, .v4), (.v6, .v6): ip.masked(to: prefixLength) == network
        case (.v4, .v6), (.v6, .v4): false
        }
    }

    package var description: String { "\(SocketAddress(ip: network, port: 0).address)/\(prefixLength)" }

    /// The two halves one bit longer (nil for a single address).
    package var halves: (AddressRange, AddressRange)? {
        guard prefixLength < network.bitWidth else { return nil }
        let upper: SocketAddress.IP = switch network {
        case let .v4(value): .v4(value | UInt32(1) << (31 - prefixLength))
        case let .v6(high, low):
            prefixLength < 64 ? .v6(high | UInt64(1) << (63 - prefixLength), low) : .v6(high, low | UInt64(1) << (127 - prefixLength))
        }
        return (AddressRange(network: network, prefixLength: prefixLength + 1), AddressRange(network: upper, prefixLength: prefixLength + 1))
    }

    /// This range without `addresses`: the fewest prefixes that cover the rest (at most one per bit of
    /// the prefix for each address taken out). A client routes its resources into its tunnel this way,
    /// leaving out the addresses its tunnel itself travels to.
    package func excluding(_ addresses: [SocketAddress.IP]) -> [AddressRange] {
        let inside = addresses.filter(contains)
        guard !inside.isEmpty else { return [self] }
        guard let (lower, upper) = halves else { return [] }
        return lower.excluding(inside) + upper.excluding(inside)
    }
}

package enum AddressRangeError: Error, Equatable, CustomStringConvertible {
    /// Not ADDRESS or ADDRESS/PREFIX.
    case malformed(String)
    /// The prefix length is out of range for the family.
    case prefixLength(String, maximum: Int)
    /// Bits after the prefix are set (10.0.0.1/8): probably a typo for the network.
    case hostBitsSet(String)

    package var description: String {
        switch self {
        case let .malformed(text): "\"\(text)\" is not an address range like 10.0.0.0/8 or fd00::/8"
        case let .prefixLength(text, maximum): "\"\(text)\": prefix length must be 0-\(maximum)"
        case let .hostBitsSet(text): "\"\(text)\": bits after the prefix must be zero"
        }
    }
}

extension SocketAddress.IP {
    /// 32 or 128.
    package var bitWidth: Int {
        switch self {
        case .v4: 32
        case .v6: 128
        }
    }

    /// The address with every bit after the first `length` cleared.
    package func masked(to length: Int) -> SocketAddress.IP {
        switch self {
        case let .v4(value):
            return .v4(length == 0 ? 0 : value & ~UInt32(0) << (32 - length))
        case let .v6(high, low):
            let highMask: UInt64 = length >= 64 ? ~0 : (length == 0 ? 0 : ~UInt64(0) << (64 - length))
            let lowMask: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~UInt64(0) << (128 - length))
            return .v6(high & highMask, low & lowMask)
        }
    }

    /// For an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d) IPv6 address, the IPv4 address
    /// it carries. Peer checks look through both forms (relay CVEs came from forgetting them).
    package var embeddedIPv4: SocketAddress.IP? {
        guard case let .v6(high, low) = self, high == 0 else { return nil }
        if low >> 32 == 0xFFFF { return .v4(UInt32(truncatingIfNeeded: low)) }
        if low >> 32 == 0 && low > 1 { return .v4(UInt32(truncatingIfNeeded: low)) }  // not :: or ::1
        return nil
    }
}
