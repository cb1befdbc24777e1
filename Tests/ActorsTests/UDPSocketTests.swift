import Actors
import Addresses
import TestSupport
import Testing

/// Batched UDP on loopback: what goes out in one sendmmsg arrives, complete and in order, through
/// recvmmsg.
@Suite struct UDPSocketTests {
    @Test(arguments: ["127.0.0.1", "::1"])
    func aBatchSentInOneCallArrivesWhole(loopback: String) throws {
        let receiver = try UDPSocket(bindTo: loopback)
        let sender = try UDPSocket(bindTo: loopback)
        let outgoing = DatagramBatch(capacity: 40, datagramCapacity: 1500)
        for index in 0..<40 {
            let appended = outgoing.append(to: receiver.localAddress) { buffer in
                let length = 1 + index * 30
                for offset in 0..<length { buffer[offset] = UInt8(truncatingIfNeeded: index + offset) }
                return length
            }
            #expect(appended)
        }
        #expect(!outgoing.append([1, 2, 3].withUnsafeBytes { $0 }, to: receiver.localAddress), "a full batch refuses more")
        #expect(try sender.send(outgoing) == 40)

        let incoming = DatagramBatch(capacity: 16, datagramCapacity: 2048)
        var received: [[UInt8]] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while received.count < 40 && ContinuousClock.now < deadline {
            try receiver.waitUntilReadable(timeout: .milliseconds(200))
            let count = try receiver.receive(into: incoming)
            #expect(count <= 16)
            for index in 0..<count {
                #expect(incoming.address(index) == sender.localAddress)
                received.append(Array(incoming.payload(index)))
            }
        }
        #expect(received.count == 40)
        for (index, datagram) in received.enumerated() {
            #expect(datagram.count == 1 + index * 30)
            #expect(datagram.first == UInt8(truncatingIfNeeded: index))
        }
        #expect(try receiver.receive(into: incoming) == 0, "nothing more is waiting, and receive does not block")
    }

    /// Equal-sized datagrams to one destination leave as one UDP GSO send; they must still arrive as
    /// separate datagrams, in order, each with its own bytes (the last one may be shorter).
    @Test(arguments: ["127.0.0.1", "::1"])
    func aUniformBatchArrivesAsSeparateDatagrams(loopback: String) throws {
        let receiver = try UDPSocket(bindTo: loopback)
        let sender = try UDPSocket(bindTo: loopback)
        let batch = DatagramBatch(capacity: 64, datagramCapacity: 256)
        for index in 0..<30 {
            batch.append(to: receiver.localAddress) { buffer in
                let length = index == 29 ? 50 : 200
                for offset in 0..<length { buffer[offset] = UInt8(truncatingIfNeeded: index) }
                return length
            }
        }
        #expect(try sender.send(batch) == 30)
        #expect(sender.usesSegmentation, "this kernel takes UDP GSO on loopback")
        for index in 0..<30 {
            let datagram = try #require(try receiver.receive(timeout: .seconds(2)), "datagram \(index)")
            #expect(datagram.bytes.count == (index == 29 ? 50 : 200))
            #expect(datagram.bytes.allSatisfy { $0 == UInt8(index) })
            #expect(datagram.from == sender.localAddress)
        }
    }

