package import Addresses
package import WireGuard

/// What one rule lets through: everything, or ICMP and lists of TCP and UDP port ranges.
package struct RulePorts: Hashable, Sendable {
    package var allowsAll = false
    package var icmp = false
    package var tcp: [ClosedRange<UInt16>] = []
    package var udp: [ClosedRange<UInt16>] = []
    /// Whether ranges were joined across gaps to fit a kernel entry's bound: the kernel then lets
    /// through a little more than the policy (never less); user space stays exact.
    package var widened = false

    package init(allowsAll: Bool = false, icmp: Bool = false, tcp: [ClosedRange<UInt16>] = [], udp: [ClosedRange<UInt16>] = []) {
        self.allowsAll = allowsAll
        self.icmp = icmp
        self.tcp = tcp
        self.udp = udp
    }

    /// The mark of an address family with no resource (the compiler's entry at /0): nothing passes.
    package var allowsNothing: Bool { !allowsAll && !icmp && tcp.isEmpty && udp.isEmpty }

    package func allows(protocolNumber: UInt8, port: UInt16) -> Bool {
        if allowsAll { return true }
        switch protocolNumber {
        case 1, 58: return icmp
        case 6: return tcp.contains { $0.contains(port) }
        case 17: return udp.contains { $0.contains(port) }
        default: return false
        }
    }
}

/// A client's rules as the data plane checks them in user space (gateway spec, "Sessions and
/// enforcement"): for each destination prefix the client may reach, what passes. The longest prefix
/// holding an address decides (the compiler gives each prefix the filters of every prefix covering it),
/// as the kernel's trie does.
package struct AccessRules: Sendable, Equatable {
    /// Longest prefixes first; each with the index of its flow label (-1: none).
    private let rules: [(destination: AddressRange, ports: RulePorts, label: Int)]
    /// The same per address family as one table per prefix length, longest first: a lookup masks the
    /// address to each length in turn (a handful of hash lookups, however many resources there are).
    private let tables: (v4: [(length: Int, entries: [SocketAddress.IP: Int])], v6: [(length: Int, entries: [SocketAddress.IP: Int])])

    package init(_ rules: [(destination: AddressRange, ports: RulePorts)]) {
        self.init(labelled: rules.map { ($0.destination, $0.ports, -1) })
    }

    /// Rules with the index of the label their flows are logged under.
    package init(labelled rules: [(destination: AddressRange, ports: RulePorts, label: Int)]) {
        self.rules = rules.sorted { $0.destination.prefixLength > $1.destination.prefixLength }
        var v4: [Int: [SocketAddress.IP: Int]] = [:]
        var v6: [Int: [SocketAddress.IP: Int]] = [:]
        for (index, rule) in self.rules.enumerated() {
            let length = rule.destination.prefixLength
            let key = rule.destination.network.masked(to: length)
            // The first of equal prefixes wins, as the linear order would have it.
            if case .v4 = key {
                if v4[length]?[key] == nil { v4[length, default: [:]][key] = index }
            } else if v6[length]?[key] == nil {
                v6[length, default: [:]][key] = index
            }
        }
        tables = (v4.sorted { $0.key > $1.key }.map { ($0.key, $0.value) }, v6.sorted { $0.key > $1.key }.map { ($0.key, $0.value) })
    }

    package static func == (left: AccessRules, right: AccessRules) -> Bool {
        left.rules.count == right.rules.count
            && zip(left.rules, right.rules).allSatisfy { $0.destination == $1.destination && $0.ports == $1.ports && $0.label == $1.label }
    }

    /// The rule of the longest prefix holding `address`.
    private func rule(for address: SocketAddress.IP) -> (destination: AddressRange, ports: RulePorts, label: Int)? {
        let table = if case .v4 = address { tables.v4 } else { tables.v6 }
        for (length, entries) in table {
            if let index = entries[address.masked(to: length)] { return rules[index] }
        }
        return nil
    }

    /// What the longest prefix holding `address` lets through, or nil when none holds it.
    package func ports(for address: SocketAddress.IP) -> RulePorts? {
        rule(for: address)?.ports
    }

    /// The label index of the longest prefix holding `address` (-1: none).
    func label(for address: SocketAddress.IP) -> Int {
        rule(for: address)?.label ?? -1
    }

    /// Why a packet out of the client's tunnel may not pass, or nil when it may.
    package func refusal(outbound packet: UnsafeRawBufferPointer) -> WireGuardDrop? {
        guard let header = PacketHeader(packet) else { return .filtered }
        return refusal(outbound: header)
    }

    func refusal(outbound header: PacketHeader) -> WireGuardDrop? {
        guard let ports = ports(for: header.destination), !ports.allowsNothing else { return .noRule }
        // A later fragment carries no ports: only a rule that allows everything lets it through.
        if header.isLaterFragment { return ports.allowsAll ? nil : .filtered }
        return ports.allows(protocolNumber: header.protocolNumber, port: header.destinationPort) ? nil : .filtered
    }

    /// Why a packet from a resource to the client may not pass, or nil when it belongs to what the
    /// client may reach: its source inside an authorised prefix and, for TCP and UDP, from an allowed
    /// port; ICMP errors about such traffic (unreachable, time exceeded, parameter problem) pass with
    /// the prefix alone.
    package func refusal(inbound packet: UnsafeRawBufferPointer) -> WireGuardDrop? {
        guard let header = PacketHeader(packet) else { return .filtered }
        return refusal(inbound: header)
    }

    func refusal(inbound header: PacketHeader) -> WireGuardDrop? {
        guard let ports = ports(for: header.source), !ports.allowsNothing else { return .noRule }
        if ports.allowsAll || header.isICMPError && !header.isLaterFragment { return nil }
        if header.isLaterFragment { return .filtered }
        return ports.allows(protocolNumber: header.protocolNumber, port: header.sourcePort) ? nil : .filtered
    }
}

