import CGatehouseSystem
import Glibc
import Synchronization

/// A UDP socket with batched I/O: `receive(into:)` and `send(_:)` move many datagrams per system call
/// (recvmmsg/sendmmsg), which is what keeps a relay's per-packet cost low.
///
/// The socket is non-blocking; `waitUntilReadable` parks the calling thread in poll(2). The descriptor
/// never changes after init and the kernel serialises operations on it, so one socket may be used from
/// several threads (one reading, others sending).
package final class UDPSocket: @unchecked Sendable {
    package let fileDescriptor: Int32
    package let localAddress: SocketAddress
    /// Cleared after the kernel refuses UDP GSO once (old kernels, some interfaces): sendmmsg from then on.
    private let segmentationWorks = Atomic<Bool>(true)

    /// Whether uniform batches still go out with UDP GSO (false once the kernel refused it).
    package var usesSegmentation: Bool { segmentationWorks.load(ordering: .relaxed) }

    /// The socket buffers of a WireGuard endpoint (client and gateway), each way: 7 MiB, as wireguard-go
    /// asks for. The default (net.core.rmem_default, 208 KiB) holds about three 64 KB batches, so a
    /// burst of them from the network is dropped before the reader wakes, and TCP inside the tunnel
    /// takes every drop as congestion.
    package static let tunnelBufferBytes: Int32 = 7 << 20

    /// Binds to `address` (port 0: the kernel picks). IPv6 sockets are IPv6-only, so that an IPv4 and
    /// an IPv6 socket can share a port number. `receiveBufferBytes` and `sendBufferBytes` size the
    /// socket's buffers: beyond net.core.{r,w}mem_max where the process may (CAP_NET_ADMIN), else up to
    /// that limit (the kernel clamps it quietly).
    package init(bindTo address: SocketAddress, receiveBufferBytes: Int32? = nil, sendBufferBytes: Int32? = nil) throws(SocketError) {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno) }
        var one: Int32 = 1
        if address.isIPv6 {
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        if let bytes = receiveBufferBytes { Self.sizeBuffer(fd, forced: SO_RCVBUFFORCE, clamped: SO_RCVBUF, bytes: bytes) }
        if let bytes = sendBufferBytes { Self.sizeBuffer(fd, forced: SO_SNDBUFFORCE, clamped: SO_SNDBUF, bytes: bytes) }
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw .system("bind \(address)", code)
        }
        var storage = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let named = withUnsafeMutableBytes(of: &storage) { raw in
            getsockname(fd, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
        }
        guard named == 0, let local = withUnsafeBytes(of: storage, { SocketAddress($0.baseAddress!) }) else {
            let code = errno
            close(fd)
            throw .system("getsockname", code)
        }
        fileDescriptor = fd
        localAddress = local
    }

    /// A WireGuard endpoint's socket (client and gateway): bound to `address`, with `tunnelBufferBytes`
    /// of buffer each way.
    package static func tunnelEndpoint(bindTo address: SocketAddress) throws(SocketError) -> UDPSocket {
        try UDPSocket(bindTo: address, receiveBufferBytes: tunnelBufferBytes, sendBufferBytes: tunnelBufferBytes)
    }

    /// A warning for the log when the kernel granted less receive buffer than `tunnelBufferBytes` (the
    /// process may not exceed net.core.rmem_max, and that limit is lower), else nil.
    package var smallBufferWarning: String? {
        let granted = bufferBytes.receive / 2  // the kernel reports twice what it grants for data
        guard granted < Int(Self.tunnelBufferBytes) else { return nil }
        return "the UDP receive buffer is \(granted / 1024) KiB, not \(Self.tunnelBufferBytes >> 10) KiB: without CAP_NET_ADMIN "
            + "it is capped by net.core.rmem_max; raise that (sysctl) or bursts on a fast link are dropped"
    }

    private static func sizeBuffer(_ fd: Int32, forced: Int32, clamped: Int32, bytes: Int32) {
        var value = bytes
        let size = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(fd, SOL_SOCKET, forced, &value, size) != 0 {
            setsockopt(fd, SOL_SOCKET, clamped, &value, size)
        }
    }

    /// The receive and send buffer sizes the kernel granted (it doubles the size asked for, for its
    /// bookkeeping, and reports that).
    package var bufferBytes: (receive: Int, send: Int) {
        func read(_ option: Int32) -> Int {
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            return getsockopt(fileDescriptor, SOL_SOCKET, option, &value, &length) == 0 ? Int(value) : 0
        }
        return (read(SO_RCVBUF), read(SO_SNDBUF))
    }

    /// Binds to an address given as text ("198.18.1.2", "::", ...).
    package convenience init(bindTo address: String, port: UInt16 = 0) throws(SocketError) {
        try self.init(bindTo: SocketAddress(address, port: port))
    }

    deinit { close(fileDescriptor) }

    package var localPort: UInt16 { localAddress.port }

    // MARK: One datagram at a time (control traffic, tests)

    /// Sends one datagram; false if the send buffer is full (EAGAIN), which the caller may count as a
    /// drop or retry.
    @discardableResult
    package func send(_ bytes: [UInt8], to destination: SocketAddress) throws(SocketError) -> Bool {
        let sent = bytes.withUnsafeBytes { buffer in
            destination.withSockaddr { sendto(fileDescriptor, buffer.baseAddress, buffer.count, 0, $0, $1) }
        }
        if sent < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return false }
            throw .system("sendto \(destination)", errno)
        }
        return true
    }

    package func send(_ bytes: [UInt8], to address: String, port: UInt16) throws(SocketError) {
        try send(bytes, to: SocketAddress(address, port: port))
    }

    /// Waits up to `timeout` for one datagram; nil if none came.
    package func receive(timeout: Duration = .seconds(2)) throws(SocketError) -> (bytes: [UInt8], from: SocketAddress)? {
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            var storage = sockaddr_in6()
            var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            let count = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutableBytes(of: &storage) { address in
                    recvfrom(fileDescriptor, raw.baseAddress, raw.count, 0,
                             address.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
                }
            }
            if count >= 0 {
                guard let source = withUnsafeBytes(of: storage, { SocketAddress($0.baseAddress!) }) else { continue }
                return (Array(buffer.prefix(count)), source)
            }
            guard errno == EAGAIN || errno == EWOULDBLOCK else { throw .system("recvfrom", errno) }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return nil }
            try waitUntilReadable(timeout: remaining)
        }
    }

    /// Parks the thread until a datagram is waiting or `timeout` passes; true if one is waiting.
    @discardableResult
    package func waitUntilReadable(timeout: Duration) throws(SocketError) -> Bool {
        var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let (seconds, attoseconds) = timeout.components
        let milliseconds = max(0, min(Int64(Int32.max), seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        let ready = poll(&descriptor, 1, Int32(milliseconds))
        if ready < 0 && errno != EINTR { throw .system("poll", errno) }
        return ready > 0
    }

    // MARK: Batches

    /// Asks the kernel to coalesce received datagrams of one flow (UDP GRO): one entry of a receive batch
    /// may then hold several datagrams of `DatagramBatch.segmentSize(_:)` bytes each, so a burst costs
    /// one pass through the socket layer instead of one per datagram. False where the kernel has none.
    @discardableResult
    package func enableReceiveCoalescing() -> Bool {
        gatehouse_enable_gro(fileDescriptor) == 0
    }

    /// Receives as many datagrams as are waiting, up to the batch's capacity, without blocking.
    /// Returns how many arrived (0 when none was waiting).
    package func receive(into batch: DatagramBatch) throws(SocketError) -> Int {
        batch.prepareForReceive()
        let received = gatehouse_recvmmsg(fileDescriptor, batch.headers, UInt32(batch.capacity), Int32(MSG_DONTWAIT))
        if received < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { batch.count = 0; return 0 }
            throw .system("recvmmsg", errno)
        }
        batch.count = Int(received)
        return Int(received)
    }

    /// Sends the first `batch.count` datagrams of the batch. Returns how many the kernel took; the rest
    /// met a full send buffer (the caller queues or drops them).
    package func send(_ batch: DatagramBatch) throws(SocketError) -> Int {
        // A batch of equal-sized datagrams to one destination (a relayed socket's traffic to its peer)
        // goes out as one GSO super-datagram: one trip through the socket layer and routing.
        if batch.count >= 2, segmentationWorks.load(ordering: .relaxed), let segment = batch.uniformSegmentSize() {
            let sent = gatehouse_send_segmented(
                fileDescriptor, batch.vectors, Int32(batch.count), batch.headers[0].msg_hdr.msg_name,
                batch.headers[0].msg_hdr.msg_namelen, UInt16(segment))
            if sent >= 0 { return batch.count }
            switch errno {
            case EAGAIN, EWOULDBLOCK: return 0
            case EIO, EINVAL, ENOPROTOOPT, EOPNOTSUPP: segmentationWorks.store(false, ordering: .relaxed)
            default: break  // try the plain way below; it reports per-datagram errors
            }
        }
        var offset = 0
        while offset < batch.count {
            let sent = gatehouse_sendmmsg(fileDescriptor, batch.headers + offset, UInt32(batch.count - offset), 0)
            if sent < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return offset }
                if errno == EINTR { continue }
                // One bad destination must not stop the rest of the batch: skip it.
                if errno == ENETUNREACH || errno == EHOSTUNREACH || errno == EINVAL || errno == EAFNOSUPPORT
                    || errno == EPERM || errno == EACCES || errno == EMSGSIZE {
                    offset += 1
                    continue
                }
                throw .system("sendmmsg", errno)
            }
            offset += Int(sent)
        }
        return offset
    }
}

