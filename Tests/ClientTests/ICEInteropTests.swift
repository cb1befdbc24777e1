import Actors
import Addresses
import Foundation
import ICE
import STUN
import Synchronization
import TestSupport
import Testing

/// Issue #17: Gatehouse's ICE agent against aioice's (PyPI, an implementation nobody here wrote) over
/// real sockets in two network namespaces (aioice leaves loopback addresses out of its candidates):
/// checks both ways and nomination, with either side controlling, then data over the chosen pair.
@Suite(.privileged) struct ICEInteropTests {
    /// aioice in its namespace, its stdin and the JSON lines it printed.
    final class AioicePeer: @unchecked Sendable {
        let process = Process()
        let input = Pipe()
        private let buffer = LineBuffer()

        init(in namespace: NetworkNamespace, arguments: [String]) throws {
            process.executableURL = URL(filePath: "/usr/bin/env")
            process.arguments = ["ip", "netns", "exec", namespace.name, Binaries.python,
                                 Binaries.packageRoot.appending(path: "Tests/Interop/aioice_peer.py").path(percentEncoded: false)] + arguments
            let output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = output
            output.fileHandleForReading.readabilityHandler = { [buffer] handle in
                buffer.append(String(decoding: handle.availableData, as: UTF8.self))
            }
            try Command.launch(process)
        }

        deinit {
            if process.isRunning { process.terminate() }
        }

        var printed: [String] { buffer.lines.withLock { $0 } }

        /// The first printed JSON object that has `key`.
        func object(with key: String, timeout: Duration = .seconds(20)) async throws -> [String: Any] {
            var found: [String: Any]?
            try await Wait.until("aioice prints \"\(key)\"", timeout: timeout) {
                found = self.printed.lazy.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                    .first { $0[key] != nil || $0["error"] != nil }
                return found != nil
            }
            if let error = found?["error"] { throw PeerError(description: "aioice: \(error); printed \(printed)") }
            return found ?? [:]
        }

        func send(_ object: [String: Any]) throws {
            let data = try JSONSerialization.data(withJSONObject: object)
            input.fileHandleForWriting.write(data + Data("\n".utf8))
        }
    }

    /// Output cut into lines as it comes.
    final class LineBuffer: Sendable {
        let lines = Mutex<[String]>([])
        private let partial = Mutex("")

        func append(_ text: String) {
            let complete = partial.withLock { buffer -> [String] in
                buffer += text
                var found: [String] = []
                while let newline = buffer.firstIndex(of: "\n") {
                    found.append(String(buffer[..<newline]))
                    buffer = String(buffer[buffer.index(after: newline)...])
                }
                return found
            }
            lines.withLock { $0 += complete }
        }
    }

    struct PeerError: Error, CustomStringConvertible {
        let description: String
    }

    /// What our side saw: the pair it selected, and the answer aioice sent over it.
    struct Outcome: Sendable {
        var selected: ICEPair?
        var answer: String?
        var checksAnswered = 0
    }

