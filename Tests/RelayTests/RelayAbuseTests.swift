import Actors
import Foundation
import STUN
import TestSupport
import Testing

/// Secure defaults under abuse: no amplification, bounded memory, no crash on garbage.
@Suite(.serialized) struct RelayAbuseTests {
    /// The relay process's resident memory in KiB.
    func residentKiB(_ process: BackgroundProcess) throws -> Int {
        // The relay runs under /usr/bin/env, which execs it: same PID.
        let status = try String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test func aBurstOfUnauthenticatedAllocatesGetsRateLimited401sAndCreatesNothing() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        for _ in 0..<200 {
            let id = (0..<12).map { _ in UInt8.random(in: 0...255) }
            try client.sendRaw(client.encode(method: TURNTestClient.allocate, [.transport(17)], authenticated: false, transactionID: id))
        }
        var answers = 0
        while let reply = try client.receiveReply(timeout: .milliseconds(500)) {
            #expect(reply.errorCode == 401)
            answers += 1
        }
        print("unauthenticated burst: 200 Allocate requests, \(answers) answered with 401")
        #expect(answers >= 1)
        #expect(answers <= 20, "401s are rate-limited per source (burst 10, 5/s)")
        let metrics = try relay.get("/metrics").body
        #expect(metrics.contains("gatehouse_relay_allocations 0"), "\(metrics)")
    }

    @Test func memoryStaysBoundedUnderAFloodFromManySources() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let before = try residentKiB(relay.process)
        // 256 source addresses in 127.0.0.0/8 × 128 ports each: 32,768 distinct clients, each sending
        // unauthenticated Allocates that would make the relay store a nonce if nothing bounded it.
        var sent = 0
        for host in 0..<256 {
            let address = "127.1.\(host / 250).\(1 + host % 250)"
            for _ in 0..<128 {
                let client = try relay.client(bindTo: address)
                for _ in 0..<2 {
                    let id = (0..<12).map { _ in UInt8.random(in: 0...255) }
                    try client.sendRaw(client.encode(method: TURNTestClient.allocate, [.transport(17)], authenticated: false, transactionID: id))
                    sent += 1
                }
            }
        }
        // The relay has read everything once a request of ours gets its answer after the flood.
        let probe = try relay.client()
        try await Wait.until("the relay answers after the flood", timeout: .seconds(30)) {
            (try probe.request(TURNTestClient.allocate, [.transport(17)], authenticated: false)) != nil
        }
        let after = try residentKiB(relay.process)
        print("flood of \(sent) unauthenticated requests from 32768 sources: relay RSS \(before) KiB before, \(after) KiB after (+\(after - before) KiB)")
        #expect(after - before < 64 * 1024, "bounded tables: the nonce table holds at most 65,536 entries")
        #expect(try relay.get("/metrics").body.contains("gatehouse_relay_allocations 0"))
    }

    @Test func garbageDoesNotStopTheRelayAndAClientRelaysRightAfter() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let socket = try UDPSocket(bindTo: "127.0.0.1")
        var random = SystemRandomNumberGenerator()
        let valid = try relay.client().encode(method: TURNTestClient.allocate, [.transport(17), .lifetime(600)], authenticated: true,
                                              transactionID: Array(repeating: 1, count: 12))
        for index in 0..<20_000 {
            var datagram: [UInt8]
            switch index % 5 {
            case 0:  // random bytes of random length
                datagram = (0..<Int.random(in: 0...600, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 1:  // a valid request cut short
                datagram = Array(valid.prefix(Int.random(in: 0..<valid.count, using: &random)))
            case 2:  // a valid request with bytes flipped
                datagram = valid
                for _ in 0..<4 { datagram[Int.random(in: 0..<datagram.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random) }
            case 3:  // ChannelData with lying lengths
                datagram = [0x40, UInt8.random(in: 0...255, using: &random), 0xFF, 0xFF] + [1, 2, 3]
            default:  // STUN header announcing attributes it does not have
                datagram = [0x00, 0x01, 0x00, 0x40, 0x21, 0x12, 0xA4, 0x42] + Array(repeating: 0, count: 12) + [0x00, 0x06, 0xFF, 0xFF]
            }
            if datagram.isEmpty { datagram = [0] }
            _ = try? socket.send(datagram, to: relay.address)
        }
        #expect(relay.process.isRunning)
        let script = Binaries.packageRoot.appending(path: "Tests/Interop/aioice_turn_client.py").path
        let output = try Command.run(
            ["timeout", "60", Binaries.python, script, "127.0.0.1", String(relay.port), RelayProcess.secret, "50"], check: false)
        #expect(output.standardOutput.contains("50 passed, 0 failed"), "\(output.standardOutput)\(output.standardError)")
        #expect(try relay.get("/healthz").status == 200)
    }
}
