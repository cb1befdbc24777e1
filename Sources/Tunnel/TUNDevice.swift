package import Addresses
import CGatehouseSystem
import Glibc
import Synchronization

/// A failure of the tunnel device, with what was being done and the system's reason.
package struct TunnelError: Error, CustomStringConvertible, Equatable {
    package let operation: String
    package let code: Int32

    package var description: String {
        let reason = String(cString: strerror(code))
        let hint = code == EPERM || code == EACCES ? " (needs CAP_NET_ADMIN: run as root or grant the capability)" : ""
        return "\(operation): \(reason)\(hint)"
    }
}

/// Addresses of any interface (the tunnel device's, the DNS stub's on loopback), over rtnetlink.
package enum InterfaceAddress {
    /// Adds `address` (with its prefix length) beside the interface's others, or deletes it. Adding
    /// one that is there, or deleting one that is not, is not an error.
    package static func change(_ address: AddressRange, on interface: String, add: Bool) throws(TunnelError) {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { address.network.storeZeroPadded(into: $0) }
        let family: Int32 = if case .v4 = address.network { 4 } else { 6 }
        if gatehouse_address(interface, add ? 1 : 0, family, bytes, Int32(address.prefixLength)) != 0,
           !(add && errno == EEXIST), !(!add && (errno == EADDRNOTAVAIL || errno == ENODEV || errno == ENOENT)) {
            throw TunnelError(operation: "\(add ? "adding" : "removing") \(address) \(add ? "to" : "from") \(interface)", code: errno)
        }
    }
}

/// One queue of a layer-3 TUN device (`/dev/net/tun`, multi-queue, no packet information): each read
/// or write is one IP packet. The device exists while a queue of it is open; other queues of the same
/// device (another reader, or a test writing packets) open it by name.
package final class TUNDevice: Sendable {
    package let name: String
    package let fileDescriptor: Int32
    /// Whether every read and write starts with a `VirtioNetHeader` and the device moves TCP
    /// super-packets (TSO on reads, GRO on writes) with checksums left to the reader.
    package let offload: Bool
    /// Whether UDP super-packets (USO) go both ways too (Linux 6.2 and later).
    package let udpOffload: Bool
    private let closed = Mutex(false)

    /// Opens a queue of the device `name`, making the device if it does not exist (in the calling
    /// thread's network namespace). `offload` is a setting of the whole device: every queue of one
    /// device must be opened alike.
    package init(name: String, offload: Bool = false) throws(TunnelError) {
        guard !name.isEmpty, name.utf8.count < 16, !name.contains("/"), !name.contains(" ") else {
            throw TunnelError(operation: "TUN device name \"\(name)\" (1-15 characters, no / or space)", code: EINVAL)
        }
        var actual = [CChar](repeating: 0, count: 16)
        var offloads: Int32 = offload ? 1 : 0
        let fd = gatehouse_tun_open(name, &actual, &offloads)
        guard fd >= 0 else { throw TunnelError(operation: "opening TUN device \(name)\(offload ? " with offloads" : "")", code: errno) }
        fileDescriptor = fd
        self.offload = offload
        udpOffload = offload && offloads & 2 != 0
        self.name = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { close() }

    /// Closes this queue (the device goes with its last queue). Calling it again does nothing.
    package func close() {
        guard closed.withLock({ closed -> Bool in defer { closed = true }; return !closed }) else { return }
        Glibc.close(fileDescriptor)
    }

    /// Sets the MTU, brings the device up and adds `addresses` (each with its prefix length).
    package func configure(mtu: Int, addresses: [AddressRange]) throws(TunnelError) {
        guard gatehouse_interface_up(name, Int32(mtu)) == 0 else { throw TunnelError(operation: "bringing \(name) up with MTU \(mtu)", code: errno) }
        for address in addresses {
            try InterfaceAddress.change(address, on: name, add: true)
        }
    }

    /// Routes `range` into the device (add) or stops doing so; an existing (or, when deleting, a
    /// missing) route is not an error.
    package func route(_ range: AddressRange, add: Bool) throws(TunnelError) {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { range.network.storeZeroPadded(into: $0) }
        let family: Int32 = if case .v4 = range.network { 4 } else { 6 }
        let result = gatehouse_route(name, add ? 1 : 0, family, bytes, Int32(range.prefixLength))
        if result != 0 && !(add && errno == EEXIST) && !(!add && (errno == ESRCH || errno == ENOENT || errno == ENODEV)) {
            throw TunnelError(operation: "\(add ? "adding" : "removing") the route to \(range) through \(name)", code: errno)
        }
    }

    /// Writes one IP packet: it enters the stack as if it had arrived on the device. False when the
    /// queue is full (non-blocking). (With offloads, a plain header goes in front.)
    @discardableResult
    package func write(_ packet: [UInt8]) throws(TunnelError) -> Bool {
        let framed = offload ? [UInt8](repeating: 0, count: VirtioNetHeader.size) + packet : packet
        return try framed.withUnsafeBytes { bytes in Result { () throws(TunnelError) in try write(bytes) } }.get()
    }

    /// Writes what the caller framed, from memory it owns (no copy): with offloads, a
    /// `VirtioNetHeader` then the packet.
    @discardableResult
    package func write(_ packet: UnsafeRawBufferPointer) throws(TunnelError) -> Bool {
        let written = Glibc.write(fileDescriptor, packet.baseAddress, packet.count)
        if written < 0 {
            if errno == EAGAIN { return false }
            throw TunnelError(operation: "writing to \(name)", code: errno)
        }
        return true
    }

    /// Reads one IP packet the stack routed into the device, or nil when none is waiting. (With
    /// offloads, the header is left out: a test's reader sees what was written.)
    package func read(capacity: Int = 65_545) throws(TunnelError) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: capacity)
        guard let count = try buffer.withUnsafeMutableBytes({ bytes in Result { () throws(TunnelError) in try read(into: bytes) } }).get() else {
            return nil
        }
        return Array(buffer.prefix(count).dropFirst(offload ? VirtioNetHeader.size : 0))
    }

    /// Reads what the device gives into `buffer` (with offloads, a `VirtioNetHeader` then a packet or
    /// a TCP super-packet): its length, or nil when none is waiting.
    package func read(into buffer: UnsafeMutableRawBufferPointer) throws(TunnelError) -> Int? {
        let count = Glibc.read(fileDescriptor, buffer.baseAddress, buffer.count)
        if count < 0 {
            if errno == EAGAIN { return nil }
            throw TunnelError(operation: "reading from \(name)", code: errno)
        }
        return count
    }
}
