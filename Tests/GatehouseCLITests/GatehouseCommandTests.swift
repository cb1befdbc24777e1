import Foundation
import TestSupport
import Testing

/// The `gatehouse` binary as an operator meets it.
@Suite struct GatehouseCommandTests {
    @Test func versionIsPrinted() throws {
        let output = try Command.runBlocking([Binaries.gatehouse, "--version"])
        #expect(output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0-dev")
    }

    @Test func helpListsEveryRole() throws {
        let output = try Command.runBlocking([Binaries.gatehouse, "--help"])
        for role in ["portal", "relay", "gateway", "client", "admin", "check"] {
            #expect(output.standardOutput.contains("  \(role) "), "help lists \(role)")
        }
    }

    /// A client needs its portal and token, refuses a token on the command line or in a file others
    /// may read, and says so before touching the network.
    @Test func aClientSaysWhatIsWrongWithItsToken() throws {
        var environment = ProcessInfo.processInfo.environment
        for variable in ["GATEHOUSE_PORTAL_URL", "GATEHOUSE_TOKEN", "GATEHOUSE_TOKEN_FILE"] { environment[variable] = nil }
        let noURL = try Command.runBlocking([Binaries.gatehouse, "client"], check: false, environment: environment)
        #expect(noURL.status != 0 && noURL.standardError.contains("--portal-url"), "\(noURL.standardError)")
        let flagged = try Command.runBlocking([Binaries.gatehouse, "client", "--portal-url", "http://127.0.0.1:1", "--token", "gh_client_x"],
                                              check: false, environment: environment)
        #expect(flagged.status != 0 && flagged.standardError.contains("--token-file or GATEHOUSE_TOKEN"), "\(flagged.standardError)")
        let file = FileManager.default.temporaryDirectory.appending(path: "gatehouse-token-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "gh_client_x".write(toFile: file, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
        let readable = try Command.runBlocking([Binaries.gatehouse, "client", "--portal-url", "http://127.0.0.1:1", "--token-file", file],
                                               check: false, environment: environment)
        #expect(readable.status != 0 && readable.standardError.contains("readable by other users"), "\(readable.standardError)")
        let help = try Command.runBlocking([Binaries.gatehouse, "client", "--help"])
        #expect(help.standardOutput.contains("status"), "\(help.standardOutput)")
    }

    /// A gateway needs its portal and token, and says which is missing.
    @Test func aGatewayWithoutItsPortalSaysWhatIsMissing() throws {
        var environment = ProcessInfo.processInfo.environment
        for variable in ["GATEHOUSE_PORTAL_URL", "GATEHOUSE_TOKEN", "GATEHOUSE_TOKEN_FILE"] { environment[variable] = nil }
        let noURL = try Command.runBlocking([Binaries.gatehouse, "gateway"], check: false, environment: environment)
        #expect(noURL.status != 0 && noURL.standardError.contains("--portal-url"), "\(noURL.standardError)")
        let noToken = try Command.runBlocking([Binaries.gatehouse, "gateway", "--portal-url", "http://127.0.0.1:1"], check: false, environment: environment)
        #expect(noToken.status != 0 && noToken.standardError.contains("token is required"), "\(noToken.standardError)")
        // A token on the command line is refused: every user of the host could read it there.
        let flagged = try Command.runBlocking([Binaries.gatehouse, "gateway", "--portal-url", "http://127.0.0.1:1", "--token", "gh_gateway_x"],
                                              check: false, environment: environment)
        #expect(flagged.status != 0 && flagged.standardError.contains("--token-file or GATEHOUSE_TOKEN"), "\(flagged.standardError)")
        let badMTU = try Command.runBlocking([Binaries.gatehouse, "gateway", "--portal-url", "http://127.0.0.1:1", "--mtu", "576"],
                                             check: false, environment: environment.merging(["GATEHOUSE_TOKEN": "gh_gateway_x", "GATEHOUSE_GATEWAY_STATE_DIR": "/nonexistent/gatehouse-test"]) { $1 })
        #expect(badMTU.status != 0 && badMTU.standardError.contains("1280"), "\(badMTU.standardError)")
    }

    /// Without the privileges it needs, a gateway says which, and leaves nothing behind. (Root with
    /// every capability dropped, for good: what a container or a service without them would be.)
    @Test(.privileged) func aGatewayWithoutPrivilegesSaysWhatItNeeds() throws {
        let state = FileManager.default.temporaryDirectory.appending(path: "gatehouse-unprivileged-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        let device = TestNetwork.uniqueInterfaceName("ghp")
        let output = try Command.runBlocking([
            "setpriv", "--bounding-set=-all", "--inh-caps=-all", "--securebits=+noroot,+noroot_locked",
            "env", "GATEHOUSE_TOKEN=gh_gateway_x", Binaries.gatehouse, "gateway", "--portal-url", "http://127.0.0.1:1", "--tun-name", device,
            "--state-dir", state,
        ], check: false)
        #expect(output.status != 0)
        #expect(output.standardError.contains("needs CAP_BPF and CAP_NET_ADMIN"), "\(output.standardError)")
        #expect(try Command.runBlocking(["ip", "link", "show", device], check: false).status != 0, "no tunnel device left behind")
    }

    @Test func anUnknownSubcommandFailsWithUsage() throws {
        let output = try Command.runBlocking([Binaries.gatehouse, "teleport"], check: false)
        #expect(output.status != 0)
        #expect(output.standardError.contains("Usage") || output.standardError.contains("USAGE"))
    }

    @Test(.privileged) func checkLoadsEveryEmbeddedProgram() throws {
        let output = try Command.runBlocking([Binaries.gatehouse, "check"])
        #expect(output.standardOutput.contains("ok    counter: programs counter_xdp, counter_tc"), "\(output.standardOutput)")
    }
}
