import Actors
import Addresses
import Relay
import Testing

/// An in-memory datagram sink: takes up to `room` datagrams per call, as a send buffer with that much
/// space would, and keeps what it took in order.
final class FakeSink: DatagramSink {
    let fileDescriptor: Int32
    var room = Int.max
    var failing = false
    private(set) var taken: [(destination: SocketAddress, bytes: [UInt8])] = []
    private(set) var calls = 0

    init(fileDescriptor: Int32 = 7) { self.fileDescriptor = fileDescriptor }

    func send(_ batch: DatagramBatch) throws(SocketError) -> Int {
        calls += 1
        if failing { throw .system("sendmmsg", 5) }
        let accepted = min(room, batch.count)
        for index in 0..<accepted {
            taken.append((batch.address(index) ?? SocketAddress(ip: .v4(0), port: 0), Array(batch.outgoing(index))))
        }
        room -= accepted
        return accepted
    }
}

/// The relay's send queue without sockets or `tc`: batching, the bounded backlog that keeps a socket's
/// datagrams in order across a full buffer, and what is dropped and why.
@Suite struct SendQueueTests {
    let peer = SocketAddress(ip: .v4(0x0A00_0001), port: 9000)
    let peer6 = SocketAddress(ip: .v6(0x2001_0DB8_0000_0000, 1), port: 9000)

    final class Watch {
        var events: [(Int32, Bool)] = []
    }

    func datagram(_ sequence: Int, size: Int = 100) -> [UInt8] {
        var bytes = [UInt8](repeating: 0xAB, count: size)
        bytes[0] = UInt8(sequence >> 8)
        bytes[1] = UInt8(sequence & 0xFF)
        return bytes
    }

    func sequences(_ sink: FakeSink) -> [Int] { sink.taken.map { Int($0.bytes[0]) << 8 | Int($0.bytes[1]) } }

    @Test func aBatchGoesOutInOneCallAtFlush() {
        let watch = Watch()
        let queue = SendQueue(watchWritable: { watch.events.append(($0, $1)) })
        let sink = FakeSink()
        for sequence in 0..<10 { datagram(sequence).withUnsafeBytes { queue.enqueue($0, on: sink, to: peer) } }
        #expect(sink.calls == 0, "nothing sent before the turn ends")
        queue.flush()
        #expect(sink.calls == 1 && sequences(sink) == Array(0..<10))
        #expect(watch.events.isEmpty)
    }

    @Test func aFullBufferBacklogsTheRestAndNewerDatagramsQueueBehindIt() {
        let watch = Watch()
        let queue = SendQueue(watchWritable: { watch.events.append(($0, $1)) })
        let sink = FakeSink()
        sink.room = 30
        for sequence in 0..<100 { datagram(sequence).withUnsafeBytes { queue.enqueue($0, on: sink, to: peer) } }
        queue.flush()
        #expect(sequences(sink) == Array(0..<30))
        #expect(queue.backlogged == 70 && queue.hasBacklog(sink.fileDescriptor))
        #expect(watch.events.map(\.1) == [true], "the socket is watched for writability")
        // More arrives while the buffer is still full: it waits behind the backlog, never ahead of it.
        for sequence in 100..<120 { datagram(sequence).withUnsafeBytes { queue.enqueue($0, on: sink, to: peer) } }
        queue.flush()
        #expect(sequences(sink).count == 30 && queue.backlogged == 90)
        // Writable again, with room for everything: all of it goes, in order, and the watch ends.
        sink.room = .max
        queue.writable(sink.fileDescriptor)
        #expect(sequences(sink) == Array(0..<120))
        #expect(queue.backlogged == 0 && !queue.hasBacklog(sink.fileDescriptor))
        #expect(watch.events.map(\.1) == [true, false])
        #expect(queue.drops.total == 0)
    }

    @Test func theBacklogIsBoundedAndTheNewestAreDropped() {
        var limits = SendQueue.Limits()
        limits.backlogDatagrams = 50
        let queue = SendQueue(limits: limits, watchWritable: { _, _ in })
        let sink = FakeSink()
        sink.room = 0
        for sequence in 0..<200 { datagram(sequence).withUnsafeBytes { queue.enqueue($0, on: sink, to: peer) } }
        queue.flush()
        #expect(queue.backlogged == 50)
        #expect(queue.drops.backlogFull == 150)
        sink.room = .max
        queue.writable(sink.fileDescriptor)
        #expect(sequences(sink) == Array(0..<50), "the oldest were kept")
    }

    @Test func aDatagramTooBigForUDPIsDroppedAndCountedNeverSentEmpty() {
        let queue = SendQueue(watchWritable: { _, _ in })
        let sink = FakeSink()
        [UInt8](repeating: 1, count: 65_508).withUnsafeBytes { queue.enqueue($0, on: sink, to: peer) }
        [UInt8](repeating: 1, count: 65_507).withUnsafeBytes { queue.enqueue($0, on: sink, to: peer) }
        [UInt8](repeating: 1, count: 65_527).withUnsafeBytes { queue.enqueue($0, on: sink, to: peer6) }
        [UInt8](repeating: 1, count: 65_528).withUnsafeBytes { queue.enqueue($0, on: sink, to: peer6) }
        queue.flush()
        #expect(sink.taken.map(\.bytes.count) == [65_507, 65_527], "the largest UDP payloads of each family go")
        #expect(queue.drops.tooBig == 2)
    }

    @Test func aFailingSocketDropsItsBatchAndACloseDropsItsBacklog() {
        let queue = SendQueue(watchWritable: { _, _ in })
        let failing = FakeSink(fileDescriptor: 8)
        failing.failing = true
        for sequence in 0..<5 { datagram(sequence).withUnsafeBytes { queue.enqueue($0, on: failing, to: peer) } }
        queue.flush()
        #expect(queue.drops.socketFailed == 5)

        let full = FakeSink(fileDescriptor: 9)
        full.room = 0
        for sequence in 0..<5 { datagram(sequence).withUnsafeBytes { queue.enqueue($0, on: full, to: peer) } }
        queue.flush()
        queue.close(full.fileDescriptor)
        #expect(queue.drops.closed == 5 && queue.backlogged == 0)
    }
}
