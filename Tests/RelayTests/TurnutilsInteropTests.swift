import Actors
import Foundation
import TestSupport
import Testing

/// coturn's own test client against `gatehouse relay`: allocations, permissions, channels or Send/Data
/// indications, relayed to coturn's echo peer, with zero loss. Its default mode allocates RTP/RTCP
/// pairs: EVEN-PORT with the R bit, then an Allocate with the RESERVATION-TOKEN it got (`-c` turns
/// the RTCP allocations off).
@Suite(.serialized) struct TurnutilsInteropTests {
    struct Run: CustomTestStringConvertible, Sendable {
        var name: String
        var flags: [String]
        var peer: String
        var testDescription: String { name }
    }

    static let runs = [
        Run(name: "default mode (RTP/RTCP pairs, reservations), IPv4", flags: [], peer: "127.0.0.1"),
        Run(name: "default mode (RTP/RTCP pairs, reservations), IPv6 relayed address", flags: ["-x"], peer: "::1"),
        Run(name: "channels, IPv4", flags: ["-c"], peer: "127.0.0.1"),
        Run(name: "send indications, IPv4", flags: ["-c", "-s"], peer: "127.0.0.1"),
        Run(name: "channels, IPv6 relayed address", flags: ["-c", "-x"], peer: "::1"),
        Run(name: "send indications, IPv6 relayed address", flags: ["-c", "-x", "-s"], peer: "::1"),
    ]

    /// Whether the run allocates RTP/RTCP pairs (turnutils_uclient's default).
    static func usesReservations(_ run: Run) -> Bool { !run.flags.contains("-c") }

    @Test(arguments: runs)
    func turnutilsClientsRelayWithoutLoss(run: Run) async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let peerPort = try freeUDPPort(run.peer)
        let peer = try BackgroundProcess(arguments: ["turnutils_peer", "-p", String(peerPort), "-L", run.peer])
        defer { peer.stop() }
        // turnutils_peer prints nothing when ready: it is once its port can no longer be bound.
        try await Wait.until("turnutils_peer listens on \(run.peer):\(peerPort)") {
            (try? UDPSocket(bindTo: run.peer, port: peerPort)) == nil
        }

        try await Self.expectClientsRelayWithoutLoss(
            run, secret: RelayProcess.secret, relay: "127.0.0.1", port: relay.port, peer: run.peer, peerPort: peerPort,
            relayOutput: relay.process.output) { try await Command.run($0, check: false) }
        if Self.usesReservations(run) {
            // RTP allocations with EVEN-PORT R, and RTCP ones that redeemed their tokens.
            let metrics = try relay.get("/metrics").body
            let made = metrics.firstMatch(of: /gatehouse_relay_reservations_total\{event="made"\} (\d+)/).map { Int($0.1) ?? 0 } ?? 0
            let redeemed = metrics.firstMatch(of: /gatehouse_relay_reservations_total\{event="redeemed"\} (\d+)/).map { Int($0.1) ?? 0 } ?? 0
            print("turnutils_uclient \(run.name): \(made) reservations made, \(redeemed) redeemed")
            #expect(made >= 2 && redeemed == made, "\(metrics)")
        }
    }

    /// Runs turnutils_uclient (4 clients × 50 messages through `relay`:`port` to the peer, in the run's
    /// mode) with `execute` (on this host, or in a namespace) and checks from coturn's own totals that
    /// every message came back.
    static func expectClientsRelayWithoutLoss(
        _ run: Run, secret: String, relay: String, port: UInt16, peer: String, peerPort: UInt16, relayOutput: @autoclosure () -> String,
        execute: ([String]) async throws -> CommandOutput
    ) async throws {
        let client = try await execute([
            "timeout", "60", "turnutils_uclient", "-W", secret, "-p", String(port),
            "-e", peer, "-r", String(peerPort), "-n", "50", "-m", "4", "-l", "120", "-z", "5",
        ] + run.flags + [relay])
        let output = client.standardOutput + client.standardError
        #expect(client.status == 0, "turnutils_uclient failed:\n\(output)\nrelay:\n\(relayOutput())")
        let sent = try #require(output.firstMatch(of: /start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/), "no totals in:\n\(output)")
        #expect(Int(sent.1) == 200, "4 clients × 50 messages")
        #expect(sent.1 == sent.2, "every message came back")
        #expect(output.contains("Total lost packets 0 (0.000000%)"), "\(output)")
    }
}
