package import Actors
package import Addresses

/// Where a send queue's datagrams go: a UDP socket, or an in-memory fake in tests.
package protocol DatagramSink: AnyObject {
    /// Identifies the sink (a socket's descriptor): the key of its batch and backlog.
    var fileDescriptor: Int32 { get }
    /// Sends the first `batch.count` datagrams in order; returns how many were taken (the rest met a
    /// full send buffer). Throws when the sink fails for another reason.
    func send(_ batch: DatagramBatch) throws(SocketError) -> Int
}

extension UDPSocket: DatagramSink {}

/// The relay's outgoing datagrams, per socket: appended to a batch during a turn of the loop and sent
/// with one system call per socket (sendmmsg, or GSO for a uniform batch) when the turn ends or the
/// batch is full. What a full send buffer refuses waits in that socket's backlog, in order, bounded;
/// everything newer for that socket queues behind it until the loop reports the socket writable again.
/// Used from the engine's thread only.
package final class SendQueue {
    package struct Limits: Sendable {
        /// Datagrams one socket's batch holds before it is sent.
        package var batch = 64
        /// Room per datagram in a batch (the largest UDP payload of either family fits).
        package var datagramBytes = 65_535
        /// At most this many datagrams and bytes wait per socket.
        package var backlogDatagrams = 4096
        package var backlogBytes = 4 << 20

        package init() {}
    }

    /// What was not sent, by reason.
    package struct Drops: Equatable, Sendable {
        /// The backlog was full, or the socket failed (not a full buffer: nothing to wait for).
        package var backlogFull = 0
        package var socketFailed = 0
        /// Larger than a datagram can be (e.g. a Data indication around a 65,507-byte peer datagram).
        package var tooBig = 0
        /// Waiting in the backlog of a socket that was closed.
        package var closed = 0

        package var total: Int { backlogFull + socketFailed + tooBig + closed }
    }

    private final class Backlog {
        var datagrams: [(destination: SocketAddress, bytes: [UInt8])] = []
        var head = 0
        var bytes = 0
        var isEmpty: Bool { head == datagrams.count }
        var count: Int { datagrams.count - head }
    }

    package let limits: Limits
    package private(set) var drops = Drops()
    private var batches: [Int32: (sink: any DatagramSink, batch: DatagramBatch)] = [:]
    private var backlogs: [Int32: Backlog] = [:]
    private let drainBatch: DatagramBatch
    /// Told when a socket should (true) or need no longer (false) be watched for writability.
    private let watchWritable: (Int32, Bool) -> Void

    package init(limits: Limits = Limits(), watchWritable: @escaping (Int32, Bool) -> Void) {
        self.limits = limits
        self.watchWritable = watchWritable
        drainBatch = DatagramBatch(capacity: limits.batch, datagramCapacity: limits.datagramBytes)
    }

    /// Datagrams waiting in backlogs.
    package var backlogged: Int { backlogs.values.reduce(0) { $0 + $1.count } }

    /// Whether `fd` has datagrams waiting for writability.
    package func hasBacklog(_ fd: Int32) -> Bool { backlogs[fd] != nil }

    /// Queues a copy of `bytes` for `destination`.
    package func enqueue(_ bytes: UnsafeRawBufferPointer, on sink: some DatagramSink, to destination: SocketAddress) {
        enqueue(length: bytes.count, on: sink, to: destination) { $0.copyMemory(from: bytes) }
    }

    /// Queues a datagram of `length` bytes that `write` fills in place (e.g. a ChannelData header in front
    /// of a payload, without an intermediate copy). A datagram larger than UDP allows toward
    /// `destination` is dropped and counted, never sent short or empty.
    package func enqueue(
        length: Int, on sink: some DatagramSink, to destination: SocketAddress, _ write: (UnsafeMutableRawBufferPointer) -> Void
    ) {
        guard length <= min(limits.datagramBytes, destination.maximumUDPPayload) else {
            drops.tooBig += 1
            return
        }
        let fd = sink.fileDescriptor
        let batch: DatagramBatch
        if let existing = batches[fd] {
            batch = existing.batch
            if batch.count == batch.capacity { flush(fd) }
        } else {
            batch = DatagramBatch(capacity: limits.batch, datagramCapacity: limits.datagramBytes)
            batches[fd] = (sink, batch)
        }
        batch.append(to: destination) { buffer in
            write(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length]))
            return length
        }
    }

    /// Sends every socket's batch (the end of a turn of the loop).
    package func flush() {
        for fd in batches.keys { flush(fd) }
    }

    /// Sends one socket's batch, behind its backlog.
    package func flush(_ fd: Int32) {
        guard let (sink, batch) = batches[fd], batch.count > 0 else { return }
        defer { batch.removeAll() }
        if let backlog = backlogs[fd] {
            drain(fd)
            if !backlog.isEmpty {
                keep(batch, from: 0, in: backlog)
                return
            }
        }
        let sent: Int
        do {
            sent = try sink.send(batch)
        } catch {
            drops.socketFailed += batch.count
            return
        }
        if sent < batch.count {
            let backlog = Backlog()
            backlogs[fd] = backlog
            keep(batch, from: sent, in: backlog)
            watchWritable(fd, true)
        }
    }

    /// The loop reports `fd` writable: send what its backlog holds, oldest first, until the buffer is
    /// full again or the backlog is empty (then the socket is no longer watched).
    package func writable(_ fd: Int32) {
        drain(fd)
    }

    /// The socket is closing: its batch goes out, its backlog is dropped and counted.
    package func close(_ fd: Int32) {
        flush(fd)
        batches[fd] = nil
        if let backlog = backlogs.removeValue(forKey: fd) {
            drops.closed += backlog.count
            watchWritable(fd, false)
        }
    }

    /// Copies the unsent datagrams of `batch` into `backlog`, dropping (and counting) what exceeds the bound.
    private func keep(_ batch: DatagramBatch, from first: Int, in backlog: Backlog) {
        for index in first..<batch.count {
            let bytes = batch.outgoing(index)
            guard backlog.count < limits.backlogDatagrams, backlog.bytes + bytes.count <= limits.backlogBytes,
                  let destination = batch.address(index) else {
                drops.backlogFull += 1
                continue
            }
            backlog.datagrams.append((destination, Array(bytes)))
            backlog.bytes += bytes.count
        }
    }

    private func drain(_ fd: Int32) {
        guard let backlog = backlogs[fd], let sink = batches[fd]?.sink else { return }
        let batch = drainBatch
        while !backlog.isEmpty {
            batch.removeAll()
            var index = backlog.head
            while index < backlog.datagrams.count, batch.count < batch.capacity {
                let datagram = backlog.datagrams[index]
                datagram.bytes.withUnsafeBytes { _ = batch.append($0, to: datagram.destination) }
                index += 1
            }
            let sent: Int
            do {
                sent = try sink.send(batch)
            } catch {
                drops.socketFailed += batch.count
                sent = batch.count
            }
            for index in backlog.head..<(backlog.head + sent) { backlog.bytes -= backlog.datagrams[index].bytes.count }
            backlog.head += sent
            if sent < batch.count { break }  // full again: wait for the next writable event
        }
        if backlog.isEmpty {
            backlogs[fd] = nil
            watchWritable(fd, false)
        } else if backlog.head > 1024 {
            backlog.datagrams.removeFirst(backlog.head)
            backlog.head = 0
        }
    }
}
