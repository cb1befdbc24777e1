import ControlProtocol
import Foundation
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
            let output = try await Command.run(command)
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
    static func request(_ port: Int, _ path: String, token: String?, upgrade: Bool = true) async throws -> (status: Int, body: String) {
        let bodyFile = FileManager.default.temporaryDirectory.appending(path: "gatehouse-upgrade-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: bodyFile) }
        var arguments = ["curl", "-s", "-o", bodyFile.path, "-w", "%{http_code}", "--max-time", "2", "http://127.0.0.1:\(port)\(path)"]
        if upgrade {
            arguments += ["-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
                          "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
        }
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        let output = try await Command.run(arguments, check: false)
        let body = (try? String(contentsOf: bodyFile, encoding: .utf8)) ?? ""
        return (Int(output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, body)
    }

    /// What the Python client (`Tests/Interop/realtime_client.py`, the `websockets` library in a process
    /// of its own) saw of one connection.
    struct Conversation {
        var answers: [[String: Any]]
        var heartbeats: Int
        var closeCode: Int?
        var elapsed: Double
    }

    /// `ignore`: events not counted as answers (a real gateway trickles ICE candidates at its own pace).
    static func clientArguments(_ port: Int, _ path: String, token: String, _ frames: [String], answers: Int?, hold: Bool = false,
                                ignore: [String] = ["ice_candidates"]) -> [String] {
        let root = Binaries.packageRoot
        var arguments = [root.appending(path: ".venv/bin/python").path(percentEncoded: false),
                         root.appending(path: "Tests/Interop/realtime_client.py").path(percentEncoded: false),
                         "ws://127.0.0.1:\(port)\(path)", token]
        if hold { arguments.append("--hold") }
        if let answers { arguments += ["--answers", "\(answers)"] }
        if !ignore.isEmpty { arguments += ["--ignore", ignore.joined(separator: ",")] }
        // Frames go in a file, one per line: a frame over the size limit does not fit on a command line.
        let file = FileManager.default.temporaryDirectory.appending(path: "gatehouse-frames-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: file.path, contents: Data(frames.joined(separator: "\n").utf8))
        arguments += ["--frames", file.path]
        return arguments
    }

    /// Removes the frames file `clientArguments` made.
    static func removeFrames(_ arguments: [String]) {
        if let index = arguments.firstIndex(of: "--frames"), index + 1 < arguments.count {
            try? FileManager.default.removeItem(atPath: arguments[index + 1])
        }
    }

    static func parse(_ output: String) throws -> Conversation {
        let line = try #require(output.split(separator: "\n").last.map(String.init), "no output")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(output)")
        return Conversation(answers: object["answers"] as? [[String: Any]] ?? [], heartbeats: object["heartbeats"] as? Int ?? 0,
                            closeCode: object["close_code"] as? Int, elapsed: object["elapsed"] as? Double ?? 0)
    }

    /// Connects, sends `frames`, and reads until `answers` answers came (then closes) or, without, until
    /// the portal closes.
    static func converse(_ port: Int, _ path: String, token: String, _ frames: [String], answers: Int? = nil) async throws -> Conversation {
        let arguments = clientArguments(port, path, token: token, frames, answers: answers)
        defer { removeFrames(arguments) }
        let output = try await Command.run(arguments)
        return try parse(output.standardOutput)
    }

    static func replyCode(_ object: [String: Any]) -> String? {
        guard object["event"] as? String == "reply", let payload = object["payload"] as? [String: Any] else { return nil }
        return payload["status"] as? String == "ok" ? "ok" : payload["code"] as? String
    }

    /// A bad token is refused at the upgrade itself: 401 (none, or a bad one) or 403 (another kind's),
    /// with the reason as JSON; the same request without the upgrade headers says the same, and 426
    /// when the token is right.
    @Test func theUpgradeNeedsATokenOfThePathsKind() async throws {
        try await Self.withPortal { live in
            let (port, relayToken, clientToken) = (live.port, live.relayToken, live.clientToken)
            let none = try await Self.request(port, "/api/relay", token: nil)
            #expect(none.status == 401 && none.body.contains("\"unauthorized\"") && none.body.contains("relay token"), "\(none)")
            let bad = try await Self.request(port, "/api/gateway", token: "gh_gateway_nope")
            #expect(bad.status == 401 && bad.body.contains("gateway token"), "\(bad)")
            let wrongKind = try await Self.request(port, "/api/relay", token: clientToken)
            #expect(wrongKind.status == 403 && wrongKind.body.contains("client token"), "\(wrongKind)")
            #expect(try await Self.request(port, "/api/relay", token: nil, upgrade: false).status == 401)
            #expect(try await Self.request(port, "/api/relay", token: clientToken, upgrade: false).status == 403)
            let plain = try await Self.request(port, "/api/relay", token: relayToken, upgrade: false)
            #expect(plain.status == 426 && plain.body.contains("upgrade_required"), "\(plain)")
            #expect(try await Self.request(port, "/api/relay", token: relayToken).status == 101, "the relay's own token upgrades")
            #expect(try await Self.request(port, "/api/client", token: clientToken).status == 101)
            // Other requests are not held up by the gate.
            #expect(try await Self.request(port, "/healthz", token: nil, upgrade: false).status == 200)
        }
    }

    @Test func framesThatDoNotFitGetErrorRepliesAndJoinComesFirst() async throws {
        try await Self.withPortal { live in
            let (port, relayToken) = (live.port, live.relayToken)
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "1.0", "name": "r1", "secret": "relay-secret-0123456789", "ipv4": "127.0.0.1", "port": 3478}}"#
            let frames = [
                "not json", #"{"event": "create_flow", "ref": "1", "payload": {}}"#, #"{"event": "join", "ref": "2", "payload": {"name": "r1"}}"#,
                #"{"event": "reply", "ref": "3", "payload": {"status": "ok"}}"#,
                "{\"event\": \"heartbeat\", \"pad\": \"" + String(repeating: "x", count: ControlFrame.maximumSize) + "\"}",
                join,
            ]
            let result = try await Self.converse(port, "/api/relay", token: relayToken, frames, answers: 6)
            let codes = result.answers.map { Self.replyCode($0) ?? "?" }
            #expect(codes == ["malformed", "unknown_event", "invalid_payload", "join_required", "malformed", "ok"], "\(result.answers)")
            #expect(result.answers.map { $0["ref"] as? String } == [nil, "1", "2", "3", nil, "j"], "each error echoes the ref it could read")
            let invalid = result.answers.count > 2 ? result.answers[2]["payload"] as? [String: Any] : nil  // never trap: a crash takes the whole suite
            #expect((invalid?["message"] as? String)?.contains("\"version\" is missing") == true, "names the missing field: \(String(describing: invalid))")
        }
    }

    @Test func aMajorVersionNotSpokenIsRefusedAndClosed() async throws {
        try await Self.withPortal { live in
            let (port, relayToken) = (live.port, live.relayToken)
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "2.0", "name": "r1", "secret": "relay-secret-0123456789", "port": 3478}}"#
            let result = try await Self.converse(port, "/api/relay", token: relayToken, [join])
            #expect(result.answers.map { Self.replyCode($0) } == ["unsupported_version"])
            #expect(result.closeCode == 1002, "closed as a protocol error: \(String(describing: result.closeCode))")
        }
    }

    @Test func heartbeatsFlowAndSilenceCloses() async throws {
        try await Self.withPortal { live in
            let (port, clientToken) = (live.port, live.clientToken)
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "1.0", "external_id": "m1", "name": "laptop", "public_key": "AWsol1uwGdDgnn3Nr3WAqpkNeY17dTjR8yULwFSZ8Hg="}}"#
            // Joined, then silent: the portal's heartbeats arrive every 300 ms, and after three intervals
            // without a frame from this side it closes.
            let result = try await Self.converse(port, "/api/client", token: clientToken, [join])
            #expect(result.answers.map { Self.replyCode($0) ?? $0["event"] as? String } == ["ok", "init"], "\(result.answers)")
            // Two arrive on an idle machine (at 300 and 600 ms); a loaded one may stretch the sleeps past the deadline.
            #expect(result.heartbeats >= 1, "heartbeats: \(result.heartbeats)")
            #expect(result.closeCode == 1001, "closed as going away: \(String(describing: result.closeCode))")
            #expect(result.elapsed >= 0.9, "not before three intervals: \(result.elapsed)")
            print("silent client closed after \(result.elapsed) s, \(result.heartbeats) heartbeats received")
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
            let bad = #"{"event": "join", "ref": "b", "payload": {"version": "1.0", "name": "r0", "secret": "relay-secret-0123456789", "ipv4": "127.0.0.1", "port": 0}}"#
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "1.0", "name": "relay-east", "secret": "relay-secret-0123456789", "ipv4": "198.51.100.7", "ipv6": "2001:db8::7", "port": 3478}}"#
            // Joined: look while the connection is open (the client holds it until it is stopped).
            let arguments = Self.clientArguments(port, "/api/relay", token: relayToken, [bad, join], answers: 2, hold: true)
            defer { Self.removeFrames(arguments) }
            let relay = try BackgroundProcess(arguments: arguments)
            defer { _ = relay.stop() }
            try await relay.waitForOutput(containing: "answered", timeout: .seconds(30))
            let online = try await relays()
            let listed = try await Self.cli(["admin", "relay", "list", "--portal-url", "http://127.0.0.1:\(port)", "--token", admin])
            #expect(relay.stop() == 0, "the client closes cleanly when stopped: \(relay.output)")
            let result = try Self.parse(relay.output)
            #expect(result.answers.map { Self.replyCode($0) } == ["invalid_payload", "ok"], "\(relay.output)")
            #expect(online.map { $0["name"] as? String } == ["relay-east"], "\(online)")
            #expect(online.first?["port"] as? Int == 3478 && online.first?["ipv6"] as? String == "2001:db8::7")
            #expect(online.first?["secret"] == nil, "never its secret")
            #expect(listed.contains("relay-east") && listed.contains("198.51.100.7"), "\(listed)")
            // Gone once its connection ends.
            try await Wait.until("the relay is offline after its connection ended", timeout: .seconds(10)) { try await relays().isEmpty }
        }
    }

    /// The operator lists relay tokens (never their secrets) and revokes one: it no longer connects.
    @Test func theOperatorListsAndRevokesRelayTokens() async throws {
        try await Self.withPortal { live in
            #expect(try await Self.request(live.port, "/api/relay", token: live.relayToken).status == 101)
            // A relay joined with the token, answering heartbeats: its connection is closed when the token is revoked.
            let join = #"{"event": "join", "ref": "j", "payload": {"version": "1.0", "name": "relay-west", "secret": "relay-secret-0123456789", "ipv4": "198.51.100.8", "port": 3478}}"#
            let arguments = Self.clientArguments(live.port, "/api/relay", token: live.relayToken, [join], answers: nil, hold: true)
                + ["--heartbeat", "--timeout", "60"]
            defer { Self.removeFrames(arguments) }
            let relay = try BackgroundProcess(arguments: arguments)
            defer { relay.stop() }
            // Generous: under the full suite the client's start alone has taken more than ten seconds.
            try await Wait.until("the relay is online", timeout: .seconds(30)) {
                try await Self.request(live.port, "/api/v1/relays", token: live.adminToken, upgrade: false).body.contains("relay-west")
            }
            let listed = try await Self.cli(["portal", "relay-token", "list", "--db", live.database])
            let lines = listed.split(separator: "\n")
            #expect(lines.count == 2 && lines[0].hasPrefix("ID"), "\(listed)")
            #expect(!listed.contains("gh_relay_"), "no secret in the list")
            let id = lines.count > 1 ? String(lines[1].split(separator: " ").first ?? "") : ""
            #expect(try await Self.cli(["portal", "relay-token", "revoke", id, "--db", live.database]).contains("revoked"))
            let refused = try await Self.request(live.port, "/api/relay", token: live.relayToken, upgrade: false)
            #expect(refused.status == 401, "\(refused)")
            #expect(try await Self.request(live.port, "/api/relay", token: live.relayToken).status != 101)
            try await Wait.until("the revoked relay's connection is closed", timeout: .seconds(30)) { !relay.isRunning }
            #expect(try Self.parse(relay.output).closeCode == 1008, "closed as a policy violation: \(relay.output)")
            #expect(!(try await Self.request(live.port, "/api/v1/relays", token: live.adminToken, upgrade: false).body.contains("relay-west")))
        }
    }

    /// `gatehouse ARGUMENTS` on a thread of its own; its standard output.
    static func cli(_ arguments: [String]) async throws -> String {
        try await Command.run([Binaries.gatehouse] + arguments).standardOutput
    }
}
