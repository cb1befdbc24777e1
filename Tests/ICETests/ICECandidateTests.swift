import Addresses
import Foundation
import ICE
import Testing
import TestSupport

/// Issue #17's ICE, its first part: candidates as RFC 8445 and RFC 8839 make them, and the checklist.
@Suite struct ICECandidateTests {
    static func address(_ text: String, _ port: UInt16) -> SocketAddress { try! SocketAddress(text, port: port) }

    @Test func prioritiesAreTheRFCsFormula() {
        // 2^24 × 126 + 2^8 × 65535 + 255, the RFC's own arithmetic for a host candidate of component 1.
        #expect(ICECandidate.priority(kind: .host) == 2_130_706_431)
        #expect(ICECandidate.priority(kind: .serverReflexive) == 1_694_498_815)
        #expect(ICECandidate.priority(kind: .peerReflexive) == 1_862_270_975)
        #expect(ICECandidate.priority(kind: .relayed) == 16_777_215)
        #expect(ICECandidate.priority(kind: .host, localPreference: 0, component: 2) == 2_113_929_470)
    }

    @Test func candidatesRoundTripThroughTheirAttributeText() throws {
        let host = ICECandidate(kind: .host, address: Self.address("192.0.2.10", 51820))
        let reflexive = ICECandidate(kind: .serverReflexive, address: Self.address("203.0.113.7", 40001),
                                     base: Self.address("192.0.2.10", 51820), server: Self.address("198.51.100.1", 3478))
        let relayed = ICECandidate(kind: .relayed, address: Self.address("2001:db8::5", 49152), base: Self.address("2001:db8::5", 49152),
                                   server: Self.address("2001:db8::1", 3478))
        for candidate in [host, reflexive, relayed] {
            #expect(ICECandidate(sdp: candidate.sdp) == candidate, "\(candidate.sdp)")
            #expect(ICECandidate(sdp: "a=" + candidate.sdp) == candidate)
        }
        #expect(reflexive.sdp.hasSuffix("typ srflx raddr 192.0.2.10 rport 51820"))
        #expect(host.foundation != reflexive.foundation, "another type, another foundation")
        let sameKind = ICECandidate(kind: .host, address: Self.address("192.0.2.10", 60000))
        #expect(host.foundation == sameKind.foundation, "same type and base: the same foundation")
        let browser = try #require(ICECandidate(sdp: "candidate:842163049 1 UDP 1677729535 198.51.100.3 61665 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag EEtu network-cost 999"))
        #expect(browser.kind == .serverReflexive && browser.related == nil && browser.priority == 1_677_729_535, "extensions ignored, a hidden base is none")
    }

    @Test func whatIsNotAUDPCandidateIsRefused() {
        for text in [
            "", "candidate:", "candidate:1 1 udp 2130706431 192.0.2.10 51820",  // no type
            "candidate:1 1 tcp 2130706431 192.0.2.10 9 typ host tcptype active",  // TCP
            "candidate:1 1 udp 2130706431 3c1b8c0e-5b8d.local 51820 typ host",  // mDNS name
            "candidate:1 0 udp 2130706431 192.0.2.10 51820 typ host",  // component 0
            "candidate:1 1 udp 0 192.0.2.10 51820 typ host",  // priority 0
            "candidate:1 1 udp 4294967295 192.0.2.10 51820 typ host",  // priority over 2^31 − 1
            "candidate:1 1 udp 2130706431 192.0.2.10 0 typ host",  // port 0
            "candidate:1 1 udp 2130706431 192.0.2.10 51820 typ nat",  // unknown type
            "candidate:a;b 1 udp 2130706431 192.0.2.10 51820 typ host",  // not ICE characters
        ] {
            #expect(ICECandidate(sdp: text) == nil, "\(text)")
        }
    }

