import Addresses
import Gateway
import Policy
import Testing
import TURN

/// The trie entries the gateway compiles for its kernel program, against the `Policy` module's own
/// answer: a packet from a client's tunnel address to a destination on a protocol and port is allowed
/// when some destination the client is authorised for holds it and its filters allow it. The entries
/// are looked up as the kernel's LPM trie answers (the longest prefix only). Seeded, so a seed replays.
@Suite struct RuleCompilerTests {
    static let clientV4 = try! SocketAddress("100.64.0.7", port: 0).ip
    static let clientV6 = try! SocketAddress("fd00:6761:7465::7", port: 0).ip
    static let otherClient = try! SocketAddress("100.64.0.8", port: 0).ip
    /// Nested and disjoint prefixes of both families, so that covering prefixes are common.
    static let prefixes = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.3.0/24", "10.2.0.0/16", "192.168.1.0/24",
                           "fd00:1::/32", "fd00:1:2::/48", "fd00:1:2::3/128", "fd00:9::/32"].map { try! AddressRange($0) }
    static let addresses = ["10.1.2.3", "10.1.2.4", "10.1.3.9", "10.2.7.7", "10.9.9.9", "192.168.1.1", "192.168.2.1", "172.16.0.1",
                            "fd00:1:2::3", "fd00:1:2::4", "fd00:1:3::1", "fd00:9::1", "fd00:8::1"].map { try! SocketAddress($0, port: 0).ip }
    static let ports: [UInt16] = [1, 22, 53, 79, 80, 81, 443, 444, 5000, 8000, 8050, 8100, 8101, 65535]

    static func filters(_ random: inout SplitMix64) -> [Filter] {
        var filters: [Filter] = []
        for _ in 0..<Int.random(in: 0..<4, using: &random) {
            if Int.random(in: 0..<3, using: &random) == 0 {
                filters.append(.icmp)
                continue
            }
            let low = ports.randomElement(using: &random) ?? 1
            let high = Bool.random(using: &random) ? low : max(low, ports.randomElement(using: &random) ?? low)
            filters.append(Bool.random(using: &random) ? .tcp(low...high) : .udp(low...high))
        }
        return filters
    }

    /// What the policy says, from the destinations themselves.
    static func policyAllows(_ destinations: [GrantedDestination], _ address: SocketAddress.IP, _ protocolNumber: UInt8, _ port: UInt16) -> Bool {
        destinations.contains { $0.prefix.contains(address) && $0.filters.allows(protocolNumber: protocolNumber, port: port) }
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func theLongestMatchAllowsExactlyWhatThePolicyAllows(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var checked = 0
        var allowed = 0
        for _ in 0..<200 {
            var destinations: [GrantedDestination] = []
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                destinations.append(GrantedDestination(prefix: Self.prefixes.randomElement(using: &random) ?? Self.prefixes[0], filters: Self.filters(&random)))
            }
            let rules = RuleCompiler.compile(client: [Self.clientV4, Self.clientV6], destinations)
            #expect(rules.allSatisfy { !$0.ports.widened }, "no entry needs more than \(RuleCompiler.rangesPerEntry) ranges here")
            for address in Self.addresses {
                let client = if case .v4 = address { Self.clientV4 } else { Self.clientV6 }
                for protocolNumber: UInt8 in [1, 6, 17, 58, 47] {
                    for port in Self.ports {
                        let expected = Self.policyAllows(destinations, address, protocolNumber, port)
                        let entry = RuleCompiler.lookup(rules, client: client, destination: address)
                        let kernel = entry?.ports.allows(protocolNumber: protocolNumber, port: port) ?? false
                        #expect(kernel == expected, "seed \(seed): \(destinations) to \(address) protocol \(protocolNumber) port \(port)")
                        if kernel != expected { return }
                        // Any other source address has no entry at all.
                        #expect(RuleCompiler.lookup(rules, client: Self.otherClient, destination: address) == nil)
                        checked += 1
                        if expected { allowed += 1 }
                    }
                }
            }
        }
        #expect(allowed > checked / 20 && allowed < checked / 2, "a mix of verdicts: \(allowed) of \(checked) allowed")
    }

    /// Past the bound of ranges per entry, the closest ranges are joined: the entry then lets through a
    /// little more than the policy, never less.
    @Test func tooManyRangesAreJoinedAtTheirSmallestGapsNeverDroppingWhatIsAllowed() {
        let prefix = try! AddressRange("10.1.0.0/16")
        let ranges: [ClosedRange<UInt16>] = [22...22, 80...80, 443...443, 1000...1001, 1003...1003, 5000...5010, 8000...8000, 8443...8443, 9000...9000, 9100...9100]
        let destination = GrantedDestination(prefix: prefix, filters: ranges.map { .tcp($0) } + [.udp(53...53)])
        let rules = RuleCompiler.compile(client: [Self.clientV4], [destination], rangesPerEntry: 8)
        let entry = RuleCompiler.lookup(rules, client: Self.clientV4, destination: try! SocketAddress("10.1.2.3", port: 0).ip)
        // Ten ranges, eight places: the gaps of 2 (1001-1003) and 58 (22-80) are the smallest.
        #expect(entry?.ports.tcp == [22...80, 443...443, 1000...1003, 5000...5010, 8000...8000, 8443...8443, 9000...9000, 9100...9100])
        #expect(entry?.ports.udp == [53...53])
        #expect(entry?.ports.widened == true)
        for range in ranges {
            #expect(entry?.ports.allows(protocolNumber: 6, port: range.lowerBound) == true)
            #expect(entry?.ports.allows(protocolNumber: 6, port: range.upperBound) == true)
        }
        #expect(entry?.ports.allows(protocolNumber: 6, port: 8001) == false, "only the smallest gaps were joined")
        #expect(entry?.ports.allows(protocolNumber: 17, port: 54) == false)
    }

    @Test func rangesThatTouchOrOverlapBecomeOne() {
        #expect(RuleCompiler.normalized([80...90, 91...100, 95...120, 200...200, 1...1]) == [1...1, 80...120, 200...200])
        #expect(RuleCompiler.normalized([1...65535, 443...443]) == [1...65535])
    }
}
