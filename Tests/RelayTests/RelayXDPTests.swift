import Actors
import Foundation
import STUN
import TestSupport
import Testing

/// `gatehouse relay --xdp`: channel data relayed by the kernel, the kernel's routes in step with user
/// space through a channel's whole life, and everything the program must not touch still handled in
/// user space. All in network namespaces (see `XDPTopology`), with real sockets on both ends.
@Suite(.privileged, .serialized) struct RelayXDPTests {
    struct Config: CustomTestStringConvertible, Sendable {
        var name: String
        var listenPort: UInt16
        var portRange: String?
        var range: ClosedRange<UInt16>
        var mode = "native"
        var testDescription: String { name }
    }

    static let configs = [
        // The defaults (3478, 49152-65535) must reach the kernel like any other config.
        Config(name: "default config", listenPort: 3478, portRange: nil, range: 49152...65535),
        Config(name: "listen port 3479, ports 40000-40099", listenPort: 3479, portRange: "40000-40099", range: 40000...40099),
        Config(name: "generic mode, default config", listenPort: 3478, portRange: nil, range: 49152...65535, mode: "generic"),
    ]

    @Test(arguments: configs)
    func kernelRelaysEveryFamilyCombinationAndTheHairpin(config: Config) async throws {
        try await XDPTopology.with { topology in
            let relay = try await topology.startRelay(
                listenPort: config.listenPort, portRange: config.portRange, extra: ["--xdp-mode", config.mode])
            #expect(relay.process.output.contains("mode=\(config.mode)") || relay.process.output.contains("\"mode\":\"\(config.mode)\""))
            let capture = try await topology.captureRelayFrames()
            // The whole config is in the kernel's slot, read back from the map: the defaults included.
            let kernelConfig = try #require(try relay.routes().kernel_config)
            #expect(kernelConfig == .init(
                configured: 1, checksum_mode: 0, families: 3, listen_port: Int(config.listenPort),
                port_min: Int(config.range.lowerBound), port_max: Int(config.range.upperBound), mtu: 1500,
                interface_ipv4: topology.relayEnd.ipv4, interface_ipv6: topology.relayEnd.ipv6))

            // (client over IPv6?, peer over IPv6?): IPv4↔IPv4, IPv6↔IPv6 and both cross-family ways.
            let combinations = [(false, false), (true, true), (false, true), (true, false)]
            let count = 20
            for (index, (clientIPv6, peerIPv6)) in combinations.enumerated() {
                let what = "client \(clientIPv6 ? "IPv6" : "IPv4") → peer \(peerIPv6 ? "IPv6" : "IPv4")"
                let client = try topology.turnClient(ipv6: clientIPv6, id: "combo\(index)", relay: relay)
                let relayed = try client.allocateRelayed(ipv6: peerIPv6)
                #expect(config.range.contains(relayed.port), "\(what): relayed port \(relayed.port) in \(config.name)")
                let peer = try topology.peerSocket(ipv6: peerIPv6)
                let channel = UInt16(0x4000 + index)
                try client.bind(channel: channel, to: peer.localAddress)
                try await Wait.until("the kernel holds the route for \(what)") {
                    (try relay.routes().kernel ?? []).contains { $0.channel == Int(channel) && $0.relayed_port == Int(relayed.port) }
                }
                let (toPeer, toClient) = try exchange(client, channel: channel, peer: peer, relayed: relayed, count: count)
                #expect(toPeer == count && toClient == count, "\(what): \(toPeer)/\(count) to the peer, \(toClient)/\(count) back")
            }

