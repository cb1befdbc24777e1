import Foundation
import TestSupport
import Testing

/// The admin API on a real SQLite file: through a real portal process on 127.0.0.1:0 where a test needs
/// one (a restart; the CLI suites below use `start` too), in process through the router otherwise.
@Suite struct PortalAdminAPITests {
    struct Portal {
        let process: BackgroundProcess
        let address: String
        let token: String
        let database: String

        /// `curl` a request; returns status and body.
        func call(_ method: String, _ path: String, body: String? = nil, token: String? = nil) throws -> (status: Int, body: String) {
            var arguments = ["curl", "-s", "-X", method, "-w", "\n%{http_code}", "http://\(address)\(path)"]
            if let bearer = token ?? Optional(self.token), !bearer.isEmpty { arguments += ["-H", "Authorization: Bearer \(bearer)"] }
            if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", body] }
            let output = try Command.runBlocking(arguments)
            let lines = output.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }

        func json(_ body: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
        }

        /// `gatehouse admin ARGUMENTS` against this portal, as an operator's shell runs it.
        func admin(_ arguments: [String]) throws -> CommandOutput {
            try Command.runBlocking([Binaries.gatehouse, "admin"] + arguments + ["--portal-url", "http://\(address)", "--token", token], check: false)
        }
    }

