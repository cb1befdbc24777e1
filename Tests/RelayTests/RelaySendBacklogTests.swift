import Actors
import Foundation
import TestSupport
import Testing

/// Sends that would block are queued, with a bound, not dropped: the relay's link to the router is
/// slowed to 1 Mbit/s with a token bucket whose queue is long enough to hold everything, so the relayed
/// socket's send buffer fills and the kernel answers EAGAIN. Every datagram must still reach the peer,
/// in order, with nothing counted as dropped.
@Suite(.privileged, .serialized) struct RelaySendBacklogTests {
    @Test func aFullSendBufferDelaysDatagramsAndLosesNone() async throws {
        try await XDPTopology.with { topology in
            try await topology.relay.exec([
                "tc", "qdisc", "add", "dev", topology.relayEnd.interface, "root", "tbf", "rate", "1mbit", "burst", "16kb",
                "latency", "30s",
            ])
            let relay = try await topology.startRelay(xdp: false)
            let client = try topology.turnClient(id: "backlog", relay: relay)
            let relayed = try client.allocateRelayed(ipv6: false)
            let peer = try topology.peer.run {
                try UDPSocket(bindTo: SocketAddress(topology.peerEnd.ipv4, port: 0), receiveBufferBytes: 16 << 20)
            }
            try client.bind(channel: 0x4000, to: peer.localAddress)

            // 3,000 datagrams of 200 bytes at once: about 5 s of the link, far more than a send buffer.
            let count = 3000
            for sequence in 0..<count {
                var payload = [UInt8](repeating: 0xA5, count: 200)
                payload[0] = UInt8(sequence >> 8)
                payload[1] = UInt8(sequence & 0xFF)
                try client.sendChannelData(0x4000, payload)
                if sequence % 500 == 499 { usleep(20_000) }  // let the relay's listener keep up
            }
            var received: [Int] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while received.count < count, ContinuousClock.now < deadline {
                guard let (bytes, from) = try peer.receive(timeout: .seconds(5)) else { break }
                if from == relayed, bytes.count == 200 { received.append(Int(bytes[0]) << 8 | Int(bytes[1])) }
            }
            let dropped = try relay.metricTotal("gatehouse_relay_dropped_sends_total")
            print("send backlog: \(received.count)/\(count) datagrams reached the peer through a 1 Mbit/s link; dropped \(dropped)")
            #expect(received.count == count, "every datagram reached the peer")
            let outOfPlace = received.enumerated().first { $0.offset != $0.element }
            #expect(outOfPlace == nil, "in order; first out of place: \(String(describing: outOfPlace))")
            #expect(dropped == 0)
            #expect(try relay.userSpacePackets() == Double(count))
        }
    }
}