            // The hairpin: two clients of this relay, each the other's peer through its relayed address.
            let alice = try topology.turnClient(id: "alice", relay: relay)
            let bob = try topology.turnClient(id: "bob", relay: relay)
            let aliceRelayed = try alice.allocateRelayed(ipv6: false)
            let bobRelayed = try bob.allocateRelayed(ipv6: false)
            try alice.bind(channel: 0x4100, to: bobRelayed)
            try bob.bind(channel: 0x4200, to: aliceRelayed)
            try await relay.waitForRoutes(Set(try relay.routes().user_space), "hairpin routes installed")
            var hairpinned = 0
            for index in 0..<count {
                let payload = [UInt8](repeating: UInt8(index), count: 64)
                try alice.sendChannelData(0x4100, payload)
                if let (number, bytes) = try bob.receiveChannelData(), number == 0x4200, bytes == payload { hairpinned += 1 }
                try bob.sendChannelData(0x4200, payload)
                if let (number, bytes) = try alice.receiveChannelData(), number == 0x4100, bytes == payload { hairpinned += 1 }
            }
            #expect(hairpinned == 2 * count, "hairpin: \(hairpinned)/\(2 * count)")

            // Every relayed packet went through the kernel, and none through user space.
            let relayedEachWay = Double(combinations.count * count)
            #expect(try relay.kernel("to_peer", action: "relayed") == relayedEachWay)
            #expect(try relay.kernel("to_client", action: "relayed") == relayedEachWay)
            #expect(try relay.kernel("hairpin", action: "relayed") == Double(2 * count))
            #expect(try relay.metric("gatehouse_relay_relayed_packets_total", "path=\"kernel\"") == 2 * relayedEachWay + Double(2 * count))
            #expect(try relay.userSpacePackets() == 0, "user space saw none of the channel data")
            #expect(try relay.kernel("not_configured") == 0, "the config (\(config.name)) reached the kernel")

            // Every frame the relay emitted (kernel rewrites and user-space answers) has valid checksums.
            let checked = try await capture.stopAndCheck()
            print("\(config.name): \(checked.checked) frames from the relay captured, \(checked.bad) with bad checksums, \(checked.ipv4_zero_udp_checksum) IPv4 with UDP checksum 0")
            #expect(checked.checked >= 2 * Int(relayedEachWay) + 2 * count, "captured \(checked.checked) frames from the relay")
            #expect(checked.bad == 0, "bad checksums: \(checked.examples)")