    static func temporaryDatabase() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-portal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appending(path: "portal.sqlite").path
    }

    static func initialise(_ database: String) throws -> String {
        let output = try Command.runBlocking([Binaries.gatehouse, "portal", "init", "--db", database, "--admin-email", "admin@acme.test"])
        let token = output.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        #expect(token.hasPrefix("gh_admin_"), "\(output.standardOutput)")
        return token
    }

    static func start(_ database: String, token: String, extra: [String] = []) async throws -> Portal {
        let process = try BackgroundProcess(arguments: [Binaries.gatehouse, "portal", "--db", database, "--listen", "127.0.0.1:0"] + extra)
        let address = try await process.waitForMatch(#""?address"?[=:]"?([0-9.]+:\d+).*portal listening"#)
        return Portal(process: process, address: address, token: token, database: database)
    }

    @Test func initServeCreateAndFindEverythingAfterARestart() async throws {
        let database = try Self.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try Self.initialise(database)
        var portal = try await Self.start(database, token: token)
        #expect(try portal.call("GET", "/healthz", token: "").status == 200)
        let created = try portal.call("POST", "/api/v1/sites", body: #"{"name": "hq"}"#)
        #expect(created.status == 201, "\(created.body)")
        #expect(try portal.json(created.body)["name"] as? String == "hq")
        _ = try portal.call("POST", "/api/v1/sites", body: #"{"name": "lab"}"#)

        portal.process.stop()
        portal = try await Self.start(database, token: token)
        defer { portal.process.stop() }
        let listed = try portal.call("GET", "/api/v1/sites")
        #expect(listed.status == 200)
        let names = (try portal.json(listed.body)["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["hq", "lab"], "the file kept everything across a restart")
        // The database holds the token's hash, never the token: search the files' bytes for either.
        let files = [database, database + "-wal"].compactMap { FileManager.default.contents(atPath: $0) }
        #expect(!files.isEmpty)
        let needle = Data(token.utf8)
        #expect(files.allSatisfy { $0.range(of: needle) == nil }, "the token's clear text is in the database files")
        let hash = try await Command.run(["sqlite3", database, "SELECT secret_hash FROM token"]).standardOutput
        #expect(hash.trimmingCharacters(in: .whitespacesAndNewlines).count == 64, "a SHA-256 hex digest is stored")
    }

    @Test func parallelWritesLeaveAConsistentDatabase() async throws {
        try await InProcessPortal.with { portal in
            let database = portal.database
            // 30 distinct names and 10 racing for the same one, all at once.
            let names = (0..<30).map { "site-\($0)" } + Array(repeating: "contested", count: 10)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for name in names {
                    group.addTask { try await portal.call("POST", "/api/v1/sites", body: "{\"name\": \"\(name)\"}").status }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 201 }.count == 31, "every distinct name and exactly one contested one: \(statuses)")
            #expect(statuses.filter { $0 == 409 }.count == 9)
            let listed = try await portal.json(try portal.call("GET", "/api/v1/sites?limit=500").body)
            #expect((listed["data"] as? [Any])?.count == 31)
            // One audit event per successful write, none for a refused one (checked in the file itself).
            let audit = try await Command.run(["sqlite3", database, "SELECT count(*) FROM audit_event WHERE subject_type = 'site'"])
            #expect(audit.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "31")
        }
    }

    @Test func paginationHandsOutACursor() async throws {
        try await InProcessPortal.with { portal in
            for name in ["a", "b", "c", "d", "e"] { _ = try await portal.call("POST", "/api/v1/sites", body: "{\"name\": \"\(name)\"}") }
            let first = try await portal.json(try portal.call("GET", "/api/v1/sites?limit=2").body)
            #expect((first["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["a", "b"])
            let cursor = try #require(first["next_cursor"] as? String)
            let second = try await portal.json(try portal.call("GET", "/api/v1/sites?limit=2&cursor=\(cursor)").body)
            #expect((second["data"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["c", "d"])
        }
    }

    @Test func badInputGetsTheRightStatusAMessageAndChangesNothing() async throws {
        try await InProcessPortal.with { portal in
            _ = try await portal.call("POST", "/api/v1/sites", body: #"{"name": "hq"}"#)

            let cases: [(String, String, String?, String?, Int, String)] = [
                ("POST", "/api/v1/sites", #"{"name": "hq"}"#, nil, 409, "conflict"),
                ("POST", "/api/v1/sites", #"{"name": "#, nil, 400, "invalid"),
                ("POST", "/api/v1/sites", #"{"name": 7}"#, nil, 400, "invalid"),
                ("POST", "/api/v1/sites", #"{"name": "x", "colour": "red"}"#, nil, 400, "invalid"),
                ("POST", "/api/v1/sites", #"{}"#, nil, 400, "invalid"),
                ("POST", "/api/v1/sites", #"["hq"]"#, nil, 400, "invalid"),
                ("POST", "/api/v1/sites", "{\"name\": \"" + String(repeating: "x", count: 100_000) + "\"}", nil, 413, "too_large"),
                ("DELETE", "/api/v1/sites/\(UUID().uuidString)", nil, nil, 404, "not_found"),
                ("DELETE", "/api/v1/sites/not-a-uuid", nil, nil, 404, "not_found"),
                ("GET", "/api/v1/sites?limit=0", nil, nil, 400, "invalid"),
                ("GET", "/api/v1/sites", nil, "", 401, "unauthorized"),
                ("GET", "/api/v1/sites", nil, "gh_admin_wrong", 401, "unauthorized"),
            ]
            for (method, path, body, token, status, code) in cases {
                let answer = try await portal.call(method, path, body: body, token: token)
                #expect(answer.status == status, "\(method) \(path.prefix(40)) \(body?.prefix(40) ?? ""): \(answer.body)")
                let error = try portal.json(answer.body)["error"] as? [String: Any]
                #expect(error?["code"] as? String == code, "\(answer.body)")
                #expect((error?["message"] as? String)?.isEmpty == false)
            }
            let listed = try await portal.json(try portal.call("GET", "/api/v1/sites").body)
            #expect((listed["data"] as? [Any])?.count == 1, "nothing was changed by bad input")
        }
    }
}

/// The same API through `gatehouse admin`, as an operator's shell uses it.
@Suite struct AdminCommandTests {
    @Test func sitesThroughTheAdminCommand() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        let portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }
        func admin(_ arguments: [String]) throws -> CommandOutput { try portal.admin(arguments) }

        let created = try admin(["site", "create", "--name", "hq"])
        #expect(created.status == 0, "\(created.standardError)")
        #expect(created.standardOutput.contains("hq"))
        _ = try admin(["site", "create", "--name", "lab"])

        let table = try admin(["site", "list"])
        #expect(table.standardOutput.hasPrefix("ID"), "a table for people: \(table.standardOutput)")
        #expect(table.standardOutput.contains("hq") && table.standardOutput.contains("lab"))
        let json = try admin(["site", "list", "--json"])
        let sites = try JSONSerialization.jsonObject(with: Data(json.standardOutput.utf8)) as? [[String: Any]]
        #expect(sites?.compactMap { $0["name"] as? String } == ["hq", "lab"])

        let duplicate = try admin(["site", "create", "--name", "hq"])
        #expect(duplicate.status != 0)
        #expect(duplicate.standardError.contains("a site named \"hq\" exists"), "the API's message: \(duplicate.standardError)")

        #expect(try admin(["site", "delete", "hq"]).status == 0, "names are accepted where IDs are")
        let missing = try admin(["site", "delete", "hq"])
        #expect(missing.status != 0)
        #expect(missing.standardError.contains("not found"))

        let unauthorised = try await Command.run([Binaries.gatehouse, "admin", "site", "list", "--portal-url", "http://\(portal.address)", "--token", "nope"], check: false)
        #expect(unauthorised.status != 0)
        #expect(unauthorised.standardError.contains("admin API token"), "\(unauthorised.standardError)")
    }
}

/// Actors, groups and memberships from the shell, then a restart on the same file.
@Suite struct AdminPeopleScenarioTests {
    @Test func actorsGroupsAndMembersSurviveARestart() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        var portal = try await PortalAdminAPITests.start(database, token: token)
        func admin(_ arguments: [String]) throws -> CommandOutput { try portal.admin(arguments) }
        for command in [
            ["actor", "create", "--name", "Ada", "--email", "ada@acme.test"],
            ["actor", "create", "--name", "Grace", "--email", "grace@acme.test", "--type", "admin"],
            ["actor", "create", "--name", "ci-runner", "--type", "service_account"],
            ["group", "create", "--name", "engineering"],
            ["group", "add-member", "engineering", "ada@acme.test"],
            ["group", "add-member", "engineering", "ci-runner"],
        ] {
            let output = try admin(command)
            #expect(output.status == 0, "\(command.joined(separator: " ")): \(output.standardError)")
        }
        for (command, message) in [
            (["actor", "create", "--name", "Ada 2", "--email", "ada@acme.test"], "exists"),
            (["actor", "create", "--name", "Bot", "--type", "service_account", "--email", "bot@acme.test"], "a service account has no email"),
            (["actor", "create", "--name", "X", "--type", "robot", "--email", "x@acme.test"], "must be user, admin or service_account"),
            (["actor", "create", "--name", "X", "--email", "not-an-email"], "not an email address"),
            (["group", "create", "--name", "Everyone"], "built-in group"),
            (["group", "add-member", "engineering", "nobody@acme.test"], "not found"),
        ] {
            let output = try admin(command)
            #expect(output.status != 0, "\(command.joined(separator: " ")) should fail")
            #expect(output.standardError.contains(message), "\(command.joined(separator: " ")): \(output.standardError)")
        }

        portal.process.stop()
        portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }
        let members = try admin(["group", "members", "engineering", "--json"])
        let names = (try JSONSerialization.jsonObject(with: Data(members.standardOutput.utf8)) as? [[String: Any]])?
            .compactMap { $0["name"] as? String }
        #expect(names == ["Ada", "ci-runner"], "\(members.standardOutput)\(members.standardError)")
        #expect(try admin(["group", "remove-member", "engineering", "Ada"]).status == 0)
        #expect(try admin(["actor", "delete", "ci-runner"]).status == 0)
        let after = try admin(["group", "members", "engineering", "--json"])
        #expect((try JSONSerialization.jsonObject(with: Data(after.standardOutput.utf8)) as? [Any])?.isEmpty == true,
                "deleting an actor removes its memberships")
    }
}

/// Tokens: the secret is shown once, stored hashed, usable for what its kind allows, revocable.
@Suite struct TokenAPITests {
    @Test func createUseListAndRevokeTokens() async throws {
        try await InProcessPortal.with { portal in
            let grace = try await portal.json(try portal.call("POST", "/api/v1/actors", body: #"{"type": "admin", "name": "Grace", "email": "grace@acme.test"}"#).body)
            let ada = try await portal.json(try portal.call("POST", "/api/v1/actors", body: #"{"type": "user", "name": "Ada", "email": "ada@acme.test"}"#).body)
            let graceID = try #require(grace["id"] as? String)
            let adaID = try #require(ada["id"] as? String)

            // An admin API token for another admin works on the admin API.
            let created = try await portal.call("POST", "/api/v1/tokens", body: "{\"kind\": \"admin_api\", \"actor_id\": \"\(graceID)\", \"expires_in_seconds\": 3600}")
            #expect(created.status == 201, "\(created.body)")
            let token = try portal.json(created.body)
            let secret = try #require(token["secret"] as? String)
            #expect(secret.hasPrefix("gh_admin_"))
            #expect(token["expires_at"] != nil)
            #expect(try await portal.call("GET", "/api/v1/sites", token: secret).status == 200)

            // A client token may not use the admin API.
            let client = try await portal.json(try portal.call("POST", "/api/v1/tokens", body: "{\"kind\": \"client\", \"actor_id\": \"\(adaID)\"}").body)
            let clientSecret = try #require(client["secret"] as? String)
            let forbidden = try await portal.call("GET", "/api/v1/sites", token: clientSecret)
            #expect(forbidden.status == 403, "\(forbidden.body)")

            // Listing shows metadata, never a secret or a hash.
            let listed = try await portal.call("GET", "/api/v1/tokens")
            #expect(listed.status == 200)
            #expect(!listed.body.contains(secret) && !listed.body.contains("secret"), "\(listed.body)")
            #expect((try portal.json(listed.body)["data"] as? [Any])?.count == 3)

            // Revoked: refused at once.
            let id = try #require(token["id"] as? String)
            #expect(try await portal.call("DELETE", "/api/v1/tokens/\(id)").status == 204)
            #expect(try await portal.call("GET", "/api/v1/sites", token: secret).status == 401)

            for (body, field) in [
                (#"{"kind": "client"}"#, "actor_id"),
                (#"{"kind": "gateway"}"#, "site_id"),
                // Relay tokens belong to the installation: not made through an account's admin API.
                (#"{"kind": "relay"}"#, "kind"),
                (#"{"kind": "root"}"#, "kind"),
                ("{\"kind\": \"client\", \"actor_id\": \"\(adaID)\", \"expires_in_seconds\": 5}", "expires_in_seconds"),
                ("{\"kind\": \"client\", \"actor_id\": \"\(adaID)\", \"expires_in_seconds\": \"soon\"}", "expires_in_seconds"),
            ] {
                let answer = try await portal.call("POST", "/api/v1/tokens", body: body)
                #expect(answer.status == 400, "\(body): \(answer.body)")
                #expect((try portal.json(answer.body)["error"] as? [String: Any])?["field"] as? String == field, "\(body): \(answer.body)")
            }
            let unknownOwner = try await portal.call("POST", "/api/v1/tokens", body: "{\"kind\": \"client\", \"actor_id\": \"\(UUID().uuidString)\"}")
            #expect(unknownOwner.status == 404)
            #expect((try await portal.json(try portal.call("GET", "/api/v1/tokens").body)["data"] as? [Any])?.count == 2, "bad input created nothing")
        }
    }
}

/// Resources from the shell: the spec's own example, every type, and what is refused.
@Suite struct AdminResourceTests {
    @Test func resourcesOfEveryTypeWithFiltersAndTheirErrors() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        let portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }
        func admin(_ arguments: [String]) throws -> CommandOutput { try portal.admin(arguments) }
        #expect(try admin(["site", "create", "--name", "hq"]).status == 0)
        for command in [
            ["resource", "create", "--name", "db", "--type", "cidr", "--address", "10.0.0.0/24", "--site", "hq", "--filter", "tcp:5432"],
            ["resource", "create", "--name", "nas", "--type", "ip", "--address", "192.168.1.20", "--site", "hq"],
            ["resource", "create", "--name", "wiki", "--type", "dns", "--address", "*.wiki.corp.example", "--site", "hq",
             "--filter", "tcp:443", "--filter", "icmp", "--description", "https://wiki.corp.example"],
        ] {
            let output = try admin(command)
            #expect(output.status == 0, "\(command.joined(separator: " ")): \(output.standardError)")
        }
        let listed = try admin(["resource", "list", "--json"])
        let resources = try JSONSerialization.jsonObject(with: Data(listed.standardOutput.utf8)) as? [[String: Any]] ?? []
        #expect(resources.compactMap { $0["name"] as? String } == ["db", "nas", "wiki"])
        let wiki = resources.first { $0["name"] as? String == "wiki" }
        #expect(wiki?["filters"] as? [String] == ["tcp:443", "icmp"])
        #expect(wiki?["ip_stack"] as? String == "dual")

        for (command, message) in [
            (["--name", "x", "--type", "cidr", "--address", "10.0.0.0/33", "--site", "hq"], #"resource address "10.0.0.0/33": prefix length must be 0-32"#),
            (["--name", "x", "--type", "cidr", "--address", "0.0.0.0/0", "--site", "hq"], "a default route cannot be a resource"),
            (["--name", "x", "--type", "cidr", "--address", "100.64.0.0/10", "--site", "hq"], "overlaps the tunnel range"),
            (["--name", "x", "--type", "dns", "--address", "corp.*", "--site", "hq"], "the top-level label may not be a wildcard"),
            (["--name", "x", "--type", "dns", "--address", "localhost", "--site", "hq"], "localhost is not a resource"),
            (["--name", "x", "--type", "ip", "--address", "10.0.0.1", "--site", "hq", "--filter", "tcp:0"], #"filter "tcp:0": port 0 is not a port"#),
            (["--name", "x", "--type", "ip", "--address", "10.0.0.1", "--site", "hq", "--filter", "gre"], "must be tcp, udp or icmp"),
            (["--name", "db", "--type", "ip", "--address", "10.0.0.1", "--site", "hq"], "a resource named \"db\" exists"),
            (["--name", "x", "--type", "vlan", "--address", "10.0.0.1", "--site", "hq"], "must be cidr, ip or dns"),
            (["--name", "x", "--type", "ip", "--address", "10.0.0.1", "--site", "nowhere"], "site \"nowhere\" not found"),
        ] {
            let output = try admin(["resource", "create"] + command)
            #expect(output.status != 0, "\(command.joined(separator: " ")) should fail")
            #expect(output.standardError.contains(message), "\(command.joined(separator: " ")): \(output.standardError)")
        }
        let afterBadInput = try JSONSerialization.jsonObject(with: Data(try admin(["resource", "list", "--json"]).standardOutput.utf8)) as? [Any]
        #expect(afterBadInput?.count == 3, "bad input created nothing")

        // Deleting the site deletes its resources.
        #expect(try admin(["site", "delete", "hq"]).status == 0)
        let remaining = try JSONSerialization.jsonObject(with: Data(try admin(["resource", "list", "--json"]).standardOutput.utf8)) as? [Any]
        #expect(remaining?.isEmpty == true)
    }
}

/// Policies and "why was this denied?" from the shell.
@Suite struct AdminAccessTests {
    @Test func policiesDecideAndExplainAccess() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        let portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }
        func admin(_ arguments: [String]) throws -> CommandOutput { try portal.admin(arguments) }
        for command in [
            ["site", "create", "--name", "hq"],
            ["resource", "create", "--name", "db", "--type", "cidr", "--address", "10.0.0.0/24", "--site", "hq", "--filter", "tcp:5432"],
            ["actor", "create", "--name", "Ada", "--email", "ada@acme.test"],
            ["actor", "create", "--name", "Bob", "--email", "bob@acme.test"],
            ["group", "create", "--name", "engineering"],
            ["group", "add-member", "engineering", "ada@acme.test"],
            ["policy", "create", "--group", "engineering", "--resource", "db", "--description", "engineers reach the database"],
        ] {
            let output = try admin(command)
            #expect(output.status == 0, "\(command.joined(separator: " ")): \(output.standardError)")
        }
        func decision(_ actor: String) throws -> String? {
            let output = try admin(["access", "explain", "--actor", actor, "--resource", "db", "--json"])
            return (try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [String: Any])?["decision"] as? String
        }
        #expect(try decision("ada@acme.test") == "allowed")
        #expect(try decision("bob@acme.test") == "not_found")
        let human = try admin(["access", "explain", "--actor", "bob@acme.test", "--resource", "db"])
        #expect(human.standardOutput.contains("group engineering does not contain bob@acme.test"), "\(human.standardOutput)")

        let duplicate = try admin(["policy", "create", "--group", "engineering", "--resource", "db"])
        #expect(duplicate.status != 0)
        #expect(duplicate.standardError.contains("already has a policy"), "\(duplicate.standardError)")

        // Removing Ada from the group takes her access away.
        #expect(try admin(["group", "remove-member", "engineering", "ada@acme.test"]).status == 0)
        #expect(try decision("ada@acme.test") == "not_found")
    }
}

/// The built-in Everyone group.
@Suite struct EveryoneGroupTests {
    @Test func everyoneHoldsUsersAndAdminsButNotServiceAccounts() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        let portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }
        func admin(_ arguments: [String]) throws -> CommandOutput { try portal.admin(arguments) }
        #expect(try admin(["group", "list"]).standardOutput.contains("Everyone"), "every account starts with Everyone")
        for command in [
            ["site", "create", "--name", "hq"],
            ["resource", "create", "--name", "intranet", "--type", "dns", "--address", "intranet.corp.example", "--site", "hq"],
            ["actor", "create", "--name", "Ada", "--email", "ada@acme.test"],
            ["actor", "create", "--name", "ci-runner", "--type", "service_account"],
            ["policy", "create", "--group", "Everyone", "--resource", "intranet"],
        ] {
            let output = try admin(command)
            #expect(output.status == 0, "\(command.joined(separator: " ")): \(output.standardError)")
        }
        func decision(_ actor: String) throws -> String? {
            let output = try admin(["access", "explain", "--actor", actor, "--resource", "intranet", "--json"])
            return (try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [String: Any])?["decision"] as? String
        }
        #expect(try decision("ada@acme.test") == "allowed")
        #expect(try decision("ci-runner") == "not_found", "service accounts are not in Everyone")
        let delete = try admin(["group", "delete", "Everyone"])
        #expect(delete.status != 0 && delete.standardError.contains("built in"), "\(delete.standardError)")
        let add = try admin(["group", "add-member", "Everyone", "ci-runner"])
        #expect(add.status != 0 && add.standardError.contains("no members to add"), "\(add.standardError)")
    }
}
