package import Glibc

/// An IP address and UDP port (a "transport address" in STUN/TURN terms), as a value: hashable and cheap to compare (a key of the relay's
/// tables), convertible to and from `sockaddr` at the system-call boundary.
package struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// The address bytes, in network order, packed into integers.
    package enum IP: Hashable, Sendable {
        /// The 4 bytes as a big-endian number: 192.0.2.1 is 0xC000_0201.
        case v4(UInt32)
        /// The 16 bytes as two big-endian halves.
        case v6(UInt64, UInt64)
    }

    package var ip: IP
    package var port: UInt16

    package init(ip: IP, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Parses "192.0.2.1" or "2001:db8::1" (no brackets, no port).
    package init(_ text: String, port: UInt16) throws(SocketError) {
        if text.contains(":") {
            var address = in6_addr()
            guard inet_pton(AF_INET6, text, &address) == 1 else { throw .badAddress(text) }
            self.init(ip: Self.ip(from: address), port: port)
        } else {
            var address = in_addr()
            guard inet_pton(AF_INET, text, &address) == 1 else { throw .badAddress(text) }
            self.init(ip: .v4(UInt32(bigEndian: address.s_addr)), port: port)
        }
    }

    /// Parses an endpoint, "192.0.2.1:51820" or "[2001:db8::1]:51820" (IPv6 in brackets, port 1-65535).
    package init?(endpoint text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard host.contains(":") else { return nil }
        } else if host.contains(":") {
            return nil
        }
        guard let address = try? SocketAddress(host, port: port) else { return nil }
        self = address
    }

    package var isIPv6: Bool {
        switch ip {
        case .v4: false
        case .v6: true
        }
    }

    /// The largest UDP payload a datagram to this address can carry: what an IP datagram's 16-bit
    /// length leaves after the headers (RFC 768 and 791: 65,535 − 20 − 8; RFC 8200: a payload length of
    /// 65,535, less 8 for UDP; jumbograms are not used).
    package var maximumUDPPayload: Int { isIPv6 ? 65_527 : 65_507 }

    /// The address in its usual text form, without the port.
    package var address: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch ip {
        case let .v4(value):
            var address = in_addr(s_addr: value.bigEndian)
            _ = inet_ntop(AF_INET, &address, &text, socklen_t(text.count))
        case .v6:
            var address = in6Address
            _ = inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
        }
        return String(decoding: text.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    package var description: String { isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }

    // MARK: sockaddr conversions

    /// Reads a `sockaddr_in` or `sockaddr_in6`; nil for other families.
    package init?(_ storage: UnsafeRawPointer) {
        switch Int32(storage.load(as: sa_family_t.self)) {
        case AF_INET:
            let v4 = storage.loadUnaligned(as: sockaddr_in.self)
            self.init(ip: .v4(UInt32(bigEndian: v4.sin_addr.s_addr)), port: UInt16(bigEndian: v4.sin_port))
        case AF_INET6:
            let v6 = storage.loadUnaligned(as: sockaddr_in6.self)
            self.init(ip: Self.ip(from: v6.sin6_addr), port: UInt16(bigEndian: v6.sin6_port))
        default:
            return nil
        }
    }

    /// Writes the address as a `sockaddr` into `storage` (at least `sockaddr_in6` in size) and returns
    /// its length.
    package func write(to storage: UnsafeMutableRawPointer) -> socklen_t {
        switch ip {
        case let .v4(value):
            var v4 = sockaddr_in()
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            v4.sin_addr = in_addr(s_addr: value.bigEndian)
            storage.storeBytes(of: v4, as: sockaddr_in.self)
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        case .v6:
            var v6 = sockaddr_in6()
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            v6.sin6_addr = in6Address
            storage.storeBytes(of: v6, as: sockaddr_in6.self)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
    }

    /// Calls `body` with this address as a `sockaddr`.
    package func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) rethrows -> T {
        var storage = sockaddr_in6()
        return try withUnsafeMutableBytes(of: &storage) { raw in
            let length = write(to: raw.baseAddress!)
            return try body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    private var in6Address: in6_addr {
        guard case let .v6(high, low) = ip else { return in6_addr() }
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { raw in
            raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        return address
    }

    private static func ip(from address: in6_addr) -> IP {
        withUnsafeBytes(of: address) { raw in
            .v6(
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }
}

/// A socket operation failed.
package enum SocketError: Error, Equatable, CustomStringConvertible {
    /// A system call failed with errno.
    case system(String, Int32)
    /// Not an IPv4 or IPv6 address.
    case badAddress(String)

    package var description: String {
        switch self {
        case let .system(call, code): "\(call): \(String(cString: strerror(code)))"
        case let .badAddress(text): "not an IP address: \"\(text)\""
        }
    }
}

extension SocketAddress.IP {
    /// Writes the address in the 16-byte form the kernel's maps use (`gatehouse_maps.h`): IPv6 as is,
    /// IPv4 in the first four bytes (network order) and zeros after. `raw` holds at least 16 bytes.
    package func storeZeroPadded(into raw: UnsafeMutableRawBufferPointer) {
        precondition(raw.count >= 16)
        for index in 0..<16 { raw[index] = 0 }
        switch self {
        case let .v4(address):
            raw.storeBytes(of: address.bigEndian, toByteOffset: 0, as: UInt32.self)
        case let .v6(high, low):
            raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
    }

    /// Reads the 16-byte form back; nil for IPv4 with non-zero bytes after the address (not ours).
    package init?(zeroPadded raw: UnsafeRawBufferPointer, isV4: Bool) {
        guard raw.count >= 16 else { return nil }
        if isV4 {
            guard raw[4..<16].allSatisfy({ $0 == 0 }) else { return nil }
            self = .v4(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        } else {
            self = .v6(UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                       UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }
}
