import Foundation

/// A plain UDP socket for tests: bind, send, receive with a deadline. Create it inside
/// `NetworkNamespace.run` to have it live in that namespace.
package final class UDPSocket: @unchecked Sendable {
    // The descriptor is only read after init; the kernel serialises operations on it.
    package let fileDescriptor: Int32
    package let family: Int32

    /// Binds to `address` ("198.18.1.2", "fd00:6768:0:1::2", "0.0.0.0", "::") and `port` (0: any).
    package init(bindTo address: String, port: UInt16 = 0) throws {
        var storage = try SocketAddress(address, port: port)
        family = Int32(storage.family)
        fileDescriptor = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fileDescriptor >= 0 else { throw SocketError.system("socket", errno) }
        let bound = storage.withSockaddr { bind(fileDescriptor, $0, $1) }
        guard bound == 0 else {
            let code = errno
            close(fileDescriptor)
            throw SocketError.system("bind \(address):\(port)", code)
        }
    }

    deinit { close(fileDescriptor) }

    /// The port the kernel gave the socket.
    package var localPort: UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fileDescriptor, $0, &length) }
        }
        return SocketAddress(storage: storage).port
    }

    /// Sends one datagram.
    package func send(_ bytes: [UInt8], to address: String, port: UInt16) throws {
        var destination = try SocketAddress(address, port: port)
        let sent = bytes.withUnsafeBytes { buffer in
            destination.withSockaddr { sendto(fileDescriptor, buffer.baseAddress, buffer.count, 0, $0, $1) }
        }
        guard sent == bytes.count else { throw SocketError.system("sendto \(address):\(port)", errno) }
    }

    /// Receives one datagram, or nil if none arrives within `timeout`.
    package func receive(timeout: Duration = .seconds(2)) throws -> (bytes: [UInt8], from: SocketAddress)? {
        var descriptor = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let ready = poll(&descriptor, 1, milliseconds)
        if ready == 0 { return nil }
        guard ready > 0 else { throw SocketError.system("poll", errno) }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = buffer.withUnsafeMutableBytes { raw in
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(fileDescriptor, raw.baseAddress, raw.count, 0, $0, &length)
                }
            }
        }
        guard count >= 0 else { throw SocketError.system("recvfrom", errno) }
        return (Array(buffer.prefix(count)), SocketAddress(storage: storage))
    }
}

/// An IPv4 or IPv6 socket address.
package struct SocketAddress: Sendable, CustomStringConvertible {
    private var storage: sockaddr_storage

    init(storage: sockaddr_storage) { self.storage = storage }

    package init(_ address: String, port: UInt16) throws {
        storage = sockaddr_storage()
        if address.contains(":") {
            var v6 = sockaddr_in6()
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, address, &v6.sin6_addr) == 1 else { throw SocketError.badAddress(address) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: v6, as: sockaddr_in6.self) }
        } else {
            var v4 = sockaddr_in()
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            guard inet_pton(AF_INET, address, &v4.sin_addr) == 1 else { throw SocketError.badAddress(address) }
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: v4, as: sockaddr_in.self) }
        }
    }

    var family: sa_family_t { storage.ss_family }

    package var isIPv6: Bool { family == sa_family_t(AF_INET6) }

    package var port: UInt16 {
        withUnsafeBytes(of: storage) { raw in
            family == sa_family_t(AF_INET6)
                ? UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port)
                : UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port)
        }
    }

    package var address: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: storage) { raw in
            if family == sa_family_t(AF_INET6) {
                var address = raw.load(as: sockaddr_in6.self).sin6_addr
                _ = inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
            } else {
                var address = raw.load(as: sockaddr_in.self).sin_addr
                _ = inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
            }
        }
        return String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    package var description: String { family == sa_family_t(AF_INET6) ? "[\(address)]:\(port)" : "\(address):\(port)" }

    mutating func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let length = socklen_t(family == sa_family_t(AF_INET6) ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}

package enum SocketError: Error, CustomStringConvertible {
    /// A system call failed with errno.
    case system(String, Int32)
    /// Not an IPv4 or IPv6 address.
    case badAddress(String)

    package var description: String {
        switch self {
        case let .system(call, code): "\(call): \(String(cString: strerror(code)))"
        case let .badAddress(text): "not an IP address: \(text)"
        }
    }
}
