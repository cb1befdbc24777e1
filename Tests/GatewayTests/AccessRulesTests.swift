import Addresses
import Testing
import Tunnel
import WireGuard

/// The data plane's own check of what a client sends and receives, and the ICMP answer to what it
/// refuses: the longest authorised prefix decides, as in the kernel's trie; replies pass only from
/// what the client may reach; the answer is a valid "administratively prohibited" from the address
/// the packet was for.
@Suite struct AccessRulesTests {
    static func ip(_ text: String) -> SocketAddress.IP { (try? SocketAddress(text, port: 0))!.ip }
    static let client = ip("100.64.0.7")
    static let rules = AccessRules([
        (try! AddressRange("198.18.1.0/24"), RulePorts(tcp: [443...443])),
        (try! AddressRange("198.18.1.10/32"), RulePorts(allowsAll: true)),
        (try! AddressRange("0.0.0.0/0"), RulePorts()),  // the compiler's mark: the family has no resource here
    ])

    static func refusal(_ packet: [UInt8]) -> WireGuardDrop? { packet.withUnsafeBytes { rules.refusal(outbound: $0) } }
    static func inbound(_ packet: [UInt8]) -> WireGuardDrop? { packet.withUnsafeBytes { rules.refusal(inbound: $0) } }

    @Test func theLongestPrefixDecidesWhatAClientSends() {
        #expect(Self.refusal(IPPacket.make(from: Self.client, to: Self.ip("198.18.1.20"), protocolNumber: 6, port: 443)) == nil)
        #expect(Self.refusal(IPPacket.make(from: Self.client, to: Self.ip("198.18.1.20"), protocolNumber: 6, port: 80)) == .filtered)
        #expect(Self.refusal(IPPacket.make(from: Self.client, to: Self.ip("198.18.1.20"), protocolNumber: 1, port: 0)) == .filtered)
        #expect(Self.refusal(IPPacket.make(from: Self.client, to: Self.ip("198.18.1.10"), protocolNumber: 17, port: 9)) == nil, "the /32 allows all")
        #expect(Self.refusal(IPPacket.make(from: Self.client, to: Self.ip("10.0.0.1"), protocolNumber: 6, port: 443)) == .noRule)
        #expect(AccessRules([]).withRefusal(IPPacket.make(from: Self.client, to: Self.ip("10.0.0.1"), protocolNumber: 6, port: 443)) == .noRule)
        var fragment = IPPacket.make(from: Self.client, to: Self.ip("198.18.1.20"), protocolNumber: 6, port: 443)
        fragment[6] = 0x00
        fragment[7] = 0x10  // a later fragment: no ports to judge
        #expect(Self.refusal(fragment) == .filtered)
        fragment[16 ... 19] = [198, 18, 1, 10]
        #expect(Self.refusal(fragment) == nil, "where everything is allowed, fragments are too")
        #expect(Self.refusal([0x45, 0, 0]) == .filtered, "not a packet")
    }

    /// Hundreds of rules of every prefix length, both families: the lookup by tables answers what a
    /// scan for the longest holding prefix answers, for addresses inside and outside them.
    @Test func theLookupAgreesWithALongestPrefixScan() {
        var generator = SystemRandomNumberGenerator()
        var rules: [(destination: AddressRange, ports: RulePorts)] = []
        for index in 0..<400 {
            let v6 = index % 3 == 0
            let network: SocketAddress.IP = v6 ? .v6(0xFD00_6768_0000_0000 | UInt64.random(in: 0...0xFF, using: &generator) << 16, UInt64.random(in: 0...3, using: &generator))
                : .v4(0xC612_0000 | UInt32.random(in: 0...0xFFFF, using: &generator) & 0xFF0F)
            let length = v6 ? [48, 56, 64, 120, 128].randomElement(using: &generator)! : [16, 20, 24, 28, 32].randomElement(using: &generator)!
            rules.append((AddressRange(network: network.masked(to: length), prefixLength: length), RulePorts(udp: [UInt16(index)...UInt16(index)])))
        }
        let table = AccessRules(rules)
        let sorted = rules.enumerated().sorted { ($0.element.destination.prefixLength, -$0.offset) > ($1.element.destination.prefixLength, -$1.offset) }
        for _ in 0..<2000 {
            let probe: SocketAddress.IP = Bool.random(using: &generator)
                ? .v6(0xFD00_6768_0000_0000 | UInt64.random(in: 0...0xFF, using: &generator) << 16, UInt64.random(in: 0...3, using: &generator))
                : .v4(0xC612_0000 | UInt32.random(in: 0...0xFFFF, using: &generator))
            let scanned = sorted.first { $0.element.destination.contains(probe) }?.element.ports
            #expect(table.ports(for: probe) == scanned, "\(SocketAddress(ip: probe, port: 0).address)")
        }
    }