/// The few header fields rules look at, from an IPv4 or IPv6 packet (IPv6 without extension headers;
/// anything else has protocol 0 and passes only where everything is allowed).
package struct PacketHeader {
    package var source: SocketAddress.IP
    package var destination: SocketAddress.IP
    package var protocolNumber: UInt8
    /// TCP and UDP ports; for an ICMP echo, its identifier in both.
    package var sourcePort: UInt16 = 0
    package var destinationPort: UInt16 = 0
    package var isLaterFragment = false
    package var isICMPError = false
    /// ICMP's or ICMPv6's type and code (nil for anything else).
    package var icmp: (type: UInt8, code: UInt8)?
    /// TCP's flags byte (FIN 0x01, SYN 0x02, RST 0x04, ...), 0 for anything else.
    package var tcpFlags: UInt8 = 0

    package init?(_ packet: UnsafeRawBufferPointer) {
        guard let first = packet.first else { return nil }
        let transport: Int
        switch first >> 4 {
        case 4:
            guard packet.count >= 20 else { return nil }
            transport = Int(first & 0x0F) * 4
            guard transport >= 20 else { return nil }
            source = .v4(UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
            destination = .v4(UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: 16, as: UInt32.self)))
            protocolNumber = packet[9]
            isLaterFragment = UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) & 0x1FFF != 0
        case 6:
            guard packet.count >= 40 else { return nil }
            transport = 40
            source = .v6(UInt64(bigEndian: packet.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                         UInt64(bigEndian: packet.loadUnaligned(fromByteOffset: 16, as: UInt64.self)))
            destination = .v6(UInt64(bigEndian: packet.loadUnaligned(fromByteOffset: 24, as: UInt64.self)),
                              UInt64(bigEndian: packet.loadUnaligned(fromByteOffset: 32, as: UInt64.self)))
            protocolNumber = packet[6]
        default:
            return nil
        }
        guard !isLaterFragment else { return }
        switch protocolNumber {
        case 6, 17:
            guard packet.count >= transport + 4 else { return }
            sourcePort = UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: transport, as: UInt16.self))
            destinationPort = UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: transport + 2, as: UInt16.self))
            if protocolNumber == 6, packet.count >= transport + 14 { tcpFlags = packet[transport + 13] }
        case 1, 58:
            guard packet.count > transport else { return }
            let type = packet[transport]
            if packet.count > transport + 1 { icmp = (type, packet[transport + 1]) }
            isICMPError = protocolNumber == 1 ? [3, 11, 12].contains(type) : (1...4).contains(type)
            // An echo's identifier stands for both ports: it tells one ping's flow (and NAT entry) from another's.
            let isEcho = protocolNumber == 1 ? type == 8 || type == 0 : type == 128 || type == 129
            if isEcho, packet.count >= transport + 6 {
                sourcePort = UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: transport + 4, as: UInt16.self))
                destinationPort = sourcePort
            }
        default:
            break
        }
    }
}

