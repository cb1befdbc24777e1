package import Addresses
package import Tunnel
package import BPFMaps

/// `KernelRule` in the layouts of `gatehouse_maps.h` (`gateway_rule_key`, `gateway_rule`), both ways:
/// the session actors write entries with it and `GET /rules` reads them back with it.
package enum KernelRuleLayout {
    /// The trie key of a rule: family, client address, destination prefix (bits past it zero).
    package static func key(_ rule: KernelRule) -> gateway_rule_key {
        var key = gateway_rule_key()
        let network = rule.destination.network.masked(to: rule.destination.prefixLength)
        key.prefixlen = UInt32(GATEWAY_KEY_FIXED_BITS) + UInt32(rule.destination.prefixLength)
        key.family = UInt8(rule.client.bitWidth == 32 ? GATEWAY_FAMILY_IPV4 : GATEWAY_FAMILY_IPV6)
        withUnsafeMutableBytes(of: &key.client) { rule.client.storeZeroPadded(into: $0) }
        withUnsafeMutableBytes(of: &key.destination) { network.storeZeroPadded(into: $0) }
        return key
    }

    /// The key the kernel looks up for a packet from `source` to `destination`.
    package static func packetKey(source: SocketAddress.IP, destination: SocketAddress.IP) -> gateway_rule_key {
        return key(KernelRule(client: source, destination: AddressRange(network: destination, prefixLength: destination.bitWidth), ports: RulePorts()))
    }

    /// The entry's value: flags and port ranges (at most `GATEWAY_PORT_RANGES` each, as the compiler
    /// bounds them).
    package static func value(_ ports: RulePorts) -> gateway_rule {
        var value = gateway_rule()
        value.flags = UInt8(GATEWAY_RULE_CONFIGURED)
        if ports.allowsAll { value.flags |= UInt8(GATEWAY_RULE_ALLOW_ALL) }
        if ports.icmp { value.flags |= UInt8(GATEWAY_RULE_ICMP) }
        let capacity = Int(GATEWAY_PORT_RANGES)
        precondition(ports.tcp.count <= capacity && ports.udp.count <= capacity, "the compiler bounds ranges per entry")
        value.tcp_count = UInt8(ports.tcp.count)
        value.udp_count = UInt8(ports.udp.count)
        withUnsafeMutableBytes(of: &value.tcp) { writeRanges(ports.tcp, to: $0) }
        withUnsafeMutableBytes(of: &value.udp) { writeRanges(ports.udp, to: $0) }
        return value
    }

    /// A kernel entry read back as a rule; nil for bytes no writer of ours produces.
    package static func rule(_ key: gateway_rule_key, _ value: gateway_rule) -> KernelRule? {
        let fixed = UInt32(GATEWAY_KEY_FIXED_BITS)
        let family = Int32(key.family)
        guard key.prefixlen >= fixed, value.flags & UInt8(GATEWAY_RULE_CONFIGURED) != 0 else { return nil }
        let length = Int(key.prefixlen - fixed)
        let isV4 = family == GATEWAY_FAMILY_IPV4
        guard isV4 ? length <= 32 : (family == GATEWAY_FAMILY_IPV6 && length <= 128),
              let client = withUnsafeBytes(of: key.client, { SocketAddress.IP(zeroPadded: $0, isV4: isV4) }),
              let destination = withUnsafeBytes(of: key.destination, { SocketAddress.IP(zeroPadded: $0, isV4: isV4) }) else { return nil }
        var ports = RulePorts()
        ports.allowsAll = value.flags & UInt8(GATEWAY_RULE_ALLOW_ALL) != 0
        ports.icmp = value.flags & UInt8(GATEWAY_RULE_ICMP) != 0
        ports.tcp = withUnsafeBytes(of: value.tcp) { readRanges($0, count: Int(value.tcp_count)) }
        ports.udp = withUnsafeBytes(of: value.udp) { readRanges($0, count: Int(value.udp_count)) }
        return KernelRule(client: client, destination: AddressRange(network: destination, prefixLength: length), ports: ports)
    }

    private static func writeRanges(_ ranges: [ClosedRange<UInt16>], to bytes: UnsafeMutableRawBufferPointer) {
        for (index, range) in ranges.enumerated() {
            bytes.storeBytes(of: range.lowerBound, toByteOffset: index * 4, as: UInt16.self)
            bytes.storeBytes(of: range.upperBound, toByteOffset: index * 4 + 2, as: UInt16.self)
        }
    }

    private static func readRanges(_ bytes: UnsafeRawBufferPointer, count: Int) -> [ClosedRange<UInt16>] {
        (0..<min(count, Int(GATEWAY_PORT_RANGES))).compactMap { index in
            let low = bytes.loadUnaligned(fromByteOffset: index * 4, as: UInt16.self)
            let high = bytes.loadUnaligned(fromByteOffset: index * 4 + 2, as: UInt16.self)
            return low <= high ? low...high : nil
        }
    }
}