/// Pre-allocated room for many datagrams, their addresses and the system-call headers that point at
/// them: filled by `UDPSocket.receive(into:)`, or by the caller before `UDPSocket.send(_:)`. Owned by one
/// thread at a time.
package final class DatagramBatch {
    package let capacity: Int
    package let datagramCapacity: Int
    /// How many datagrams the batch holds now.
    package var count = 0

    let headers: UnsafeMutablePointer<gatehouse_mmsghdr>
    let vectors: UnsafeMutablePointer<iovec>
    private let addresses: UnsafeMutablePointer<sockaddr_in6>
    private let buffers: UnsafeMutableRawPointer
    /// Room for each message's control data on receive (the UDP GRO segment size).
    private let controls: UnsafeMutableRawPointer
    private let controlSize = gatehouse_gro_control_size()

    package init(capacity: Int = 64, datagramCapacity: Int = 2048) {
        precondition(capacity > 0 && datagramCapacity > 0)
        self.capacity = capacity
        self.datagramCapacity = datagramCapacity
        headers = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        addresses = .allocate(capacity: capacity)
        buffers = .allocate(byteCount: capacity * datagramCapacity, alignment: 16)
        controls = .allocate(byteCount: capacity * controlSize, alignment: 16)
        for index in 0..<capacity {
            vectors[index] = iovec(iov_base: buffers + index * datagramCapacity, iov_len: datagramCapacity)
            addresses[index] = sockaddr_in6()
            headers[index] = gatehouse_mmsghdr()
            headers[index].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + index)
            headers[index].msg_hdr.msg_iov = vectors + index
            headers[index].msg_hdr.msg_iovlen = 1
        }
    }

    deinit {
        headers.deallocate()
        vectors.deallocate()
        addresses.deallocate()
        buffers.deallocate()
        controls.deallocate()
    }

    func prepareForReceive() {
        for index in 0..<capacity {
            vectors[index].iov_len = datagramCapacity
            headers[index].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
            headers[index].msg_hdr.msg_control = controls + index * controlSize
            headers[index].msg_hdr.msg_controllen = controlSize
            headers[index].msg_len = 0
        }
        count = 0
    }

    /// The bytes of datagram `index` (valid until the batch is refilled).
    package func payload(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffers + index * datagramCapacity, count: Int(headers[index].msg_len))
    }

    /// After a receive on a socket with `enableReceiveCoalescing()`: the size of each datagram that entry
    /// `index` holds (the last may be shorter), or nil when it holds one datagram.
    package func segmentSize(_ index: Int) -> Int? {
        let size = Int(gatehouse_gro_segment_size(&headers[index].msg_hdr))
        return size > 0 && size < Int(headers[index].msg_len) ? size : nil
    }

    /// Calls `body` with each datagram that entry `index` holds: one, or several when the kernel
    /// coalesced them (UDP GRO).
    package func forEachDatagram(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        let whole = payload(index)
        guard let segment = segmentSize(index) else { return try body(whole) }
        var offset = 0
        while offset < whole.count {
            try body(UnsafeRawBufferPointer(rebasing: whole[offset..<min(offset + segment, whole.count)]))
            offset += segment
        }
    }

    /// The bytes of datagram `index` appended for sending.
    package func outgoing(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffers + index * datagramCapacity, count: vectors[index].iov_len)
    }

    /// The source (after a receive) or destination (before a send) of datagram `index`.
    package func address(_ index: Int) -> SocketAddress? {
        SocketAddress(UnsafeRawPointer(addresses + index))
    }

    /// When every datagram goes to the same destination, all have one size except a shorter last one,
    /// and the whole fits in one IP datagram, that size: the batch can be sent with UDP GSO.
    func uniformSegmentSize() -> Int? {
        let size = vectors[0].iov_len
        let nameLength = headers[0].msg_hdr.msg_namelen
        guard size > 0, size * count <= 65_000, count <= 64 else { return nil }
        for index in 1..<count {
            let length = vectors[index].iov_len
            guard length == size || (index == count - 1 && length > 0 && length <= size) else { return nil }
            guard headers[index].msg_hdr.msg_namelen == nameLength,
                  memcmp(addresses + index, addresses, Int(nameLength)) == 0 else { return nil }
        }
        return size
    }

    /// Empties the batch for filling with datagrams to send.
    package func removeAll() { count = 0 }

    /// Appends a datagram to send: `write` fills up to `datagramCapacity` bytes and returns how many.
    /// Returns false when the batch is full.
    @discardableResult
    package func append(to destination: SocketAddress, _ write: (UnsafeMutableRawBufferPointer) -> Int) -> Bool {
        guard count < capacity else { return false }
        let index = count
        let buffer = UnsafeMutableRawBufferPointer(start: buffers + index * datagramCapacity, count: datagramCapacity)
        let length = write(buffer)
        precondition(length >= 0 && length <= datagramCapacity)
        vectors[index].iov_len = length
        headers[index].msg_hdr.msg_namelen = destination.write(to: UnsafeMutableRawPointer(addresses + index))
        headers[index].msg_hdr.msg_control = nil
        headers[index].msg_hdr.msg_controllen = 0
        headers[index].msg_len = 0
        count += 1
        return true
    }

    /// Appends a copy of `bytes` to send to `destination`.
    @discardableResult
    package func append(_ bytes: UnsafeRawBufferPointer, to destination: SocketAddress) -> Bool {
        guard bytes.count <= datagramCapacity else { return false }
        return append(to: destination) { buffer in
            buffer.copyMemory(from: bytes)
            return bytes.count
        }
    }
}