/// ICMP "destination unreachable, administratively prohibited" (ICMPv4 type 3 code 13, ICMPv6 type 1
/// code 1) about a refused packet, for the client that sent it. It comes from the address the packet
/// was for (inside the routes the client sends to the gateway, so a standard WireGuard client, which
/// takes in only sources within its peer's allowed IPs, accepts it) and quotes as much of the packet as
/// the minimum MTU allows (RFC 792/1812, RFC 4443).
package enum AdministrativelyProhibited {
    package static func reply(to packet: UnsafeRawBufferPointer) -> [UInt8]? {
        ICMPUnreachable.reply(to: packet, reason: .prohibited)
    }

    /// Whether `packet` is such an error (what a client takes as "ask the portal again").
    package static func matches(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard let header = PacketHeader(packet), let icmp = header.icmp else { return false }
        return header.protocolNumber == 1 ? icmp.type == 3 && icmp.code == 13 : header.protocolNumber == 58 && icmp.type == 1 && icmp.code == 1
    }
}

/// ICMP "destination unreachable" about a packet that cannot be delivered, from the address it was for.
package enum ICMPUnreachable {
    package enum Reason: Sendable {
        /// Administratively prohibited: ICMPv4 type 3 code 13, ICMPv6 type 1 code 1.
        case prohibited
        /// No way there now: host unreachable (ICMPv4 code 1), address unreachable (ICMPv6 code 3).
        case unreachable

        var codes: (v4: UInt8, v6: UInt8) {
            switch self {
            case .prohibited: (13, 1)
            case .unreachable: (1, 3)
            }
        }
    }

    package static func reply(to packet: UnsafeRawBufferPointer, reason: Reason) -> [UInt8]? {
        guard let header = PacketHeader(packet) else { return nil }
        // Never an error about an error (RFC 1812 4.3.2.7, RFC 4443 2.4).
        if header.isICMPError { return nil }
        switch (header.destination, header.source) {
        case let (.v4(from), .v4(to)):
            let quoted = Array(packet.prefix(576 - 28))
            var icmp: [UInt8] = [3, reason.codes.v4, 0, 0, 0, 0, 0, 0] + quoted
            store(~InternetChecksum.fold(icmp.withUnsafeBytes { InternetChecksum.sum($0) }), in: &icmp, at: 2)
            var ip: [UInt8] = [0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0] + bytes(from) + bytes(to)
            store(UInt16(20 + icmp.count), in: &ip, at: 2)
            store(~InternetChecksum.fold(ip.withUnsafeBytes { InternetChecksum.sum($0) }), in: &ip, at: 10)
            return ip + icmp
        case let (.v6(fromHigh, fromLow), .v6(toHigh, toLow)):
            let quoted = Array(packet.prefix(1280 - 48))
            var icmp: [UInt8] = [1, reason.codes.v6, 0, 0, 0, 0, 0, 0] + quoted
            var ip: [UInt8] = [0x60, 0, 0, 0, 0, 0, 58, 64] + bytes(fromHigh) + bytes(fromLow) + bytes(toHigh) + bytes(toLow)
            store(UInt16(icmp.count), in: &ip, at: 4)
            let pseudo = ip.withUnsafeBytes { InternetChecksum.pseudoHeader($0, protocolNumber: 58, length: icmp.count) }
            store(~InternetChecksum.fold(icmp.withUnsafeBytes { InternetChecksum.sum($0, initial: pseudo) }), in: &icmp, at: 2)
            return ip + icmp
        default:
            return nil
        }
    }

    private static func store(_ value: UInt16, in bytes: inout [UInt8], at offset: Int) {
        bytes[offset] = UInt8(value >> 8)
        bytes[offset + 1] = UInt8(value & 0xFF)
    }

    private static func bytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian, Array.init)
    }
}
