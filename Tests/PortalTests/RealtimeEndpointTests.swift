import ControlProtocol
import Foundation
import HummingbirdWSClient
import Logging
import Portal
import TestSupport
import Testing

/// The realtime API's frame layer against a `gatehouse portal` process and a real WebSocket client: the
/// upgrade refused without the right kind of token, `join` first with its version checked, frames that
/// do not fit answered with error replies without closing, heartbeats, and silence closing.
@Suite struct RealtimeEndpointTests {
    /// A live portal on a fresh database with a relay token (made by the operator's command) and a client
    /// token; heartbeats every 300 ms unless told otherwise.
    struct Live: Sendable {
        var port: Int
        var relayToken: String
        var clientToken: String
        var adminToken: String
        var database: String
    }

    /// A `gatehouse portal` process on a fresh database (its own process, so that the tests' blocking
    /// waits never starve the server), with a relay token made by the operator's command, a client token
    /// and heartbeats every 300 ms unless told otherwise.
    static func withPortal(heartbeat: Duration = .milliseconds(300), _ body: @Sendable (Live) async throws -> Void) async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let admin = try PortalAdminAPITests.initialise(database)
        // Relay tokens belong to the installation: the operator makes them, direct to the database.
        let made = try await Self.cli(["portal", "relay-token", "create", "--db", database])
        let relayToken = made.split(separator: "\n").last.map(String.init) ?? ""
        #expect(relayToken.hasPrefix("gh_relay_"), "\(made)")
        let seconds = Double(heartbeat.components.seconds) + Double(heartbeat.components.attoseconds) / 1e18
        let portal = try await PortalAdminAPITests.start(database, token: admin, extra: ["--heartbeat-interval", "\(seconds)"])
        defer { portal.process.stop() }
        let port = Int(portal.address.split(separator: ":").last ?? "") ?? 0
        func call(_ method: String, _ path: String, _ body: String) async throws -> (status: Int, body: String) {
            let command = ["curl", "-s", "-X", method, "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(admin)", "-H", "Content-Type: application/json",
                           "--data-binary", body, "http://\(portal.address)\(path)"]
            let output = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<CommandOutput, any Error>) in
                Thread { continuation.resume(with: Result { try Command.run(command) }) }.start()
            }
            let lines = output.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }
        let refused = try await call("POST", "/api/v1/tokens", #"{"kind": "relay"}"#)
        #expect(refused.status == 400, "account admins do not make relay tokens: \(refused.body)")
        let actor = try await call("POST", "/api/v1/actors", #"{"type": "user", "name": "Ann", "email": "ann@acme.test"}"#)
        let ann = (try JSONSerialization.jsonObject(with: Data(actor.body.utf8)) as? [String: Any])?["id"] as? String ?? ""
        let client = try await call("POST", "/api/v1/tokens", #"{"kind": "client", "actor_id": "\#(ann)"}"#)
        let clientToken = try #require((try JSONSerialization.jsonObject(with: Data(client.body.utf8)) as? [String: Any])?["secret"] as? String)
        try await body(Live(port: port, relayToken: relayToken, clientToken: clientToken, adminToken: admin, database: database))
    }

    /// The status and body of a request to a realtime path, as curl sees it: a WebSocket upgrade request
    /// with `upgrade`, a plain GET without.
    /// curl runs on a thread of its own: the portal serves from the same process's cooperative pool,
    /// which a blocking wait on one of its two threads would starve under the suite's load.
    static func request(_ port: Int, _ path: String, token: String?, upgrade: Bool = true) async throws -> (status: Int, body: String) {
        let bodyFile = FileManager.default.temporaryDirectory.appending(path: "gatehouse-upgrade-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: bodyFile) }
        var arguments = ["curl", "-s", "-o", bodyFile.path, "-w", "%{http_code}", "--max-time", "2", "http://127.0.0.1:\(port)\(path)"]
        if upgrade {
            arguments += ["-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
                          "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
        }
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        let command = arguments
        let output = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<CommandOutput, any Error>) in
            Thread { continuation.resume(with: Result { try Command.run(command, check: false) }) }.start()
        }
        let body = (try? String(contentsOf: bodyFile, encoding: .utf8)) ?? ""
        return (Int(output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, body)
    }

    /// Connects as a relay, sends `frames` one by one, and collects what comes back (heartbeats aside)
    /// until `until` says it has enough; then returns them with the close frame, if the portal closed.
    static func converse(_ port: Int, _ path: String, token: String, _ frames: [String], closeAfter: Bool = true,
                         during: (@Sendable () async throws -> Void)? = nil,
                         until: @escaping @Sendable ([[String: Any]]) -> Bool) async throws -> (answers: [[String: Any]], heartbeats: Int, close: WebSocketCloseFrame?) {
        let collected = Collected()
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 22)
        configuration.additionalHeaders[.authorization] = "Bearer \(token)"
        let close = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)\(path)", configuration: configuration,
                                                      logger: Logger(label: "test")) { inbound, outbound, _ in
            for frame in frames { try await outbound.write(.text(frame)) }
            for try await message in inbound.messages(maxSize: 1 << 22) {
                guard case let .text(text) = message,
                      let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { continue }
                if object["event"] as? String == "heartbeat" {
                    collected.heartbeat()
                } else if until(collected.add(object)) {
                    break
                }
            }
            try await during?()
            if closeAfter { try await outbound.close(.normalClosure, reason: nil) }
        }
        return (collected.answers, collected.heartbeats, close)
    }

    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var _answers: [[String: Any]] = []
        private var _heartbeats = 0
        var answers: [[String: Any]] { lock.withLock { _answers } }
        var heartbeats: Int { lock.withLock { _heartbeats } }
        func add(_ object: [String: Any]) -> [[String: Any]] { lock.withLock { _answers.append(object); return _answers } }
        func heartbeat() { lock.withLock { _heartbeats += 1 } }
    }

    static func replyCode(_ object: [String: Any]) -> String? {
        guard object["event"] as? String == "reply", let payload = object["payload"] as? [String: Any] else { return nil }
        return payload["status"] as? String == "ok" ? "ok" : payload["code"] as? String
    }

    /// hummingbird-websocket 2.8.1 answers every refused upgrade with a bare 400, so the reason (401 or
    /// 403, as JSON) is given to the same request without the upgrade headers.
    @Test func theUpgradeNeedsATokenOfThePathsKind() async throws {
        try await Self.withPortal { live in
            let (port, relayToken, clientToken) = (live.port, live.relayToken, live.clientToken)
            for (path, token) in [("/api/relay", nil), ("/api/gateway", "gh_gateway_nope"), ("/api/relay", clientToken)] {
                let refused = try await Self.request(port, path, token: token)
                #expect(refused.status != 101 && refused.status >= 400, "\(path) with \(token ?? "no token"): \(refused)")
            }
            let none = try await Self.request(port, "/api/relay", token: nil, upgrade: false)
            #expect(none.status == 401 && none.body.contains("\"unauthorized\"") && none.body.contains("relay token"), "\(none)")
            #expect(try await Self.request(port, "/api/gateway", token: "gh_gateway_nope", upgrade: false).status == 401)
            let wrongKind = try await Self.request(port, "/api/relay", token: clientToken, upgrade: false)
            #expect(wrongKind.status == 403 && wrongKind.body.contains("client token"), "\(wrongKind)")
            let plain = try await Self.request(port, "/api/relay", token: relayToken, upgrade: false)
            #expect(plain.status == 426 && plain.body.contains("upgrade_required"), "\(plain)")
            #expect(try await Self.request(port, "/api/relay", token: relayToken).status == 101, "the relay's own token upgrades")
            #expect(try await Self.request(port, "/api/client", token: clientToken).status == 101)
        }
    }

    @Test func framesThatDoNotFitGetErrorRepliesAndJoinComesFirst() async throws {
        try await Self.withPortal { live in
            let (port, relayToken) = (live.port, live.relayToken)
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "1.0", "name": "r1", "secret": "s", "ipv4": "127.0.0.1", "port": 3478}}"#
            let frames = [
                "not json", #"{"event": "create_flow", "ref": "1", "payload": {}}"#, #"{"event": "join", "ref": "2", "payload": {"name": "r1"}}"#,
                #"{"event": "reply", "ref": "3", "payload": {"status": "ok"}}"#,
                "{\"event\": \"heartbeat\", \"pad\": \"" + String(repeating: "x", count: ControlFrame.maximumSize) + "\"}",
                join,
            ]
            let result = try await Self.converse(port, "/api/relay", token: relayToken, frames) { $0.count >= 6 }
            let codes = result.answers.map { Self.replyCode($0) ?? "?" }
            #expect(codes == ["malformed", "unknown_event", "invalid_payload", "join_required", "malformed", "ok"], "\(result.answers)")
            #expect(result.answers.map { $0["ref"] as? String } == [nil, "1", "2", "3", nil, "j"], "each error echoes the ref it could read")
            let invalid = result.answers[2]["payload"] as? [String: Any]
            #expect((invalid?["message"] as? String)?.contains("\"version\" is missing") == true, "names the missing field: \(String(describing: invalid))")
        }
    }

    @Test func aMajorVersionNotSpokenIsRefusedAndClosed() async throws {
        try await Self.withPortal { live in
            let (port, relayToken) = (live.port, live.relayToken)
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "2.0", "name": "r1", "secret": "s", "port": 3478}}"#
            let result = try await Self.converse(port, "/api/relay", token: relayToken, [join], closeAfter: false) { _ in false }
            #expect(result.answers.map { Self.replyCode($0) } == ["unsupported_version"])
            #expect(result.close?.closeCode == .protocolError, "\(String(describing: result.close))")
        }
    }

    @Test func heartbeatsFlowAndSilenceCloses() async throws {
        try await Self.withPortal { live in
            let (port, clientToken) = (live.port, live.clientToken)
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "1.0", "external_id": "m1", "name": "laptop", "public_key": "k"}}"#
            let started = ContinuousClock.now
            // Joined, then silent: the portal's heartbeats arrive every 300 ms, and after three intervals
            // without a frame from this side it closes.
            let result = try await Self.converse(port, "/api/client", token: clientToken, [join], closeAfter: false) { _ in false }
            let elapsed = ContinuousClock.now - started
            #expect(result.answers.map { Self.replyCode($0) } == ["ok"])
            // Two arrive on an idle machine (at 300 and 600 ms); a loaded one may stretch the sleeps past the deadline.
            #expect(result.heartbeats >= 1, "heartbeats: \(result.heartbeats)")
            #expect(result.close?.closeCode == .goingAway, "\(String(describing: result.close))")
            #expect(elapsed >= .milliseconds(900), "not before three intervals: \(elapsed)")
            print("silent client closed after \(elapsed), \(result.heartbeats) heartbeats received")
        }
    }

    /// A relay is online from its accepted join to the end of its connection: the admin API and
    /// `gatehouse admin relay list` show it then, and only then; a join that does not fit leaves it offline.
    @Test func aJoinedRelayIsOnlineWhileConnected() async throws {
        // Heartbeats every 5 s here, so that a slow machine does not close the relay's connection while it is looked at.
        try await Self.withPortal(heartbeat: .seconds(5)) { live in
            let (port, relayToken, admin) = (live.port, live.relayToken, live.adminToken)
            @Sendable func relays() async throws -> [[String: Any]] {
                let answer = try await Self.request(port, "/api/v1/relays", token: admin, upgrade: false)
                return (try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any])?["data"] as? [[String: Any]] ?? []
            }
            #expect(try await relays().isEmpty)
            let bad = #"{"event": "join", "ref": "b", "payload": {"version": "1.0", "name": "r0", "secret": "s", "ipv4": "127.0.0.1", "port": 0}}"#
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "1.0", "name": "relay-east", "secret": "s", "ipv4": "198.51.100.7", "ipv6": "2001:db8::7", "port": 3478}}"#
            let seen = Seen()
            // Joined: look while the connection is open.
            let result = try await Self.converse(port, "/api/relay", token: relayToken, [bad, join], during: {
                seen.set(try await relays())
                seen.setCLI(try await Self.cli(["admin", "relay", "list", "--portal-url", "http://127.0.0.1:\(port)", "--token", admin]))
            }) { $0.count >= 2 }
            #expect(result.answers.map { Self.replyCode($0) } == ["invalid_payload", "ok"])
            let online = seen.relays ?? []
            #expect(online.map { $0["name"] as? String } == ["relay-east"], "\(online)")
            #expect(online.first?["port"] as? Int == 3478 && online.first?["ipv6"] as? String == "2001:db8::7")
            #expect(online.first?["secret"] == nil, "never its secret")
            #expect(seen.cli?.contains("relay-east") == true && seen.cli?.contains("198.51.100.7") == true, "\(seen.cli ?? "")")
            // Gone once its connection ends.
            var after: [[String: Any]] = [["pending": true]]
            for _ in 0..<50 where !after.isEmpty {
                after = try await relays()
                if !after.isEmpty { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(after.isEmpty, "offline after the connection ended: \(after)")
        }
    }

    /// The operator lists relay tokens (never their secrets) and revokes one: it no longer connects.
    @Test func theOperatorListsAndRevokesRelayTokens() async throws {
        try await Self.withPortal { live in
            #expect(try await Self.request(live.port, "/api/relay", token: live.relayToken).status == 101)
            let listed = try await Self.cli(["portal", "relay-token", "list", "--db", live.database])
            let lines = listed.split(separator: "\n")
            #expect(lines.count == 2 && lines[0].hasPrefix("ID"), "\(listed)")
            #expect(!listed.contains("gh_relay_"), "no secret in the list")
            let id = String(lines[1].split(separator: " ").first ?? "")
            #expect(try await Self.cli(["portal", "relay-token", "revoke", id, "--db", live.database]).contains("revoked"))
            let refused = try await Self.request(live.port, "/api/relay", token: live.relayToken, upgrade: false)
            #expect(refused.status == 401, "\(refused)")
            #expect(try await Self.request(live.port, "/api/relay", token: live.relayToken).status != 101)
        }
    }

    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var _relays: [[String: Any]]?
        private var _cli: String?
        var relays: [[String: Any]]? { lock.withLock { _relays } }
        var cli: String? { lock.withLock { _cli } }
        func set(_ value: [[String: Any]]?) { lock.withLock { _relays = value } }
        func setCLI(_ value: String?) { lock.withLock { _cli = value } }
    }

    /// `gatehouse ARGUMENTS` on a thread of its own; its standard output.
    static func cli(_ arguments: [String]) async throws -> String {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<String, any Error>) in
            Thread { continuation.resume(with: Result { try Command.run([Binaries.gatehouse] + arguments).standardOutput }) }.start()
        }
    }
}
