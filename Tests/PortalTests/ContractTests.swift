import AdminAPI
import Foundation
import Portal
import TestSupport
import Testing

/// The admin API against its own OpenAPI document, from outside: schemathesis (pinned by
/// scripts/setup), every check, a fixed seed and a bounded number of examples. No server error, no
/// response that breaks the document, no schema-valid request refused (except with the 400/409 an
/// operation documents for rules a schema cannot state: a CIDR inside the tunnel ranges, a condition's
/// grammar, a name taken), and 405 for methods a path does not have.
@Suite struct ContractTests {
    @Test func theServedDocumentHoldsForEveryOperation() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        let directory = URL(filePath: database).deletingLastPathComponent()
        defer { try? FileManager.default.removeItem(at: directory) }
        let token = try PortalAdminAPITests.initialise(database)
        let portal = try await PortalAdminAPITests.start(database, token: token)
        defer { portal.process.stop() }

        // What each operation may refuse beyond its schema, from the same table the document is built from.
        let configuration = AdminRoutes.all.filter { !$0.refusals.isEmpty }.map { route -> String in
            let statuses = (["2xx", "401", "403", "404"] + route.refusals.map(String.init)).map { "\"\($0)\"" }
            return """
                [[operations]]
                include-name = "\(route.method.rawValue.uppercased()) /api/v1\(route.path)"
                checks.positive_data_acceptance.expected-statuses = [\(statuses.joined(separator: ", "))]
                """
        }.joined(separator: "\n\n")
        let configFile = directory.appending(path: "schemathesis.toml")
        try configuration.write(to: configFile, atomically: true, encoding: .utf8)

        let st = Binaries.packageRoot.appending(path: ".venv/bin/st").path(percentEncoded: false)
        let output = try await Command.run([
            "timeout", "600", st, "--config-file", configFile.path(percentEncoded: false), "run",
            "http://\(portal.address)/api/v1/openapi.json", "--url", "http://\(portal.address)",
            "--header", "Authorization: Bearer \(token)", "--checks", "all", "--seed", "1", "--max-examples", "25",
        ], check: false)
        let text = output.standardOutput + output.standardError
        let summary = text.firstMatch(of: /(\d+) generated, (\d+) passed/)
        print("schemathesis: \(summary.map { "\($0.1) generated, \($0.2) passed" } ?? "no summary")")
        #expect(output.status == 0, "schemathesis found failures:\n\(text.suffix(6000))")
        #expect(text.contains("Selected: \(AdminRoutes.all.count)/\(AdminRoutes.all.count)"), "every operation tested")
        #expect(summary.map { $0.1 == $0.2 } == true, "every generated case passed")
    }
}
