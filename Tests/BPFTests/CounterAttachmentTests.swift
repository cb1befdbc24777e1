import Actors
import BPF
import BPFMaps
import TestSupport
import Testing

/// The counter program attached to a veth inside network namespaces, counting real packets sent from
/// another namespace.
@Suite(.privileged, .serialized) struct CounterAttachmentTests {
    /// sender (eth0) ──veth── (eth0) receiver, with the counter loaded in the receiver.
    private struct Topology {
        let network: TestNetwork
        let sender: NetworkNamespace
        let receiver: NetworkNamespace
        let link: VethPair
    }

    private func withTopology(_ body: (Topology) async throws -> Void) async throws {
        try await TestNetwork.with { network in
            let sender = try network.namespace("sender")
            let receiver = try network.namespace("receiver")
            let link = try network.connect(sender, receiver)
            try await body(Topology(network: network, sender: sender, receiver: receiver, link: link))
        }
    }

    /// Sends `count` datagrams from the sender to the receiver's `port` and waits until the receiver's
    /// socket got them all: XDP_PASS and TC_ACT_OK must deliver every packet they count.
    private func send(_ count: Int, to port: UInt16, in topology: Topology, ipv6: Bool = false) throws {
        let destination = ipv6 ? topology.link.b.ipv6 : topology.link.b.ipv4
        let receiving = try topology.receiver.run { try UDPSocket(bindTo: destination, port: port) }
        let sending = try topology.sender.run { try UDPSocket(bindTo: ipv6 ? topology.link.a.ipv6 : topology.link.a.ipv4) }
        for index in 0..<count {
            try sending.send(Array(repeating: UInt8(index), count: 100), to: destination, port: port)
            let received = try #require(try receiving.receive(timeout: .seconds(5)), "datagram \(index) delivered")
            #expect(received.bytes.count == 100)
        }
    }

    @Test(arguments: XDPMode.allCases)
    func xdpCountsOnlyOnceConfiguredThenStopsWhenDetached(mode: XDPMode) async throws {
        try await withTopology { topology in
            let counter = try CounterProgram()
            let attachment = try topology.receiver.run {
                try counter.attachXDP(to: topology.link.b.interface, mode: mode)
            }
            let listing = try topology.receiver.ip("link", "show", "dev", topology.link.b.interface)
            #expect(listing.standardOutput.contains(mode == .native ? " xdp qdisc" : " xdpgeneric qdisc"), "\(listing.standardOutput)")

            // Not configured yet: the zeroed slot must not be read as "count port 0" or as anything else.
            try send(4, to: 3478, in: topology)
            var stats = try counter.statistics()
            #expect(stats.matched.packets == 0)
            #expect(stats.notConfigured.packets >= 4)

            // A config equal to the defaults still reaches the kernel.
            try counter.apply(.defaults)
            try send(6, to: 3478, in: topology)
            try send(3, to: 4000, in: topology)
            try send(2, to: 3478, in: topology, ipv6: true)
            stats = try counter.statistics()
            #expect(stats.matched.packets == 8)
            #expect(stats.matched.bytes == 6 * (14 + 20 + 8 + 100) + 2 * (14 + 40 + 8 + 100))
            #expect(stats.other.packets >= 3)

            // The kernel saw the flow with its ports in network byte order.
            let flows = try counter.flows.entries()
            #expect(flows.count == 1)
            let flow = try #require(flows.first)
            #expect(UInt16(bigEndian: flow.key.dport) == 3478)
            #expect(flow.value.packets == 6)

            try attachment.detach()
            #expect(!attachment.isAttached)
            let after = try topology.receiver.ip("link", "show", "dev", topology.link.b.interface)
            #expect(!after.standardOutput.contains("xdp"), "\(after.standardOutput)")
            try send(5, to: 3478, in: topology)
            #expect(try counter.statistics().matched.packets == 8, "a detached program counts nothing")
        }
    }

    @Test func aNonDefaultConfigMovesWhatIsCounted() async throws {
        try await withTopology { topology in
            let counter = try CounterProgram()
            let attachment = try topology.receiver.run {
                try counter.attachXDP(to: topology.link.b.interface, mode: .native)
            }
            defer { try? attachment.detach() }
            try counter.apply(CounterConfig(udpPort: 5555))
            #expect(try counter.kernelConfig()?.udp_port == UInt16(5555).bigEndian)
            try send(3, to: 3478, in: topology)
            try send(4, to: 5555, in: topology)
            #expect(try counter.statistics().matched.packets == 4)
            // Back to the defaults: written, not skipped as "already seen".
            try counter.apply(.defaults)
            try send(2, to: 3478, in: topology)
            #expect(try counter.statistics().matched.packets == 6)
        }
    }

    @Test func attachingTwiceToOneInterfaceFailsAndUnknownInterfacesAreNamed() async throws {
        try await withTopology { topology in
            let counter = try CounterProgram()
            let first = try topology.receiver.run { try counter.attachXDP(to: topology.link.b.interface, mode: .native) }
            defer { try? first.detach() }
            #expect(throws: BPFError.self) {
                _ = try topology.receiver.run { try counter.attachXDP(to: topology.link.b.interface, mode: .native) }
            }
            #expect(throws: BPFError.interfaceNotFound("nosuch0")) {
                _ = try topology.receiver.run { try counter.attachXDP(to: "nosuch0", mode: .generic) }
            }
        }
    }

    @Test(arguments: TCDirection.allCases)
    func tcCountsAndDetachRemovesTheQdisc(direction: TCDirection) async throws {
        try await withTopology { topology in
            let counter = try CounterProgram()
            try counter.apply(.defaults)
            // Ingress: the receiver sees arriving packets. Egress: the sender sees leaving ones.
            let (namespace, interface) = direction == .ingress
                ? (topology.receiver, topology.link.b.interface)
                : (topology.sender, topology.link.a.interface)
            let attachment = try namespace.run { try counter.attachTC(to: interface, direction: direction) }
            let filters = try namespace.exec(["tc", "filter", "show", "dev", interface, direction.rawValue])
            #expect(filters.standardOutput.contains("counter_tc"), "\(filters.standardOutput)")

            try send(5, to: 3478, in: topology)
            #expect(try counter.statistics().matched.packets == 5)

            try namespace.run { try attachment.detach() }
            let qdiscs = try namespace.exec(["tc", "qdisc", "show", "dev", interface])
            #expect(!qdiscs.standardOutput.contains("clsact"), "\(qdiscs.standardOutput)")
            try send(2, to: 3478, in: topology)
            #expect(try counter.statistics().matched.packets == 5)
        }
    }
}