    /// A receiver with UDP GRO gets a GSO burst as few coalesced entries; `forEachDatagram` gives back
    /// every datagram as it was sent, in order.
    @Test(arguments: ["127.0.0.1", "::1"])
    func aCoalescedBurstSplitsBackIntoItsDatagrams(loopback: String) throws {
        let receiver = try UDPSocket(bindTo: loopback)
        let coalescing = receiver.enableReceiveCoalescing()
        let sender = try UDPSocket(bindTo: loopback)
        let outgoing = DatagramBatch(capacity: 64, datagramCapacity: 1500)
        var sent: [[UInt8]] = []
        for round in 0..<3 {
            outgoing.removeAll()
            // 40 datagrams of 1000 bytes and a shorter last one: a uniform batch, sent with GSO.
            for index in 0..<41 {
                let datagram = (0..<(index == 40 ? 300 : 1000)).map { UInt8(truncatingIfNeeded: $0 &+ index &+ round * 41) }
                sent.append(datagram)
                datagram.withUnsafeBytes { _ = outgoing.append($0, to: receiver.localAddress) }
            }
            #expect(try sender.send(outgoing) == 41)
        }
        let incoming = DatagramBatch(capacity: 8, datagramCapacity: 65_535)
        var received: [[UInt8]] = []
        var coalescedEntries = 0
        let deadline = ContinuousClock.now + .seconds(5)
        while received.count < sent.count && ContinuousClock.now < deadline {
            try receiver.waitUntilReadable(timeout: .milliseconds(200))
            let count = try receiver.receive(into: incoming)
            for index in 0..<count {
                if incoming.segmentSize(index) != nil { coalescedEntries += 1 }
                incoming.forEachDatagram(index) { received.append(Array($0)) }
            }
        }
        print("UDP GRO on \(loopback): \(coalescing ? "enabled" : "not available"); \(sent.count) datagrams arrived in \(coalescedEntries) coalesced entries")
        #expect(received == sent, "every datagram, whole and in order")
        if coalescing && sender.usesSegmentation { #expect(coalescedEntries > 0, "the kernel coalesced the GSO bursts") }
    }

    @Test func aDestinationOfTheWrongFamilyIsSkippedAndTheRestGoesOut() throws {
        let receiver = try UDPSocket(bindTo: "127.0.0.1")
        let sender = try UDPSocket(bindTo: "127.0.0.1")
        let batch = DatagramBatch(capacity: 3, datagramCapacity: 64)
        let payload: [UInt8] = [7, 7, 7]
        payload.withUnsafeBytes { bytes in
            batch.append(bytes, to: receiver.localAddress)
            batch.append(bytes, to: try! SocketAddress("::1", port: receiver.localPort))
            batch.append(bytes, to: receiver.localAddress)
        }
        #expect(try sender.send(batch) == 3)
        #expect(try receiver.receive()?.bytes == payload)
        #expect(try receiver.receive()?.bytes == payload)
        #expect(try receiver.receive(timeout: .milliseconds(100)) == nil)
    }

    @Test func receiveWithATimeoutReturnsNilWhenNothingComes() throws {
        let socket = try UDPSocket(bindTo: "127.0.0.1")
        let start = ContinuousClock.now
        #expect(try socket.receive(timeout: .milliseconds(50)) == nil)
        #expect(ContinuousClock.now - start >= .milliseconds(50))
    }

    /// A burst of 64 KB batches sent while the reader is busy: a WireGuard endpoint's socket (client,
    /// gateway) holds all of it, where a socket with the kernel's default buffer drops most of it. Needs
    /// CAP_NET_ADMIN for the buffer beyond net.core.rmem_max.
    @Test(.privileged) func aTunnelEndpointHoldsABurstThatADefaultSocketDrops() throws {
        func burstDelivered(to receiver: UDPSocket) throws -> Int {
            let sender = try UDPSocket(bindTo: "127.0.0.1")
            let datagram = [UInt8](repeating: 0x5A, count: 60_000)
            for _ in 0..<64 { _ = try sender.send(datagram, to: receiver.localAddress) }
            var delivered = 0
            while let (bytes, _) = try receiver.receive(timeout: .milliseconds(200)) {
                if bytes.count == datagram.count { delivered += 1 }
            }
            return delivered
        }
        let endpoint = try UDPSocket.tunnelEndpoint(bindTo: SocketAddress("127.0.0.1", port: 0))
        #expect(endpoint.bufferBytes.receive >= 2 * Int(UDPSocket.tunnelBufferBytes), "the kernel granted \(endpoint.bufferBytes)")
        #expect(endpoint.bufferBytes.send >= 2 * Int(UDPSocket.tunnelBufferBytes))
        #expect(endpoint.smallBufferWarning == nil)
        #expect(try burstDelivered(to: endpoint) == 64)
        let plain = try UDPSocket(bindTo: "127.0.0.1")
        #expect(try burstDelivered(to: plain) < 64, "the default buffer cannot hold 3.8 MB")
    }

    @Test func bindingAPortInUseSaysWhich() throws {
        let first = try UDPSocket(bindTo: "127.0.0.1")
        #expect {
            _ = try UDPSocket(bindTo: "127.0.0.1", port: first.localPort)
        } throws: { error in
            "\(error)".contains("bind 127.0.0.1:\(first.localPort)") && "\(error)".contains("in use")
        }
    }
}

@Suite struct SocketAddressTests {
    @Test(arguments: [
        ("192.0.2.1", 3478, "192.0.2.1:3478"),
        ("2001:db8::1", 443, "[2001:db8::1]:443"),
        ("::ffff:127.0.0.1", 1, "[::ffff:127.0.0.1]:1"),
        ("::", 0, "[::]:0"),
    ])
    func parsesAndPrints(text: String, port: Int, expected: String) throws {
        let address = try SocketAddress(text, port: UInt16(port))
        #expect(address.description == expected)
        let roundTrip = address.withSockaddr { pointer, _ in SocketAddress(UnsafeRawPointer(pointer)) }
        #expect(roundTrip == address)
    }

    @Test func ipv4IsPackedBigEndian() throws {
        #expect(try SocketAddress("192.0.2.1", port: 1).ip == .v4(0xC000_0201))
        #expect(try SocketAddress("2001:db8::1", port: 1).ip == .v6(0x2001_0DB8_0000_0000, 1))
    }

    @Test(arguments: ["", "300.1.1.1", "example.com", "1.2.3", "[::1]", "::1::2"])
    func rejectsWhatIsNotAnAddress(text: String) {
        #expect(throws: SocketError.badAddress(text)) { _ = try SocketAddress(text, port: 1) }
    }
}

@Suite struct SecretTests {
    @Test func aSecretNeverPrintsItsValue() {
        let secret = Secret("hunter2")
        #expect("\(secret)" == "[redacted]")
        #expect(String(describing: [secret]) == "[[redacted]]")
        #expect(String(reflecting: secret) == "[redacted]")
        #expect(secret.reveal() == "hunter2")
    }
}
