import Foundation
import TestSupport
import Testing

/// The portal over TLS with a throwaway CA: HTTPS and WSS with a certificate and key; every client
/// of it (admin commands, gateways) checks the certificate against the CA file given, and plain HTTP is
/// refused off loopback unless `--insecure` says so.
@Suite struct PortalTLSTests {
    /// A CA and a certificate for localhost it signed, made with openssl in `directory`.
    static func makeCertificates(in directory: URL) async throws -> (ca: String, certificate: String, key: String) {
        try await ThrowawayCA.make(in: directory)
    }

    @Test(.privileged) func clientsCheckThePortalsCertificate() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        let directory = URL(filePath: database).deletingLastPathComponent()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (ca, certificate, key) = try await Self.makeCertificates(in: directory)
        let admin = try PortalAdminAPITests.initialise(database)
        let portal = try await PortalAdminAPITests.start(database, token: admin, extra: ["--tls-certificate", certificate, "--tls-key", key])
        defer { portal.process.stop() }
        let url = "https://localhost:\(portal.address.split(separator: ":").last ?? "")"
        // An address is refused for HTTPS: the certificate names the portal.
        let literal = try await Command.run([Binaries.gatehouse, "admin", "site", "list", "--portal-url", "https://\(portal.address)",
                                                     "--token", admin, "--ca-file", ca], check: false)
        #expect(literal.status != 0 && literal.standardError.contains("DNS name"), "\(literal.standardError)")

        // Admin commands: with the CA, served; without it, refused for the certificate.
        let created = try await Command.run([Binaries.gatehouse, "admin", "site", "create", "--name", "hq", "--portal-url", url,
                                                     "--token", admin, "--ca-file", ca], check: false)
        #expect(created.status == 0 && created.standardOutput.contains("hq"), "\(created.standardOutput) \(created.standardError)")
        let unchecked = try await Command.run([Binaries.gatehouse, "admin", "site", "list", "--portal-url", url, "--token", admin], check: false)
        #expect(unchecked.status != 0 && unchecked.standardError.lowercased().contains("certificate"),
                "the system's roots do not know the test CA: \(unchecked.standardError)")
        // Plain HTTP to the TLS port is not served.
        let plain = try await Command.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                                                   "http://\(portal.address)/healthz"], check: false)
        #expect(plain.standardOutput != "200", "\(plain.standardOutput)")

        // A gateway joins over WSS with the CA file; without it, it does not.
        let site = (try? JSONSerialization.jsonObject(with: Data(try await Command.run(
            [Binaries.gatehouse, "admin", "site", "list", "--portal-url", url, "--token", admin, "--ca-file", ca, "--json"]).standardOutput.utf8))
            as? [[String: Any]])?.first?["id"] as? String ?? ""
        let token = try await Command.run([Binaries.gatehouse, "admin", "token", "create", "--kind", "gateway", "--site", site, "--portal-url", url,
                                     "--token", admin, "--ca-file", ca]).standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        var environment = ProcessInfo.processInfo.environment
        environment["GATEHOUSE_TOKEN"] = token
        func gateway(_ extra: [String]) throws -> BackgroundProcess {
            try BackgroundProcess(arguments: [Binaries.gatehouse, "gateway", "--portal-url", url, "--name", "gw",
                                              "--state-dir", directory.appending(path: "gw").path, "--operations-address", "127.0.0.1:0",
                                              "--tun-name", TestNetwork.uniqueInterfaceName("gh"), "--listen-port", "0",
                "--no-forwarding"] + extra,
                                  environment: environment)
        }
        let untrusting = try gateway([])
        try await untrusting.waitForOutput(containing: "portal connection lost", timeout: .seconds(20))
        #expect(!untrusting.output.contains("joined the portal") && untrusting.output.lowercased().contains("certificate"), "\(untrusting.output)")
        untrusting.stop()
        let trusting = try gateway(["--ca-file", ca])
        defer { trusting.stop() }
        try await trusting.waitForOutput(containing: "[Gateway] init", timeout: .seconds(20))
        print("gateway over WSS: \(trusting.output.split(separator: "\n").first { $0.contains("joined the portal") } ?? "")")
    }

    /// Plain HTTP off loopback: refused by the portal, the admin command and the gateway unless
    /// `--insecure`; nothing listens or connects.
    @Test func plainHTTPOffLoopbackNeedsInsecure() async throws {
        let database = try PortalAdminAPITests.temporaryDatabase()
        defer { try? FileManager.default.removeItem(atPath: URL(filePath: database).deletingLastPathComponent().path) }
        _ = try PortalAdminAPITests.initialise(database)
        let serve = try await Command.run([Binaries.gatehouse, "portal", "--db", database, "--listen", "0.0.0.0:0"], check: false)
        #expect(serve.status != 0 && serve.standardError.contains("--insecure"), "\(serve.standardError)")
        let admin = try await Command.run([Binaries.gatehouse, "admin", "site", "list", "--portal-url", "http://192.0.2.10:8080",
                                                   "--token", "gh_admin_x"], check: false)
        #expect(admin.status != 0 && admin.standardError.contains("--insecure"), "\(admin.standardError)")
        var environment = ProcessInfo.processInfo.environment
        environment["GATEHOUSE_TOKEN"] = "x"
        let gateway = try await Command.run([Binaries.gatehouse, "gateway", "--portal-url", "http://192.0.2.10:8080",
                                             "--state-dir", URL(filePath: database).deletingLastPathComponent().appending(path: "gw").path],
                                            check: false, environment: environment)
        #expect(gateway.status != 0 && gateway.standardError.contains("--insecure"), "\(gateway.standardError)")
    }
}
