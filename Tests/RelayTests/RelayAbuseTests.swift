import Actors
import Foundation
import STUN
import Synchronization
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

    /// A gauge from `/metrics` (0 until it is first set).
    func gauge(_ relay: RelayProcess, _ name: String) throws -> Int {
        for line in try relay.get("/metrics").body.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(Double(line.dropFirst(name.count + 1)) ?? -1)
        }
        return 0
    }

    @Test func aFloodFromManySourcesFillsTheNonceTableAndTheLimiterToTheirBoundsAndNoFurther() async throws {
        let relay = try await RelayProcess.start(ipv6: false)
        defer { relay.process.stop() }
        let before = try residentKiB(relay.process)
        // 25,000 source addresses in 127.0.0.0/8 × 4 ports each: 100,000 distinct clients, each sending
        // one unauthenticated Allocate. Four per address stay under the 401 burst (10), so every one is
        // answered with a nonce the relay must keep: more than the nonce table holds (65,536), from more
        // addresses than the rate limiter tracks (16,384).
        let addresses = 25_000
        var sent = 0
        for host in 0..<addresses {
            let address = "127.\(2 + host / 62_500).\((host / 250) % 250).\(1 + host % 250)"
            for _ in 0..<4 {
                let client = try relay.client(bindTo: address)
                let id = (0..<12).map { _ in UInt8.random(in: 0...255) }
                try client.sendRaw(client.encode(method: TURNTestClient.allocate, [.transport(17)], authenticated: false, transactionID: id))
                sent += 1
            }
        }
        // The relay has read everything once a request of ours gets its answer after the flood.
        let probe = try relay.client()
        try await Wait.until("the relay answers after the flood", timeout: .seconds(30)) {
            (try probe.request(TURNTestClient.allocate, [.transport(17)], authenticated: false)) != nil
        }
        try await Wait.until("the gauges show both tables full", timeout: .seconds(5)) {
            try gauge(relay, "gatehouse_relay_nonces") == 65_536 && gauge(relay, "gatehouse_relay_rate_limited_sources") == 16_384
        }
        let after = try residentKiB(relay.process)
        print("flood of \(sent) unauthenticated requests from \(sent) sources on \(addresses) addresses: nonces \(try gauge(relay, "gatehouse_relay_nonces")) (bound 65,536), limiter sources \(try gauge(relay, "gatehouse_relay_rate_limited_sources")) (bound 16,384); relay RSS \(before) KiB before, \(after) KiB after (+\(after - before) KiB)")
        #expect(after - before < 64 * 1024, "bounded tables")
        #expect(try relay.get("/metrics").body.contains("gatehouse_relay_allocations 0"))
    }

    @Test func expiredNoncesAreSweptWhileTheRelayRuns() async throws {
        let relay = try await RelayProcess.start(ipv6: false, extra: ["--nonce-lifetime", "10"])
        defer { relay.process.stop() }
        // 30 addresses × 10 ports: 300 unauthenticated Allocates sent at once, each within its address's
        // 401 burst, so each gets a nonce the relay keeps for 10 s.
        var clients: [TURNTestClient] = []
        for host in 1...30 {
            for _ in 0..<10 {
                let client = try relay.client(bindTo: "127.3.0.\(host)")
                let id = (0..<12).map { _ in UInt8.random(in: 0...255) }
                try client.sendRaw(client.encode(method: TURNTestClient.allocate, [.transport(17)], authenticated: false, transactionID: id))
                clients.append(client)
            }
        }
        // Watch the gauge until the table has fallen back to empty: the most it showed is the burst.
        var most = 0
        let burst = ContinuousClock.now
        try await Wait.until("the nonce table falls back to empty after the burst", timeout: .seconds(90), interval: .milliseconds(200)) {
            let held = try gauge(relay, "gatehouse_relay_nonces")
            most = max(most, held)
            return most > 0 && held == 0
        }
        print("300 nonces with a 10 s lifetime: the table held at most \(most), and was empty again \(ContinuousClock.now - burst) after the burst")
        #expect(most >= 250, "the burst filled the table (\(most) of 300)")
        #expect(ContinuousClock.now - burst >= .seconds(10), "not swept before the nonces expired")
        _ = clients
    }

    @Test func aPeerFloodWithoutPermissionCostsNoMemoryAndControlStaysResponsive() async throws {
        let relay = try await RelayProcess.start(ipv6: false)
        defer { relay.process.stop() }
        let client = try relay.client(id: "flooded")
        let relayed = try #require(try client.allocate()?.relayedAddresses.first)
        let before = try residentKiB(relay.process)

        // 200,000 datagrams of 500 bytes from an address the allocation has no permission for, paced at
        // about 100,000 a second so that the control requests below meet the flood, not its end.
        let flooder = try UDPSocket(bindTo: "127.0.0.9")
        let total = 200_000
        let progress = Atomic<Int>(0)
        // The flood holds its last fifth until the control requests were answered: on a loaded machine
        // the test's own requests could otherwise come only after the whole flood.
        let (controlDone, markControlDone) = AsyncStream<Void>.makeStream()
        defer { markControlDone.finish() }  // never leave the flood waiting, whatever happens below
        let flood = Task.detached {
            let batch = DatagramBatch(capacity: 64, datagramCapacity: 512)
            let payload = [UInt8](repeating: 0xEE, count: 500)
            var sent = 0
            let start = ContinuousClock.now
            var held = false
            while sent < total {
                if sent >= total * 4 / 5 && !held {
                    for await _ in controlDone {}  // ends when the test finishes the stream
                    held = true
                }
                let due = start + .microseconds(sent * 10)
                if ContinuousClock.now < due { try? await Task.sleep(until: due) }
                batch.removeAll()
                for _ in 0..<min(64, total - sent) { payload.withUnsafeBytes { _ = batch.append($0, to: relayed) } }
                sent += (try? flooder.send(batch)) ?? 0
                progress.store(sent, ordering: .relaxed)
            }
        }
        try await Wait.until("the flood is under way") { progress.load(ordering: .relaxed) >= 20_000 }
        let peer = try UDPSocket(bindTo: "127.0.0.1")
        var started = ContinuousClock.now
        let refresh = try client.request(TURNTestClient.refresh, [.lifetime(600)])
        let refreshTime = ContinuousClock.now - started
        started = ContinuousClock.now
        let bind = try client.request(TURNTestClient.channelBind, [.channel(0x4004), .peer(peer.localAddress)])
        let bindTime = ContinuousClock.now - started
        let sentDuringControl = progress.load(ordering: .relaxed)
        markControlDone.finish()
        await flood.value
        let probe = try relay.client()
        try await Wait.until("the relay answers after the flood", timeout: .seconds(30)) {
            (try probe.request(0x001, authenticated: false)) != nil
        }
        let after = try residentKiB(relay.process)
        let dropped = try relay.get("/metrics").body.split(separator: "\n")
            .first { $0.hasPrefix("gatehouse_relay_dropped_peer_datagrams_total ") }.map(String.init) ?? "none"
        print("peer flood without permission: \(total) datagrams; Refresh answered in \(refreshTime), ChannelBind in \(bindTime) (flood at \(sentDuringControl) sent); RSS \(before) KiB → \(after) KiB (+\(after - before) KiB); \(dropped)")
        #expect(refresh?.isSuccess == true && bind?.isSuccess == true)
        #expect(sentDuringControl < total, "the requests were answered while the flood went on")
        #expect(refreshTime < .milliseconds(500) && bindTime < .milliseconds(500), "before a STUN client's first retransmission")
        #expect(after - before < 16 * 1024, "nothing of the flood is kept")
        #expect(!dropped.hasSuffix(" 0") && dropped != "none", "the flood reached the relay and was dropped on arrival")
        // The channel works once the flood is over.
        let (toPeer, toClient) = try exchange(client, channel: 0x4004, peer: peer, relayed: relayed, count: 3)
        #expect(toPeer == 3 && toClient == 3)
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
        let output = try await Command.run(
            ["timeout", "60", Binaries.python, script, "127.0.0.1", String(relay.port), RelayProcess.secret, "50"], check: false)
        #expect(output.standardOutput.contains("50 passed, 0 failed"), "\(output.standardOutput)\(output.standardError)")
        #expect(try relay.get("/healthz").status == 200)
    }
}