    /// Runs our agent on `socket` until aioice's "pong" comes back over the selected pair (or 20 s).
    static func runAgent(_ agent: ICEAgent, socket: UDPSocket) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                var agent = agent
                var outcome = Outcome()
                let base = agent.localCandidates[0]
                let deadline = Date().addingTimeInterval(20)
                var lastPing = Date.distantPast
                func perform(_ outputs: [ICEAgent.Output]) {
                    for output in outputs {
                        switch output {
                        case let .send(bytes, _, destination): _ = try? socket.send(bytes, to: destination)
                        case let .selected(pair): outcome.selected = pair
                        case .failed, .lost: break
                        }
                    }
                }
                while Date() < deadline, outcome.answer == nil {
                    perform(agent.poll(now: Date()))
                    if let pair = outcome.selected, Date().timeIntervalSince(lastPing) > 0.2 {
                        lastPing = Date()
                        _ = try? socket.send(Array("ping from gatehouse".utf8), to: pair.remote.address)
                    }
                    let wait = max(0.001, min(0.02, agent.nextDeadline.timeIntervalSinceNow))
                    guard let (bytes, source) = (try? socket.receive(timeout: .milliseconds(Int64(wait * 1000)))) ?? nil else { continue }
                    if CheckMessage.isSTUN(bytes.withUnsafeBytes { UnsafeRawBufferPointer($0) }) {
                        if let outputs = agent.receive(bytes, at: base, from: source, now: Date()) {
                            if case .request = CheckMessage.parse(bytes, password: { _ in agent.local.password }, answerPassword: nil) {
                                outcome.checksAnswered += 1
                            }
                            perform(outputs)
                        }
                    } else {
                        outcome.answer = String(decoding: bytes, as: UTF8.self)
                    }
                }
                continuation.resume(returning: outcome)
            }.start()
        }
    }

    /// Runs ICE between our agent on `socket` (with `ourRole`) and `peer`: reads aioice's candidates,
    /// sends ours, runs our agent until data came back, then tells aioice it may go. aioice's
    /// candidates, what our side saw, and the data aioice received (hex).
    static func meet(_ peer: AioicePeer, socket: UDPSocket, ourRole: String) async throws
        -> (candidates: [ICECandidate], outcome: Outcome, received: String?) {
        let offer = try await peer.object(with: "candidates")
        let candidates = (offer["candidates"] as? [String] ?? []).compactMap { ICECandidate(sdp: $0.hasPrefix("candidate:") ? $0 : "candidate:" + $0) }
        let local = ICEAgent.Credentials(ufrag: "gh" + String(UUID().uuidString.prefix(6)), password: UUID().uuidString)
        var agent = ICEAgent(controlling: ourRole == "controlling", local: local,
                             remote: .init(ufrag: offer["ufrag"] as? String ?? "", password: offer["password"] as? String ?? ""))
        let host = ICECandidate(kind: .host, address: socket.localAddress)
        agent.addLocal(host)
        for candidate in candidates { agent.addRemote(candidate) }
        try peer.send(["ufrag": local.ufrag, "password": local.password, "candidates": [host.sdp]])
        let outcome = try await runAgent(agent, socket: socket)
        let received = try await peer.object(with: "received")["received"] as? String
        try peer.send(["done": true])
        _ = try await peer.object(with: "done")
        return (candidates, outcome, received)
    }

    static let pingHex = Data("ping from gatehouse".utf8).map { String(format: "%02x", $0) }.joined()

    @Test(arguments: ["controlling", "controlled"])
    func ourAgentAndAioiceAgreeOnAPairAndDataFlows(ourRole: String) async throws {
        try await TestNetwork.with { network in
            let ours = try network.namespace("ours")
            let theirs = try network.namespace("aioice")
            _ = try network.connect(ours, theirs)  // 198.18.1.1 (ours) - 198.18.1.2 (aioice)
            let socket = try ours.run { try UDPSocket(bindTo: SocketAddress("198.18.1.1", port: 0)) }
            let peer = try AioicePeer(in: theirs, arguments: [ourRole == "controlling" ? "controlled" : "controlling"])
            let (candidates, outcome, received) = try await Self.meet(peer, socket: socket, ourRole: ourRole)
            #expect(candidates.contains { $0.address.address == "198.18.1.2" && $0.kind == .host }, "\(candidates)")
            let connected = try await peer.object(with: "connected")
            #expect(outcome.selected?.remote.address.address == "198.18.1.2", "our agent selected aioice's host candidate: \(String(describing: outcome.selected))")
            #expect((connected["remote"] as? [Any])?.first as? String == "198.18.1.1", "aioice nominated our host candidate: \(connected)")
            #expect(outcome.checksAnswered > 0, "aioice's checks were answered by ours")
            #expect(received == Self.pingHex)
            #expect(outcome.answer == "pong ping from gatehouse", "data came back over the pair: \(peer.printed)")
        }
    }

    /// Over relayed candidates: aioice allocates on `gatehouse relay` (TURN with REST credentials, as a
    /// client nobody here wrote), and a router between the two ends drops every datagram between them,
    /// so the only pair that works is ours to aioice's relayed address: checks, nomination and data all
    /// go through the relay.
    @Test(arguments: ["controlling", "controlled"])
    func overAioicesRelayedCandidateWhenNothingDirectWorks(ourRole: String) async throws {
        try await TestNetwork.with { network in
            let router = try network.namespace("router")
            let ours = try network.namespace("ours")
            let theirs = try network.namespace("aioice")
            let relay = try network.namespace("relay")
            for end in [ours, theirs, relay] {
                let link = try network.connect(router, end)
                try network.route(in: end, to: "default", via: link.a.ipv4)
            }
            // 198.18.1.2 ours, 198.18.2.2 aioice, 198.18.3.2 the relay; nothing between ours and aioice.
            try router.enableForwarding()
            let rules = FileManager.default.temporaryDirectory.appending(path: "gatehouse-ice-block-\(UUID().uuidString).nft")
            try """
                table inet ice_block {
                    chain forward { type filter hook forward priority 0; policy accept;
                        ip saddr 198.18.1.0/24 ip daddr 198.18.2.0/24 drop;
                        ip saddr 198.18.2.0/24 ip daddr 198.18.1.0/24 drop; }
                }
                """.write(to: rules, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: rules) }
            try await router.exec(["nft", "-f", rules.path])
            let secret = "ice-interop-secret"
            _ = try network.spawn(in: relay, [Binaries.gatehouse, "relay", "--public-ipv4", "198.18.3.2", "--listen-port", "3478",
                                              "--auth-secret", secret, "--allow-peer", "198.18.0.0/15", "--operations-address", "127.0.0.1:0"])
            try await Wait.until("the relay listens", timeout: .seconds(20)) {
                try await relay.exec(["ss", "-uln"]).standardOutput.contains(":3478")
            }
            let username = RESTCredentials.username(expiry: Int64(Date().timeIntervalSince1970) + 600, id: "aioice")
            let socket = try ours.run { try UDPSocket(bindTo: SocketAddress("198.18.1.2", port: 0)) }
            let peer = try AioicePeer(in: theirs, arguments: [ourRole == "controlling" ? "controlled" : "controlling", "--turn", "198.18.3.2:3478",
                                                              "--turn-username", username,
                                                              "--turn-password", RESTCredentials.password(secret: secret, username: username)])
            let (candidates, outcome, received) = try await Self.meet(peer, socket: socket, ourRole: ourRole)
            let relayed = try #require(candidates.first { $0.kind == .relayed }, "aioice allocated on our relay: \(candidates)")
            #expect(relayed.address.address == "198.18.3.2")
            #expect(outcome.selected?.remote == relayed, "our agent selected aioice's relayed candidate: \(String(describing: outcome.selected))")
            #expect(received == Self.pingHex)
            #expect(outcome.answer == "pong ping from gatehouse", "data came back through the relay: \(peer.printed)")
        }
    }
}
