import Actors
import Foundation
import TestSupport
import Testing

/// What an operator of `gatehouse relay` sees: its endpoints, its signals, its errors.
@Suite struct RelayOperationsTests {
    @Test func healthReadinessAndMetricsAreServed() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        #expect(try relay.get("/healthz") == (200, "ok"))
        try await Wait.until("the relay is ready") { try relay.get("/readyz").status == 200 }
        let metrics = try relay.get("/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("gatehouse_relay_allocations"))
        #expect(metrics.body.contains("gatehouse_relay_relayed_packets_total{path=\"user_space\"}"))
    }

    @Test func metricsCountAllocationsChannelsPermissionsAndRequests() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let client = try relay.client()
        #expect(try client.allocate()?.isSuccess == true)
        let peer = try SocketAddress("127.0.0.1", port: 9100)
        #expect(try client.request(TURNTestClient.channelBind, [.channel(0x4000), .peer(peer)])?.isSuccess == true)
        try await Wait.until("the gauges show the allocation, channel and permission", timeout: .seconds(5)) {
            let body = try relay.get("/metrics").body
            return body.contains("gatehouse_relay_allocations 1") && body.contains("gatehouse_relay_channels 1")
                && body.contains("gatehouse_relay_permissions 1")
        }
        let body = try relay.get("/metrics").body
        #expect(body.contains(#"gatehouse_relay_requests_total{method="allocate",code="401"} 1"#), "\(body)")
        #expect(body.contains(#"gatehouse_relay_requests_total{method="allocate",code="200"} 1"#), "\(body)")
        #expect(body.contains(#"gatehouse_relay_requests_total{method="channel_bind",code="200"} 1"#), "\(body)")
    }

    @Test func jsonLogsAreOneObjectPerLineAndNeverCarryTheSecret() async throws {
        let relay = try await RelayProcess.start(extra: ["--log-format", "json"])
        let client = try relay.client()
        _ = try client.allocate()
        relay.process.stop()
        let lines = relay.process.output.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["message"] is String, "not a JSON log line: \(line)")
        }
        #expect(lines.contains { $0.contains("\"message\":\"relay listening\"") })
        #expect(!relay.process.output.contains(RelayProcess.secret), "the secret reached the log")
    }

    @Test func sigtermStopsTheRelayCleanly() async throws {
        let relay = try await RelayProcess.start()
        let status = relay.process.stop(grace: .seconds(10))
        #expect(status == 0, "exit status after SIGTERM: \(relay.process.output)")
    }

    @Test func aBindingRequestIsAnsweredWithTheMappedAddress() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let socket = try UDPSocket(bindTo: "127.0.0.1")
        // A Binding request (RFC 8489 section 5): type 0x0001, length 0, magic cookie, transaction ID.
        let transaction: [UInt8] = Array(1...12)
        try socket.send([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42] + transaction, to: "127.0.0.1", port: relay.port)
        let response = try #require(try socket.receive(timeout: .seconds(3)), "no Binding response")
        #expect(Array(response.bytes.prefix(2)) == [0x01, 0x01], "Binding success response")
        #expect(Array(response.bytes[8..<20]) == transaction)
        // XOR-MAPPED-ADDRESS carries our port XORed with the cookie's top 16 bits.
        let xorPort = UInt16(socket.localPort) ^ 0x2112
        let needle: [UInt8] = [0x00, 0x20, 0x00, 0x08, 0x00, 0x01, UInt8(xorPort >> 8), UInt8(xorPort & 0xFF)]
        #expect(response.bytes.indices.contains { response.bytes[$0...].starts(with: needle) }, "XOR-MAPPED-ADDRESS with our port")
    }

    @Test(arguments: [
        (["--public-ipv4", "127.0.0.1"], "--auth-secret"),
        (["--auth-secret", "x"], "at least one public address"),
        (["--auth-secret", "x", "--public-ipv4", "::1"], "--public-ipv4: is an IPv6 address"),
        (["--auth-secret", "x", "--public-ipv4", "127.0.0.1", "--port-range", "60000-50000"], "the low port is above the high port"),
        (["--auth-secret", "x", "--public-ipv4", "127.0.0.1", "--listen-port", "50000", "--port-range", "49152-65535"], "contains the listen port"),
        (["--auth-secret", "x", "--public-ipv4", "127.0.0.1", "--allow-peer", "10.0.0.0/33"], "prefix length must be 0-32"),
        (["--auth-secret", "x", "--public-ipv4", "nonsense"], "not an IP address"),
    ])
    func badConfigurationFailsWithAClearMessage(arguments: [String], message: String) async throws {
        let output = try await Command.run([Binaries.gatehouse, "relay"] + arguments, check: false)
        #expect(output.status != 0)
        #expect(output.standardError.contains(message), "\(output.standardError)")
    }

    @Test func theSecretFileMustNotBeReadableByOthers() async throws {
        let path = FileManager.default.temporaryDirectory.appending(path: "gatehouse-secret-\(UUID().uuidString)").path
        try "s3cret\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        chmod(path, 0o644)
        let output = try await Command.run([Binaries.gatehouse, "relay", "--public-ipv4", "127.0.0.1", "--auth-secret-file", path], check: false)
        #expect(output.status != 0)
        #expect(output.standardError.contains("readable by other users"), "\(output.standardError)")
    }
}
