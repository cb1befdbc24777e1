import Addresses
import BPF
import BPFMaps
import Gateway
import Policy
import TestSupport
import Testing
import TURN

/// The gateway's TC program (bpf/gateway.bpf.c) run by the kernel over packets (BPF_PROG_TEST_RUN)
/// with the entries the compiler made, against the `Policy` module's verdict: for random rule sets of
/// two clients, every packet from one of their tunnel addresses passes exactly when a destination of
/// that client holds it and its filters allow it, and the kernel counts each drop under its reason.
@Suite(.privileged) struct GatewayTCProgramTests {
    static let clientA = [RuleCompilerTests.clientV4, RuleCompilerTests.clientV6]
    static let clientB = [try! SocketAddress("100.64.0.9", port: 0).ip, try! SocketAddress("fd00:6761:7465::9", port: 0).ip]
    static let stranger = [RuleCompilerTests.otherClient, try! SocketAddress("fd00:6761:7465::8", port: 0).ip]
    static let accepted: UInt32 = 0  // TC_ACT_OK
    static let dropped: UInt32 = 2   // TC_ACT_SHOT

    static func write(_ rules: [KernelRule], to program: GatewayTCProgram) throws {
        for key in try program.rules.keys() { _ = try program.rules.delete(key) }
        for rule in rules { try program.rules.update(KernelRuleLayout.value(rule.ports), forKey: KernelRuleLayout.key(rule)) }
    }

    static func randomDestinations(_ random: inout SplitMix64) -> [GrantedDestination] {
        (0..<Int.random(in: 1...6, using: &random)).map { _ in
            GrantedDestination(prefix: RuleCompilerTests.prefixes.randomElement(using: &random)!, filters: RuleCompilerTests.filters(&random))
        }
    }

    @Test(arguments: [11, 12, 13] as [UInt64])
    func theKernelAllowsExactlyWhatThePolicyAllows(seed: UInt64) throws {
        let program = try GatewayTCProgram()
        let classifier = try program.program()
        var random = SplitMix64(seed: seed)
        var expectedCounts: [GatewayTCReason: UInt64] = [:]
        for round in 0..<12 {
            let grantsA = Self.randomDestinations(&random)
            let grantsB = Self.randomDestinations(&random)
            let rules = RuleCompiler.compile(client: Self.clientA, grantsA) + RuleCompiler.compile(client: Self.clientB, grantsB)
            try Self.write(rules, to: program)
            for address in RuleCompilerTests.addresses {
                let family = IPPacket.isV4(address) ? 0 : 1
                for (source, grants) in [(Self.clientA[family], grantsA), (Self.clientB[family], grantsB), (Self.stranger[family], nil)] {
                    for protocolNumber: UInt8 in [1, 6, 17, 58, 47] {
                        for port in RuleCompilerTests.ports.shuffled(using: &random).prefix(4) {
                            let reason: GatewayTCReason = if let grants {
                                if !grants.contains(where: { $0.prefix.contains(address) }) {
                                    .noRule
                                } else if RuleCompilerTests.policyAllows(grants, address, protocolNumber, port) {
                                    .allowed
                                } else {
                                    .filtered
                                }
                            } else {
                                .unknownSource
                            }
                            expectedCounts[reason, default: 0] += 1
                            let packet = IPPacket.make(from: source, to: address, protocolNumber: protocolNumber, port: port)
                            let result = try classifier.testRun(IPPacket.ethernet(packet))
                            let verdict = result.returnValue == Self.accepted
                            #expect(verdict == (reason == .allowed) && [Self.accepted, Self.dropped].contains(result.returnValue),
                                    "seed \(seed) round \(round): \(SocketAddress(ip: source, port: 0).address) → \(SocketAddress(ip: address, port: 0).address) protocol \(protocolNumber) port \(port): kernel \(result.returnValue), expected \(reason.label); grants \(grants.map { "\($0)" } ?? "none")")
                            if verdict != (reason == .allowed) { return }
                        }
                    }
                }
            }
        }
        // The reasons, as counted by the kernel, are the ones the policy gives.
        let statistics = try program.statistics()
        print("seed \(seed): kernel verdicts by reason", GatewayTCReason.allCases.map { "\($0.label)=\(statistics[$0]?.packets ?? 0)" }.joined(separator: " "))
        for reason in GatewayTCReason.allCases {
            #expect(statistics[reason]?.packets == expectedCounts[reason, default: 0], "\(reason.label)")
        }
        #expect(expectedCounts[.allowed, default: 0] > 100 && expectedCounts[.filtered, default: 0] > 100
                && expectedCounts[.noRule, default: 0] > 100, "a mix of verdicts: \(expectedCounts)")
    }

    @Test func whatCannotBeParsedOrCheckedIsDropped() throws {
        let program = try GatewayTCProgram()
        let classifier = try program.program()
        let client = Self.clientA[0]
        let resource = try SocketAddress("10.1.2.3", port: 0).ip
        let rules = RuleCompiler.compile(client: Self.clientA, [GrantedDestination(prefix: try AddressRange("10.1.2.0/24"), filters: [.tcp(443...443)])])
            + RuleCompiler.compile(client: Self.clientB, [GrantedDestination(prefix: try AddressRange("10.1.2.0/24"), filters: [])])
        try Self.write(rules, to: program)
        let allowed = IPPacket.make(from: client, to: resource, protocolNumber: 6, port: 443)
        #expect(try classifier.testRun(IPPacket.ethernet(allowed)).returnValue == Self.accepted)
        // Cut inside the TCP header: the ports cannot be read.
        #expect(try classifier.testRun(IPPacket.ethernet(Array(allowed.prefix(22)))).returnValue == Self.dropped)
        // A later fragment carries no ports: only a rule that allows everything passes it.
        var fragment = allowed
        fragment[6] = 0x00
        fragment[7] = 0x10
        #expect(try classifier.testRun(IPPacket.ethernet(fragment)).returnValue == Self.dropped)
        var fragmentOfB = IPPacket.make(from: Self.clientB[0], to: resource, protocolNumber: 6, port: 22)
        fragmentOfB[7] = 0x10
        #expect(try classifier.testRun(IPPacket.ethernet(fragmentOfB)).returnValue == Self.accepted)
        // Not IP at all behind a valid frame.
        #expect(try classifier.testRun(IPPacket.ethernet([0x10] + Array(allowed.dropFirst()))).returnValue == Self.dropped)
        let statistics = try program.statistics()
        #expect(statistics[.malformed]?.packets == 2)
        #expect(statistics[.filtered]?.packets == 1)
        #expect(statistics[.allowed]?.packets == 2)
    }

    /// The entries read back from the kernel are the rules written, byte for byte through the layout.
    @Test func entriesReadBackAreTheRulesWritten() throws {
        let program = try GatewayTCProgram()
        var random = SplitMix64(seed: 99)
        let rules = RuleCompiler.compile(client: Self.clientA, Self.randomDestinations(&random) + Self.randomDestinations(&random))
        try Self.write(rules, to: program)
        let read = try program.rules.entries().compactMap { KernelRuleLayout.rule($0.key, $0.value) }
        #expect(Set(read) == Set(rules.map { rule in var rule = rule; rule.ports.widened = false; return rule }))
        #expect(read.count == rules.count)
    }
}
