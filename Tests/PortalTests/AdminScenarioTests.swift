import Foundation
import TestSupport
import Testing

/// The issue's scenario: a real portal on 127.0.0.1:0 with a real SQLite file, driven only through
/// `gatehouse admin`, stopped, started again on the same file, and everything is still there.
@Suite struct AdminScenarioTests {
    @Test func everythingMadeWithTheAdminCommandsSurvivesARestart() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        let token = try PortalAdminAPITests.initialise(database)
        var portal = try await PortalAdminAPITests.start(database, token: token)
        func admin(_ arguments: [String]) throws -> CommandOutput { try portal.admin(arguments) }
        func succeed(_ arguments: [String]) throws -> String {
            let output = try admin(arguments)
            #expect(output.status == 0, "gatehouse admin \(arguments.joined(separator: " ")): \(output.standardError)")
            return output.standardOutput
        }
        func fail(_ arguments: [String], saying message: String) throws {
            let output = try admin(arguments)
            #expect(output.status != 0, "gatehouse admin \(arguments.joined(separator: " ")) should fail")
            #expect(output.standardError.contains(message), "\(arguments.joined(separator: " ")): \(output.standardError)")
        }
        func json(_ arguments: [String]) throws -> Any? {
            try JSONSerialization.jsonObject(with: Data(try succeed(arguments + ["--json"]).utf8))
        }

        // This network already uses 100.64.0.0/10: the operator moves the tunnel ranges.
        _ = try succeed(["account", "set", "--tunnel-ipv4-range", "10.200.0.0/16", "--tunnel-ipv6-range", "fd00:1234::/48"])
        for command in [
            ["actor", "create", "--name", "Ada", "--email", "ada@acme.test"],
            ["actor", "create", "--name", "Bob", "--email", "bob@acme.test"],
            ["actor", "create", "--name", "ci-runner", "--type", "service_account"],
            ["group", "create", "--name", "eng"],
            ["group", "create", "--name", "ops"],
            ["group", "add-member", "eng", "ada@acme.test"],
            ["group", "add-member", "ops", "bob@acme.test"],
            ["group", "add-member", "ops", "ci-runner"],
            ["site", "create", "--name", "hq"],
            ["resource", "create", "--name", "db", "--type", "cidr", "--address", "10.0.0.0/24", "--site", "hq", "--filter", "tcp:5432"],
            ["resource", "create", "--name", "intranet", "--type", "dns", "--address", "**.corp.example", "--site", "hq", "--filter", "tcp:443",
             "--description", "https://intranet.corp.example"],
            ["resource", "create", "--name", "printer", "--type", "ip", "--address", "192.168.1.10", "--site", "hq", "--filter", "icmp",
             "--filter", "tcp:631"],
            // 100.64.0.0/10 is no longer a tunnel range, so the network there is a resource like any other.
            ["resource", "create", "--name", "legacy", "--type", "cidr", "--address", "100.70.0.0/24", "--site", "hq"],
            ["policy", "create", "--group", "eng", "--resource", "db", "--condition", "source_in:10.0.0.0/8,192.0.2.0/24"],
            ["policy", "create", "--group", "ops", "--resource", "intranet", "--condition", "verified"],
            ["policy", "create", "--group", "Everyone", "--resource", "printer", "--condition", "time:MTWRF/09:00-17:00/Europe/Berlin"],
            ["token", "create", "--kind", "client", "--actor", "ada@acme.test", "--expires-in", "86400"],
            ["token", "create", "--kind", "gateway", "--site", "hq"],
        ] {
            _ = try succeed(command)
        }
        try fail(["token", "create", "--kind", "relay"], saying: "relay tokens belong to the installation")
        try fail(["resource", "create", "--name", "clash", "--type", "cidr", "--address", "10.200.5.0/24", "--site", "hq"],
                 saying: "10.200.5.0/24")
        try fail(["account", "set", "--tunnel-ipv4-range", "10.0.0.0/8"], saying: "resource \"db\"")
        try fail(["policy", "create", "--group", "eng", "--resource", "printer", "--condition", "time:MTWRF/09:00-17:00/Mars/Olympus"],
                 saying: "not an IANA time zone")

        // Changes.
        _ = try succeed(["resource", "update", "intranet", "--filter", "tcp:443", "--filter", "tcp:8443"])
        _ = try succeed(["group", "rename", "ops", "--name", "operations"])
        _ = try succeed(["site", "rename", "hq", "--name", "headquarters"])
        _ = try succeed(["actor", "disable", "bob@acme.test"])
        _ = try succeed(["actor", "update", "ada@acme.test", "--name", "Ada Lovelace"])
        let policies = try json(["policy", "list"]) as? [[String: Any]] ?? []
        let printerPolicy = try #require(policies.first { ($0["conditions"] as? [String])?.first?.hasPrefix("time:") == true }?["id"] as? String)
        _ = try succeed(["policy", "update", printerPolicy, "--description", "office hours"])

