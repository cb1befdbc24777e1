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

/// Connectivity-check messages (RFC 8445 section 7.1 over RFC 8489).
@Suite struct CheckMessageTests {
    static func id() -> [UInt8] { (0..<12).map { _ in UInt8.random(in: 0...255) } }

    @Test func requestsAndAnswersRoundTripAndAreAuthenticated() {
        let request = CheckMessage.Request(transactionID: Self.id(), username: "gwUfrag:clUfrag", priority: 1_862_270_975,
                                           role: .controlling(tieBreaker: 0x0123_4567_89AB_CDEF), useCandidate: true)
        let bytes = CheckMessage.request(request, password: "gateway-password-0123456789abcdef")
        #expect(bytes.withUnsafeBytes { CheckMessage.isSTUN($0) })
        let lookup: (String) -> String? = { $0 == "gwUfrag:clUfrag" ? "gateway-password-0123456789abcdef" : nil }
        #expect(CheckMessage.parse(bytes, password: lookup, answerPassword: nil) == .request(request))
        #expect(CheckMessage.parse(bytes, password: { _ in "another password" }, answerPassword: nil) == nil, "a wrong password: nothing")
        #expect(CheckMessage.parse(bytes, password: { _ in nil }, answerPassword: nil) == nil, "an unknown username: nothing")
        for index in [0, 5, 30, bytes.count - 1] {
            var flipped = bytes
            flipped[index] ^= 0x01
            #expect(CheckMessage.parse(flipped, password: lookup, answerPassword: nil) == nil, "a flipped bit at \(index): refused")
        }
        for length in 0..<bytes.count {
            #expect(CheckMessage.parse(Array(bytes.prefix(length)), password: lookup, answerPassword: nil) == nil)
        }
        let mapped = try! SocketAddress("2001:db8::7", port: 40001)
        let success = CheckMessage.success(transactionID: request.transactionID, mapped: mapped, password: "gateway-password-0123456789abcdef")
        #expect(CheckMessage.parse(success, password: { _ in nil }, answerPassword: "gateway-password-0123456789abcdef")
                == .success(transactionID: request.transactionID, mapped: mapped))
        #expect(CheckMessage.parse(success, password: { _ in nil }, answerPassword: "wrong") == nil)
        let conflict = CheckMessage.error(transactionID: request.transactionID, code: 487, password: "gateway-password-0123456789abcdef")
        #expect(CheckMessage.parse(conflict, password: { _ in nil }, answerPassword: "gateway-password-0123456789abcdef")
                == .error(transactionID: request.transactionID, code: 487))
        let unauthenticated = CheckMessage.error(transactionID: request.transactionID, code: 401, password: nil)
        #expect(CheckMessage.parse(unauthenticated, password: { _ in nil }, answerPassword: "anything") == .error(transactionID: request.transactionID, code: 401))
        let wireguard: [UInt8] = [1, 0, 0, 0] + [UInt8](repeating: 7, count: 144)
        #expect(!wireguard.withUnsafeBytes { CheckMessage.isSTUN($0) })
    }

    /// aioice reads our requests, successes and role-conflict errors (integrity and fingerprint
    /// verified, every attribute as we meant it), and we read the same messages made by aioice.
    @Test func aioiceReadsOursAndWeReadAioices() async throws {
        var cases: [(line: String, password: String, message: CheckMessage.Message)] = []
        for index in 0..<90 {
            let password = String((0..<22).map { _ in "abcdefghijklmnopqrstuvwxyz0123456789+/".randomElement()! })
            let transaction = Self.id()
            let hex = transaction.map { String(format: "%02x", $0) }.joined()
            switch index % 3 {
            case 0:
                let controlling = Bool.random()
                let tieBreaker = UInt64.random(in: 0...UInt64(Int64.max))
                let request = CheckMessage.Request(transactionID: transaction, username: "r\(index):l\(index)", priority: UInt32.random(in: 1...UInt32(Int32.max)),
                                                   role: controlling ? .controlling(tieBreaker: tieBreaker) : .controlled(tieBreaker: tieBreaker),
                                                   useCandidate: Bool.random())
                let ours = CheckMessage.request(request, password: password).map { String(format: "%02x", $0) }.joined()
                let object: [String: Any] = ["kind": "request", "ours": ours, "password": password, "transaction": hex, "username": request.username,
                                             "priority": Int(request.priority), "use_candidate": request.useCandidate, "controlling": controlling,
                                             "tie_breaker": tieBreaker]
                cases.append((String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self), password, .request(request)))
            case 1:
                let mapped = index % 2 == 0 ? try SocketAddress("198.51.100.\(index)", port: UInt16.random(in: 1...65535))
                                            : try SocketAddress("2001:db8::\(index)", port: UInt16.random(in: 1...65535))
                let ours = CheckMessage.success(transactionID: transaction, mapped: mapped, password: password).map { String(format: "%02x", $0) }.joined()
                let object: [String: Any] = ["kind": "success", "ours": ours, "password": password, "transaction": hex, "host": mapped.address,
                                             "port": Int(mapped.port)]
                cases.append((String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self), password,
                              .success(transactionID: transaction, mapped: mapped)))
            default:
                let ours = CheckMessage.error(transactionID: transaction, code: 487, password: password).map { String(format: "%02x", $0) }.joined()
                let object: [String: Any] = ["kind": "error", "ours": ours, "password": password, "transaction": hex, "code": 487]
                cases.append((String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self), password,
                              .error(transactionID: transaction, code: 487)))
            }
        }
        let input = FileManager.default.temporaryDirectory.appending(path: "gatehouse-checks-\(UUID().uuidString).jsonl")
        try Data(cases.map(\.line).joined(separator: "\n").utf8).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let script = Binaries.packageRoot.appending(path: "Tests/Interop/aioice_checks.py").path(percentEncoded: false)
        let output = try await Command.run(["sh", "-c", "\"$0\" \"$1\" < \"$2\"", Binaries.python, script, input.path])
        let results = try #require(try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [[String: Any]], "\(output)")
        try #require(results.count == cases.count)
        for (result, entry) in zip(results, cases) {
            #expect(result["integrity"] as? Bool == true && result["failure"] == nil, "aioice verified ours: \(result)")
            switch entry.message {
            case let .request(request):
                let (tieBreaker, controlling): (UInt64, Bool) = switch request.role {
                case let .controlling(value): (value, true)
                case let .controlled(value): (value, false)
                }
                #expect(result["class"] as? String == "request" && result["username"] as? String == request.username
                        && (result["priority"] as? NSNumber)?.uint32Value == request.priority && result["use_candidate"] as? Bool == request.useCandidate
                        && (result[controlling ? "controlling" : "controlled"] as? NSNumber)?.uint64Value == tieBreaker, "\(result)")
            case let .success(_, mapped):
                #expect(result["class"] as? String == "response" && (result["mapped"] as? [Any])?.first as? String == mapped.address
                        && (result["mapped"] as? [Any])?.last as? Int == Int(mapped.port), "\(result)")
            case .error:
                #expect(result["class"] as? String == "error" && result["error"] as? Int == 487, "\(result)")
            }
            let theirs = try #require(result["theirs"] as? String)
            let bytes = stride(from: 0, to: theirs.count, by: 2).map { offset -> UInt8 in
                let start = theirs.index(theirs.startIndex, offsetBy: offset)
                return UInt8(theirs[start..<theirs.index(start, offsetBy: 2)], radix: 16)!
            }
            #expect(CheckMessage.parse(bytes, password: { _ in entry.password }, answerPassword: entry.password) == entry.message,
                    "we read aioice's \(theirs)")
        }
    }
}
