import Actors
import ArgumentParser
import Foundation

/// How a relay, gateway or client reaches the portal's realtime API.
struct PortalConnectionOptions: ParsableArguments {
    @Option(help: "Portal URL: https://HOST[:PORT], or http:// on loopback (or with --insecure). [GATEHOUSE_PORTAL_URL]")
    var portalURL: String?
    @Option(help: "Token (prefer --token-file or the environment: a command line is visible to every user). [GATEHOUSE_TOKEN]")
    var token: String?
    @Option(help: "File holding the token (mode 600). [GATEHOUSE_TOKEN_FILE]")
    var tokenFile: String?
    @Option(help: "PEM file of the CAs the portal's certificate is checked against (default: the system's). [GATEHOUSE_PORTAL_CA_FILE]")
    var caFile: String?
    @Flag(help: "Allow plain HTTP to a portal that is not on loopback (the token then crosses the network in the clear).")
    var insecure = false
    @Option(help: "Seconds between heartbeats to the portal (0.1-60, default 10); three silent intervals and the connection is renewed.")
    var portalHeartbeatInterval: Double?

    /// The endpoint, or nil when no portal URL is given.
    func endpoint(_ environment: Environment) throws -> PortalEndpoint? {
        guard let url = environment.string(portalURL, "GATEHOUSE_PORTAL_URL") else { return nil }
        let secret: String
        if let path = environment.string(tokenFile, "GATEHOUSE_TOKEN_FILE") {
            secret = try Environment.readSecretFile(path, option: "--token-file")
        } else if let token = environment.string(token, "GATEHOUSE_TOKEN") {
            secret = token
        } else {
            throw ValidationError("a token is required with --portal-url: --token-file, GATEHOUSE_TOKEN_FILE or GATEHOUSE_TOKEN")
        }
        do {
            return try PortalEndpoint(url: url, token: Secret(secret), caFile: environment.string(caFile, "GATEHOUSE_PORTAL_CA_FILE"),
                                      insecure: insecure)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func connection() throws -> PortalConnection.Configuration {
        var configuration = PortalConnection.Configuration()
        if let portalHeartbeatInterval {
            guard (0.1...60).contains(portalHeartbeatInterval) else { throw ValidationError("--portal-heartbeat-interval must be 0.1-60 seconds") }
            configuration.heartbeatInterval = .milliseconds(Int(portalHeartbeatInterval * 1000))
        }
        return configuration
    }
}
