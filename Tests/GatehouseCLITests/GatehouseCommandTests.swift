import TestSupport
import Testing

/// The `gatehouse` binary as an operator meets it.
@Suite struct GatehouseCommandTests {
    @Test func versionIsPrinted() throws {
        let output = try Command.run([Binaries.gatehouse, "--version"])
        #expect(output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0-dev")
    }

    @Test func helpListsEveryRole() throws {
        let output = try Command.run([Binaries.gatehouse, "--help"])
        for role in ["portal", "relay", "gateway", "client", "admin", "check"] {
            #expect(output.standardOutput.contains("  \(role) "), "help lists \(role)")
        }
    }

    @Test(arguments: ["gateway", "client"])
    func unbuiltRolesSaySoAndFail(role: String) throws {
        let output = try Command.run([Binaries.gatehouse, role], check: false)
        #expect(output.status != 0)
        #expect(output.standardError.contains("\(role) is not yet implemented"), "\(output.standardError)")
    }

    @Test func anUnknownSubcommandFailsWithUsage() throws {
        let output = try Command.run([Binaries.gatehouse, "teleport"], check: false)
        #expect(output.status != 0)
        #expect(output.standardError.contains("Usage") || output.standardError.contains("USAGE"))
    }

    @Test(.privileged) func checkLoadsEveryEmbeddedProgram() throws {
        let output = try Command.run([Binaries.gatehouse, "check"])
        #expect(output.standardOutput.contains("ok    counter: programs counter_xdp, counter_tc"), "\(output.standardOutput)")
    }
}