            // Shutdown detaches the program.
            #expect(try relay.xdpAttached())
            #expect(relay.process.stop() == 0, "SIGTERM exits 0")
            #expect(try !relay.xdpAttached(), "detached on shutdown")
            #expect(relay.process.output.contains("XDP fast path detached"))
        }
    }

    /// Refresh(0), channel expiry, a refresh after expiry and a re-bind after the cooldown, with the
    /// kernel's maps read back after each step and data flowing, or not, through the kernel accordingly.
    @Test func kernelRoutesFollowTheChannelLifecycle() async throws {
        try await XDPTopology.with { topology in
            let relay = try await topology.startRelay(extra: ["--channel-lifetime", "3", "--channel-cooldown", "2"])
            let client = try topology.turnClient(id: "lifecycle", relay: relay)
            let relayed = try client.allocateRelayed(ipv6: false)
            let peer = try topology.peerSocket()
            let otherPeer = try topology.peerSocket()
            let clientAddress = client.socket.localAddress.description
            func route(_ channel: UInt16, _ peer: UDPSocket) -> XDPRelay.Route {
                .init(client: clientAddress, channel: Int(channel), peer: peer.localAddress.description, relayed_port: Int(relayed.port))
            }
            var kernelToPeer = 0.0

            // Bound: the route is in both, data goes through the kernel.
            try client.bind(channel: 0x4000, to: peer.localAddress)
            try await relay.waitForRoutes([route(0x4000, peer)], "after ChannelBind")
            var flow = try exchange(client, channel: 0x4000, peer: peer, relayed: relayed, count: 5)
            #expect(flow == (5, 5))
            kernelToPeer += 5
            #expect(try relay.kernel("to_peer", action: "relayed") == kernelToPeer)

            // Expired (3 s): gone from both, data stops.
            try await relay.waitForRoutes([], "after the channel expired")
            let noRouteBefore = try relay.kernel("no_route")
            flow = try exchange(client, channel: 0x4000, peer: peer, relayed: relayed, count: 2, timeout: .milliseconds(300))
            #expect(flow.toPeer == 0, "no ChannelData relayed after expiry")
            #expect(try relay.kernel("no_route") >= noRouteBefore + 2, "the kernel had no route and passed them up")

            // Refreshed while cooling down: the route is re-installed in the kernel, data flows again.
            try client.bind(channel: 0x4000, to: peer.localAddress)
            try await relay.waitForRoutes([route(0x4000, peer)], "after a refresh after expiry")
            flow = try exchange(client, channel: 0x4000, peer: peer, relayed: relayed, count: 5)
            #expect(flow == (5, 5))
            kernelToPeer += 5
            #expect(try relay.kernel("to_peer", action: "relayed") == kernelToPeer)

            // Expired, then the cooldown passed: the number may go to another peer.
            try await relay.waitForRoutes([], "after the refreshed channel expired")
            #expect(try client.request(TURNTestClient.channelBind, [.channel(0x4000), .peer(otherPeer.localAddress)])?.errorCode == 400,
                    "still reserved during the cooldown")
            // Once the cooldown (2 s) has run out, the same number binds to the other peer.
            try await Wait.until("channel 0x4000 binds to another peer after the cooldown", interval: .milliseconds(200)) {
                try client.request(TURNTestClient.channelBind, [.channel(0x4000), .peer(otherPeer.localAddress)])?.isSuccess == true
            }
            try await relay.waitForRoutes([route(0x4000, otherPeer)], "after a re-bind to another peer after the cooldown")
            flow = try exchange(client, channel: 0x4000, peer: otherPeer, relayed: relayed, count: 5)
            #expect(flow == (5, 5))
            kernelToPeer += 5
            #expect(try peer.receive(timeout: .milliseconds(200)) == nil, "the old peer gets nothing")
            try client.bind(channel: 0x4001, to: peer.localAddress)
            try await relay.waitForRoutes([route(0x4000, otherPeer), route(0x4001, peer)], "two channels")

            // Refresh(0): the allocation and both routes go; nothing is relayed any more.
            let refreshed = try #require(try client.request(TURNTestClient.refresh, [.lifetime(0)]))
            #expect(refreshed.isSuccess)
            try await relay.waitForRoutes([], "after Refresh(0)")
            flow = try exchange(client, channel: 0x4001, peer: peer, relayed: relayed, count: 2, timeout: .milliseconds(300))
            #expect(flow == (0, 0), "nothing relayed after Refresh(0)")
            #expect(try relay.kernel("to_peer", action: "relayed") == kernelToPeer)
            // User space relayed only the two datagrams the peer sent while the channel had expired: the
            // permission outlives the channel, so they reached the client as Data indications.
            #expect(try relay.userSpacePackets() == 2)
        }
    }

    /// An allocation that expires takes its kernel routes with it, also when its channel runs out in
    /// the same moments (channel and allocation lifetimes equal): both maps read back empty, the
    /// relayed port can be bound again, and ChannelData on the old channel is not relayed.
    @Test func anExpiredAllocationLeavesNothingInTheKernel() async throws {
        try await XDPTopology.with { topology in
            let relay = try await topology.startRelay(portRange: "50000-50009", extra: ["--channel-lifetime", "2"])
            let client = try topology.turnClient(id: "expiring", relay: relay)
            let reply = try #require(try client.allocate([.transport(17), .lifetime(2)]))
            let relayed = try #require(reply.relayedAddresses.first)
            let peer = try topology.peerSocket()
            try client.bind(channel: 0x4000, to: peer.localAddress)
            let route = XDPRelay.Route(
                client: client.socket.localAddress.description, channel: 0x4000, peer: peer.localAddress.description,
                relayed_port: Int(relayed.port))
            try await relay.waitForRoutes([route], "bound")
            #expect(try exchange(client, channel: 0x4000, peer: peer, relayed: relayed, count: 2) == (2, 2))

            try await relay.waitForRoutes([], "after the allocation expired")
            try await Wait.until("the relayed port can be bound again in the relay's namespace") {
                (try? topology.relay.run { try UDPSocket(bindTo: topology.relayEnd.ipv4, port: relayed.port) }) != nil
            }
            let noRouteBefore = try relay.kernel("no_route")
            try client.sendChannelData(0x4000, [1, 2, 3])
            #expect(try peer.receive(timeout: .milliseconds(500)) == nil, "the old channel relays nothing")
            #expect(try relay.kernel("no_route") == noRouteBefore + 1, "the kernel had no route for it")
        }
    }

    /// STUN, padded ChannelData, a DNS reply into the port range and IPv4 with options go up to user
    /// space, which handles them as without XDP.
    @Test func trafficTheProgramMustNotTouchReachesUserSpace() async throws {
        try await XDPTopology.with { topology in
            let relay = try await topology.startRelay(portRange: "50000-50099")
            let client = try topology.turnClient(id: "pass", relay: relay)

            // STUN: answered by user space (the Allocate's 401 and success are STUN too).
            let stunBefore = try relay.kernel("stun")
            let binding = try #require(try client.request(0x001, [], authenticated: false), "Binding answered")
            #expect(binding.isSuccess)
            let relayed = try client.allocateRelayed(ipv6: false)
            #expect(try relay.kernel("stun") >= stunBefore + 3, "Binding + two Allocates passed up")

            // Padded ChannelData: relayed by user space, not by the kernel.
            let peer = try topology.peerSocket()
            try client.bind(channel: 0x4000, to: peer.localAddress)
            try await relay.waitForRoutes(Set(try relay.routes().user_space), "route installed")
            let payload: [UInt8] = [1, 2, 3, 4, 5]
            try client.sendChannelData(0x4000, payload, padded: true)
            let padded = try #require(try peer.receive(), "padded ChannelData relayed")
            #expect(padded.bytes == payload)
            #expect(try relay.kernel("channel_data_length") == 1)
            #expect(try relay.userSpacePackets() == 1)

            // A DNS reply (source port 53) into the allocation's port: user space, with its channel.
            let dns = try topology.peerSocket(port: 53)
            try client.bind(channel: 0x4001, to: dns.localAddress)
            _ = try dns.send([0xAB, 0xCD, 0x81, 0x80], to: relayed)
            let fromDNS = try #require(try client.receiveChannelData(), "DNS reply relayed to the client")
            #expect(fromDNS.channel == 0x4001 && fromDNS.payload == [0xAB, 0xCD, 0x81, 0x80])
            #expect(try relay.kernel("source_port") == 1)
            #expect(try relay.userSpacePackets() == 2)

            // IPv4 with options: user space.
            var options: [UInt8] = [1, 1, 1, 0]  // NOP NOP NOP EOL
            #expect(setsockopt(client.socket.fileDescriptor, Int32(IPPROTO_IP), IP_OPTIONS, &options, socklen_t(options.count)) == 0)
            let optionsBefore = try relay.kernel("ip_options")
            try client.sendChannelData(0x4000, [9, 9, 9, 9])
            let withOptions = try #require(try peer.receive(), "ChannelData with IPv4 options relayed")
            #expect(withOptions.bytes == [9, 9, 9, 9])
            #expect(try relay.kernel("ip_options") >= optionsBefore + 1)
            #expect(try relay.userSpacePackets() == 3)

            // Plain ChannelData still goes through the kernel.
            var none: [UInt8] = []
            #expect(setsockopt(client.socket.fileDescriptor, Int32(IPPROTO_IP), IP_OPTIONS, &none, 0) == 0)
            let flow = try exchange(client, channel: 0x4000, peer: peer, relayed: relayed, count: 3)
            #expect(flow == (3, 3))
            #expect(try relay.kernel("to_peer", action: "relayed") == 3)
            #expect(try relay.userSpacePackets() == 3)
        }
    }

    /// coturn's turnutils_uclient and turnutils_peer, as in `TurnutilsInteropTests`, with XDP attached:
    /// zero loss, and in channel mode the kernel relays the data.
    @Test(arguments: TurnutilsInteropTests.runs)
    func turnutilsWithXDPAttached(run: TurnutilsInteropTests.Run) async throws {
        try await XDPTopology.with { topology in
            let relay = try await topology.startRelay()
            let peerAddress = run.peer.contains(":") ? topology.peerEnd.ipv6 : topology.peerEnd.ipv4
            let peerPort: UInt16 = 3480
            let peer = try topology.network.spawn(in: topology.peer, ["turnutils_peer", "-p", String(peerPort), "-L", peerAddress])
            try await Wait.until("turnutils_peer listens") {
                try topology.peer.exec(["ss", "-uln"]).standardOutput.contains(":\(peerPort)")
            }
            try await TurnutilsInteropTests.expectClientsRelayWithoutLoss(
                run, secret: XDPTopology.secret, relay: topology.relayEnd.ipv4, port: 3478, peer: peerAddress, peerPort: peerPort,
                relayOutput: relay.process.output) { try await topology.client.exec($0, check: false) }
            let kernel = try relay.metric("gatehouse_relay_relayed_packets_total", "path=\"kernel\"")
            if run.flags.contains("-s") {
                #expect(kernel == 0, "Send/Data indications are user space's")
                #expect(try relay.userSpacePackets() >= 400)
            } else {
                #expect(kernel >= 400, "channel data relayed in the kernel (\(kernel))")
            }
            peer.stop()
        }
    }
}