        // Why: no client means no source address, so the source condition fails; office hours in Berlin.
        let db = try json(["access", "explain", "--actor", "ada@acme.test", "--resource", "db"]) as? [String: Any]
        #expect(db?["decision"] as? String == "forbidden")
        #expect(db?["failed_conditions"] as? [String] == ["source_in:10.0.0.0/8,192.0.2.0/24"])
        // 2026-11-23 is a Monday; Berlin is UTC+1 in November.
        let monday = try json(["access", "explain", "--actor", "ada@acme.test", "--resource", "printer", "--at", "2026-11-23T09:30:00Z"]) as? [String: Any]
        #expect(monday?["decision"] as? String == "allowed")
        #expect(monday?["expires_at"] as? String == "2026-11-23T16:00:00Z", "the time window bounds the authorisation")
        let sunday = try succeed(["access", "explain", "--actor", "ada@acme.test", "--resource", "printer", "--at", "2026-11-29T09:30:00Z"])
        #expect(sunday.contains("forbidden") && sunday.contains("fails: time:MTWRF/09:00-17:00/Europe/Berlin"), "\(sunday)")
        let bob = try json(["access", "explain", "--actor", "bob@acme.test", "--resource", "intranet"]) as? [String: Any]
        #expect(bob?["decision"] as? String == "not_found", "a disabled actor reaches nothing")

        let listings = [["account", "show"], ["site", "list"], ["actor", "list"], ["group", "list"], ["group", "members", "eng"],
                        ["group", "members", "operations"], ["resource", "list"], ["policy", "list"], ["token", "list"]]
        func snapshot() throws -> [String] {
            try listings.map { command in
                let value = try json(command) ?? NSNull()
                // last_used_at (and the address) change as the admin token is used; everything else must be identical.
                var text = String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]), as: UTF8.self)
                text = text.replacing(/"last_used_at":"[^"]*",?/, with: "")
                text = text.replacing(/"last_used_address":"[^"]*",?/, with: "")
                return text
            }
        }
        let before = try snapshot()
        #expect(before[1].contains("headquarters") && before[3].contains("operations") && before[6].contains("tcp:8443"))
        #expect(before[8].components(separatedBy: "\"kind\"").count - 1 == 3, "the admin token and two more (relay tokens are the operator's)")
        #expect(!before.joined().contains("gh_client_"), "no listing shows a token's secret")

        portal.process.stop()
        portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }
        let after = try snapshot()
        for (index, command) in listings.enumerated() {
            #expect(after[index] == before[index], "\(command.joined(separator: " ")) changed across the restart")
        }
        // The exact events of the changes above: who, what, which object, before and after.
        let events = try json(["audit", "list", "--limit", "500"]) as? [[String: Any]] ?? []
        let resources = try json(["resource", "list"]) as? [[String: Any]] ?? []
        let intranet = try #require(resources.first { $0["name"] as? String == "intranet" }?["id"] as? String)
        let filterUpdate = try #require(events.first { $0["action"] as? String == "update" && $0["subject_id"] as? String == intranet },
                                        "an update event for the intranet resource")
        #expect(filterUpdate["subject_type"] as? String == "resource")
        #expect(filterUpdate["actor_name"] as? String == "Admin")
        #expect(filterUpdate["actor_id"] as? String != nil)
        let filtersAfter = (filterUpdate["after"] as? [String: Any])?["filters"]
        #expect("\(filtersAfter ?? "")".contains("tcp:443") && "\(filtersAfter ?? "")".contains("tcp:8443"), "after: \(filterUpdate)")
        let filtersBefore = "\((filterUpdate["before"] as? [String: Any])?["filters"] ?? "")"
        #expect(filtersBefore.contains("tcp:443") && !filtersBefore.contains("tcp:8443"), "before: \(filterUpdate)")
        let rename = try #require(events.first { event in
            event["action"] as? String == "update" && event["subject_type"] as? String == "site"
        }, "the site rename")
        #expect((rename["before"] as? [String: Any])?["name"] as? String == "hq")
        #expect((rename["after"] as? [String: Any])?["name"] as? String == "headquarters")
        let disable = try #require(events.first { event in
            event["subject_type"] as? String == "actor" && (event["after"] as? [String: Any])?["disabled"] as? Bool == true
        }, "bob disabled")
        #expect((disable["before"] as? [String: Any])?["email"] as? String == "bob@acme.test")
        #expect((disable["before"] as? [String: Any])?["disabled"] as? Bool == false)
    }
}