    @Test func onlyWhatTheClientMayReachComesBack() {
        #expect(Self.inbound(IPPacket.make(from: Self.ip("198.18.1.20"), to: Self.client, protocolNumber: 6, port: 40000, sourcePort: 443)) == nil)
        #expect(Self.inbound(IPPacket.make(from: Self.ip("198.18.1.20"), to: Self.client, protocolNumber: 6, port: 40000, sourcePort: 80)) == .filtered)
        #expect(Self.inbound(IPPacket.make(from: Self.ip("10.0.0.1"), to: Self.client, protocolNumber: 17, port: 40000, sourcePort: 53)) == .noRule)
        // An ICMP error about the client's traffic passes with the prefix alone; an echo request does not.
        let error = try! #require(IPPacket.make(from: Self.client, to: Self.ip("198.18.1.20"), protocolNumber: 6, port: 80)
            .withUnsafeBytes { AdministrativelyProhibited.reply(to: $0) })
        #expect(Self.inbound(error) == nil)
        #expect(Self.inbound(IPPacket.make(from: Self.ip("198.18.1.20"), to: Self.client, protocolNumber: 1, port: 0)) == .filtered)
    }

    @Test(arguments: [false, true]) func theAnswerIsAValidAdministrativelyProhibited(v6: Bool) throws {
        let source = v6 ? Self.ip("fd00:6761:7465::7") : Self.client
        let destination = v6 ? Self.ip("fd00:6768:0:1::2") : Self.ip("198.18.1.20")
        let refused = IPPacket.make(from: source, to: destination, protocolNumber: 17, port: 8080, payload: [UInt8](repeating: 7, count: 2000))
        let reply = try #require(refused.withUnsafeBytes { AdministrativelyProhibited.reply(to: $0) })
        let ip = v6 ? 40 : 20
        #expect(reply.count <= (v6 ? 1280 : 576), "within the minimum MTU")
        #expect(Array(reply[ip..<(ip + 2)]) == (v6 ? [1, 1] : [3, 13]), "type and code")
        let from = v6 ? Array(reply[8..<24]) : Array(reply[12..<16])
        let to = v6 ? Array(reply[24..<40]) : Array(reply[16..<20])
        #expect(from == (v6 ? Array(refused[24..<40]) : Array(refused[16..<20])), "from the address the packet was for")
        #expect(to == (v6 ? Array(refused[8..<24]) : Array(refused[12..<16])), "to the client")
        #expect(Array(reply[(ip + 8)...]) == Array(refused.prefix(reply.count - ip - 8)), "quotes the refused packet")
        // Checksums: the IPv4 header's, and ICMP's (ICMPv6 with its pseudo-header).
        reply.withUnsafeBytes { bytes in
            if !v6 { #expect(InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: bytes[..<20]))) == 0xFFFF) }
            let icmp = UnsafeRawBufferPointer(rebasing: bytes[ip...])
            let initial = v6 ? InternetChecksum.pseudoHeader(bytes, protocolNumber: 58, length: icmp.count) : 0
            #expect(InternetChecksum.fold(InternetChecksum.sum(icmp, initial: initial)) == 0xFFFF)
        }
        #expect(reply.withUnsafeBytes { AdministrativelyProhibited.reply(to: $0) } == nil, "never an error about an error")
    }
}

extension AccessRules {
    func withRefusal(_ packet: [UInt8]) -> WireGuardDrop? { packet.withUnsafeBytes { refusal(outbound: $0) } }
}