/// Without XDP support for the interface, or without the privileges to load it, the relay says so once
/// and relays in user space.
@Suite(.serialized) struct RelayXDPFallbackTests {
    @Test(.privileged) func withoutPrivilegesItWarnsOnceAndRelaysInUserSpace() async throws {
        // As user nobody, the kernel refuses to load the program (unprivileged BPF is off by default).
        let relay = try await RelayProcess.start(
            ipv6: false, extra: ["--xdp", "lo"], prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        defer { relay.process.stop() }
        try expectUserSpaceAndOneWarning(relay, naming: "Operation not permitted")
    }

    @Test func anUnknownInterfaceGivesOneWarningAndUserSpace() async throws {
        let relay = try await RelayProcess.start(ipv6: false, extra: ["--xdp", "gh-no-such0"])
        defer { relay.process.stop() }
        try expectUserSpaceAndOneWarning(relay, naming: "gh-no-such0")
    }

    /// A channel relays both ways (in user space), the log has exactly one fallback warning, naming
    /// `reason`, and the metrics say XDP is not attached.
    private func expectUserSpaceAndOneWarning(_ relay: RelayProcess, naming reason: String) throws {
        let client = try relay.client()
        let peer = try UDPSocket(bindTo: "127.0.0.1")
        let relayed = try client.allocateRelayed(ipv6: false)
        try client.bind(channel: 0x4000, to: peer.localAddress)
        let flow = try exchange(client, channel: 0x4000, peer: peer, relayed: relayed, count: 5)
        #expect(flow == (5, 5), "relayed in user space")
        let warnings = relay.process.output.split(separator: "\n").filter { $0.contains("XDP fast path not available") }
        #expect(warnings.count == 1, "\(relay.process.output)")
        #expect(warnings.first?.contains(reason) == true, "the warning names the reason: \(warnings)")
        #expect(try relay.get("/metrics").body.contains("gatehouse_relay_xdp_attached 0"))
    }
}