    /// Pairs of one family only; a server-reflexive candidate stands in as its base and, redundant with
    /// the host candidate of that base, goes; highest priority first, the controlling side's formula.
    @Test func theChecklistPairsPrunesAndOrders() {
        let base = Self.address("192.0.2.10", 51820)
        let local = [
            ICECandidate(kind: .host, address: base),
            ICECandidate(kind: .serverReflexive, address: Self.address("203.0.113.7", 40001), base: base, server: Self.address("198.51.100.1", 3478)),
            ICECandidate(kind: .relayed, address: Self.address("198.51.100.1", 50000), base: Self.address("198.51.100.1", 50000),
                         server: Self.address("198.51.100.1", 3478)),
            ICECandidate(kind: .host, address: Self.address("2001:db8::10", 51820)),
        ]
        let remote = [
            ICECandidate(kind: .host, address: Self.address("10.0.0.5", 51820)),
            ICECandidate(kind: .serverReflexive, address: Self.address("198.51.100.77", 41000), base: Self.address("10.0.0.5", 51820),
                         server: Self.address("198.51.100.1", 3478)),
        ]
        let pairs = ICEChecklist.pairs(local: local, remote: remote, controlling: true)
        #expect(pairs.count == 4, "host and relayed × two remote; the srflx pairs pruned; no IPv6 pair: \(pairs.map(\.foundation))")
        #expect(pairs.allSatisfy { !$0.local.address.isIPv6 && $0.local.kind != .serverReflexive })
        let priorities = pairs.map { $0.priority(controlling: true) }
        #expect(priorities == priorities.sorted(by: >))
        #expect(pairs.first?.local.kind == .host && pairs.first?.remote.kind == .host, "direct first")
        #expect(pairs.last?.local.kind == .relayed, "relayed last")
        let pair = pairs[0]
        #expect(pair.priority(controlling: true) != pair.priority(controlling: false) || pair.local.priority == pair.remote.priority)
    }

    /// aioice (PyPI) parses our attribute text to the same candidate, its priority formula gives ours,
    /// and its pair priority equals ours, for random candidates of every type, both families, both roles.
    @Test func aioiceAgreesWithOurCandidatesAndPairPriorities() async throws {
        var lines: [String] = []
        var made: [ICECandidate] = []
        for index in 0..<300 {
            let kind = ICECandidate.Kind.allCases[index % 4]
            let v6 = index % 3 == 0
            let address = v6 ? Self.address("2001:db8::\(String(index, radix: 16))", UInt16.random(in: 1024...65535))
                             : Self.address("198.51.\(index % 200).\(index % 250 + 1)", UInt16.random(in: 1024...65535))
            let base = kind == .host ? nil : (v6 ? Self.address("fd00::\(index)", 51820) : Self.address("10.0.\(index % 250).1", 51820))
            let preference = UInt16.random(in: 0...65535)
            let candidate = ICECandidate(kind: kind, address: address, base: base, server: Self.address("192.0.2.1", 3478), localPreference: preference)
            made.append(candidate)
            let object: [String: Any] = [
                "sdp": candidate.sdp, "kind": kind.rawValue, "priority": Int(candidate.priority), "host": address.address, "port": Int(address.port),
                "related": base.map { [$0.address, Int($0.port)] as [Any] } ?? NSNull(), "local_preference": Int(preference),
            ]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        }
        for _ in 0..<300 {
            let local = made.randomElement()!
            let remote = made.randomElement()!
            let controlling = Bool.random()
            let pair = ICEPair(local: local, remote: remote)
            let object: [String: Any] = ["pair": [local.sdp, remote.sdp], "controlling": controlling, "priority": pair.priority(controlling: controlling)]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        }
        let input = FileManager.default.temporaryDirectory.appending(path: "gatehouse-ice-\(UUID().uuidString).jsonl")
        try Data(lines.joined(separator: "\n").utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let script = Binaries.packageRoot.appending(path: "Tests/Interop/aioice_candidates.py").path(percentEncoded: false)
        let output = try await Command.run(["sh", "-c", "\"$0\" \"$1\" < \"$2\"", Binaries.python, script, input.path])
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [String: Any], "\(output)")
        #expect(summary["agreed"] as? Int == 600, "aioice disagreed: \(summary["disagreed"] ?? "")")
    }
}
