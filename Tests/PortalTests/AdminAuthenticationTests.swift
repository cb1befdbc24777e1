import Foundation
import TestSupport
import Testing

/// Who may use the admin API: tokens of other kinds are refused with 403 (they authenticated, they may
/// not do this), in process; over real HTTP (a peer address takes a connection), the bearer scheme is
/// case-insensitive (RFC 9110 section 11.1) and a token's last use is recorded with its address at most
/// once a minute.
@Suite struct AdminAuthenticationTests {
    @Test func tokensOfOtherKindsAre403AndBadOnes401() async throws {
        try await InProcessPortal.with { portal in
            let site = try await portal.json(portal.call("POST", "/api/v1/sites", body: #"{"name": "hq"}"#).body)["id"] as? String ?? ""
            let user = try await portal.json(portal.call("POST", "/api/v1/actors", body: #"{"type": "user", "name": "Ann", "email": "ann@acme.test"}"#).body)["id"] as? String ?? ""
            let gateway = try await portal.json(portal.call("POST", "/api/v1/tokens", body: #"{"kind": "gateway", "site_id": "\#(site)"}"#).body)
            let client = try await portal.json(portal.call("POST", "/api/v1/tokens", body: #"{"kind": "client", "actor_id": "\#(user)"}"#).body)
            for (kind, token) in [("gateway", gateway["secret"] as? String), ("client", client["secret"] as? String)] {
                let secret = try #require(token, "\(kind): \(gateway) \(client)")
                let answer = try await portal.call("GET", "/api/v1/sites", token: secret)
                #expect(answer.status == 403, "a \(kind) token: \(answer.status) \(answer.body)")
                #expect(answer.body.contains("forbidden"))
            }
            #expect(try await portal.call("GET", "/api/v1/sites", token: "gh_admin_not-a-real-token").status == 401)
            #expect(try await portal.call("GET", "/api/v1/sites", token: "").status == 401)
        }
    }

    @Test func theBearerSchemeIsCaseInsensitiveAndUseIsRecordedOnceAMinute() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        let portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let output = try await Command.run([
                "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: \(scheme) \(token)", "http://\(portal.address)/api/v1/sites",
            ])
            #expect(output.standardOutput == "200", "scheme \(scheme)")
        }
        func adminTokenUse() throws -> (at: String?, address: String?) {
            let list = try portal.json(portal.call("GET", "/api/v1/tokens").body)["data"] as? [[String: Any]] ?? []
            let admin = list.first { $0["kind"] as? String == "admin_api" }
            return (admin?["last_used_at"] as? String, admin?["last_used_address"] as? String)
        }
        let first = try adminTokenUse()
        #expect(first.at != nil)
        #expect(first.address == "127.0.0.1", "the address the token was used from")
        // More requests within the minute (each a curl process, milliseconds apart; the stored time has
        // millisecond resolution, so a write would show): reads stay reads, the recorded use does not move.
        let stored = try await Command.run(["sqlite3", database, "SELECT last_used_at FROM token WHERE kind = 'admin_api'"]).standardOutput
        for _ in 0..<5 { _ = try portal.call("GET", "/api/v1/sites") }
        #expect(try adminTokenUse().at == first.at)
        #expect(try await Command.run(["sqlite3", database, "SELECT last_used_at FROM token WHERE kind = 'admin_api'"]).standardOutput == stored)
    }

    /// Tokens resolved by recent requests are kept for a second; a write forgets them, so a token revoked
    /// (or an admin disabled) just after it was used is refused at its very next request.
    @Test func aRevokedTokenOrDisabledAdminIsRefusedAtOnceEvenRightAfterUse() async throws {
        try await InProcessPortal.with { portal in
            let grace = try await portal.json(portal.call("POST", "/api/v1/actors", body: #"{"type": "admin", "name": "Grace", "email": "grace@acme.test"}"#).body)["id"] as? String ?? ""
            func adminToken() async throws -> (id: String, secret: String) {
                let created = try await portal.json(portal.call("POST", "/api/v1/tokens", body: #"{"kind": "admin_api", "actor_id": "\#(grace)"}"#).body)
                return (created["id"] as? String ?? "", created["secret"] as? String ?? "")
            }
            let first = try await adminToken()
            #expect(try await portal.call("GET", "/api/v1/sites", token: first.secret).status == 200)
            #expect(try await portal.call("DELETE", "/api/v1/tokens/\(first.id)").status == 204)
            #expect(try await portal.call("GET", "/api/v1/sites", token: first.secret).status == 401, "revoked: refused at once")

            let second = try await adminToken()
            #expect(try await portal.call("GET", "/api/v1/sites", token: second.secret).status == 200)
            #expect(try await portal.call("PATCH", "/api/v1/actors/\(grace)", body: #"{"disabled": true}"#).status == 200)
            #expect(try await portal.call("GET", "/api/v1/sites", token: second.secret).status == 401, "its admin disabled: refused at once")
            #expect(try await portal.call("PATCH", "/api/v1/actors/\(grace)", body: #"{"disabled": false}"#).status == 200)
            #expect(try await portal.call("GET", "/api/v1/sites", token: second.secret).status == 200, "enabled again")
        }
    }
}
