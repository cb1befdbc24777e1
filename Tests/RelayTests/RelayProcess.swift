import Actors
import Foundation
import TestSupport
import Testing

/// A `gatehouse relay` process on loopback for a test, with the ports it reported.
struct RelayProcess {
    static let secret = "interop-secret"

    let process: BackgroundProcess
    let port: UInt16
    let operations: String

    /// Starts the relay on 127.0.0.1 (and ::1 with `ipv6`), ports chosen by the kernel, loopback peers
    /// allowed (the secure defaults refuse them). `prefix` runs it through another command (`setpriv`).
    /// Relayed port ranges sit above the kernel's ephemeral range (32768-60999), so that a socket some
    /// other test opened on port 0 never holds a port a test expects to be free; tests that count on
    /// a small range being free give each its own (61000-61199), the rest share 61200-61999.
    static func start(
        ipv6: Bool = true, portRange: String = "61200-61999", allowLoopbackPeers: Bool = true,
        publicIPv4: String = "127.0.0.1", extra: [String] = [], prefix: [String] = []
    ) async throws -> RelayProcess {
        var arguments = [
            Binaries.gatehouse, "relay", "--public-ipv4", publicIPv4, "--bind-ipv4", "127.0.0.1",
            "--listen-port", "0", "--port-range", portRange, "--auth-secret", secret,
            "--operations-address", "127.0.0.1:0",
        ]
        if allowLoopbackPeers { arguments += ["--allow-peer", "127.0.0.0/8", "--allow-peer", "::1/128"] }
        if ipv6 { arguments += ["--public-ipv6", "::1", "--bind-ipv6", "::1"] }
        let process = try BackgroundProcess(arguments: prefix + arguments + extra)
        // Human lines carry `addresses=...`, JSON lines `"addresses":"..."`.
        let port = try await process.waitForMatch(#""?addresses"?[=:]"?[^ "]*?127\.0\.0\.1:(\d+).*relay listening"#)
        let operations = try await process.waitForMatch(#""?address"?[=:]"?([0-9.]+:\d+).*operations listening"#)
        return RelayProcess(process: process, port: UInt16(port) ?? 0, operations: operations)
    }

    /// GET on the operations server.
    func get(_ path: String) throws -> (status: Int, body: String) {
        let output = try Command.runBlocking(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "http://\(operations)\(path)"])
        let lines = output.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
        let body = lines.dropLast().joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
        return (Int(lines.last ?? "") ?? 0, body)
    }
}

extension RelayProcess {
    var address: SocketAddress { SocketAddress(ip: .v4(0x7F00_0001), port: port) }

    /// A client of this relay with valid credentials.
    func client(id: String = "tester", expiry: Int64? = nil, bindTo host: String = "127.0.0.1") throws -> TURNTestClient {
        try TURNTestClient(server: address, secret: RelayProcess.secret, id: id, expiry: expiry, bindTo: host)
    }
}

/// A UDP port that was free a moment ago (for tools that need a port number up front).
func freeUDPPort(_ host: String = "127.0.0.1") throws -> UInt16 {
    try UDPSocket(bindTo: host).localPort
}
