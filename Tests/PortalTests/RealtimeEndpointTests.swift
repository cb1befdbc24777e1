import ControlProtocol
import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import Persistence
import Portal
import TestSupport
import Testing

/// The realtime API's frame layer over a real server on 127.0.0.1 and a real WebSocket client: the
/// upgrade refused without the right kind of token, `join` first with its version checked, frames that
/// do not fit answered with error replies without closing, heartbeats, and silence closing.
@Suite struct RealtimeEndpointTests {
    /// A live portal on a fresh database with a relay token and a client token; heartbeats every 300 ms.
    static func withPortal(_ body: @Sendable (_ port: Int, _ relayToken: String, _ clientToken: String) async throws -> Void) async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let admin = try PortalAdminAPITests.initialise(database)
        let repository = SQLitePortalRepository(database: try AppDatabase(path: database))
        var configuration = PortalConfiguration()
        configuration.port = 0
        configuration.realtime.heartbeatInterval = .milliseconds(300)
        let app = PortalApplication.build(configuration: configuration, repository: repository, logger: Logger(label: "test"))
        try await app.test(.live) { client in
            func token(_ body: String) async throws -> String {
                let response = try await client.execute(uri: "/api/v1/tokens", method: .post,
                                                        headers: [.authorization: "Bearer \(admin)", .contentType: "application/json"],
                                                        body: ByteBuffer(string: body))
                let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                return try #require(object?["secret"] as? String, "\(String(buffer: response.body))")
            }
            let actors = try await client.execute(uri: "/api/v1/actors", method: .post,
                                                  headers: [.authorization: "Bearer \(admin)", .contentType: "application/json"],
                                                  body: ByteBuffer(string: #"{"type": "user", "name": "Ann", "email": "ann@acme.test"}"#))
            let ann = (try JSONSerialization.jsonObject(with: Data(buffer: actors.body)) as? [String: Any])?["id"] as? String ?? ""
            try await body(try #require(client.port), try await token(#"{"kind": "relay"}"#),
                           try await token(#"{"kind": "client", "actor_id": "\#(ann)"}"#))
        }
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
        try await Self.withPortal { port, relayToken, clientToken in
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
        try await Self.withPortal { port, relayToken, _ in
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
        try await Self.withPortal { port, relayToken, _ in
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "2.0", "name": "r1", "secret": "s", "port": 3478}}"#
            let result = try await Self.converse(port, "/api/relay", token: relayToken, [join], closeAfter: false) { _ in false }
            #expect(result.answers.map { Self.replyCode($0) } == ["unsupported_version"])
            #expect(result.close?.closeCode == .protocolError, "\(String(describing: result.close))")
        }
    }

    @Test func heartbeatsFlowAndSilenceCloses() async throws {
        try await Self.withPortal { port, _, clientToken in
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "1.0", "external_id": "m1", "name": "laptop", "public_key": "k"}}"#
            let started = ContinuousClock.now
            // Joined, then silent: the portal's heartbeats arrive every 300 ms, and after three intervals
            // without a frame from this side it closes.
            let result = try await Self.converse(port, "/api/client", token: clientToken, [join], closeAfter: false) { _ in false }
            let elapsed = ContinuousClock.now - started
            #expect(result.answers.map { Self.replyCode($0) } == ["ok"])
            #expect(result.heartbeats >= 2, "heartbeats: \(result.heartbeats)")
            #expect(result.close?.closeCode == .goingAway, "\(String(describing: result.close))")
            #expect(elapsed >= .milliseconds(900), "not before three intervals: \(elapsed)")
            print("silent client closed after \(elapsed), \(result.heartbeats) heartbeats received")
        }
    }
}
