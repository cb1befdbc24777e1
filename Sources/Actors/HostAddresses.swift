package import Addresses
import Glibc

/// The addresses of this host's interfaces, as ICE host candidates want them: up, not loopback, not
/// a point-to-point tunnel (this one's or another VPN's: no way to reach this host from outside), not
/// IPv6 link-local, and not on the interfaces named.
package enum HostAddresses {
    package static func list(excludingInterfaces excluded: Set<String>) -> [SocketAddress.IP] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var result: [SocketAddress.IP] = []
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            let flags = Int32(current.pointee.ifa_flags)
            guard flags & Int32(IFF_UP) != 0, flags & Int32(IFF_LOOPBACK) == 0, flags & Int32(IFF_POINTOPOINT) == 0,
                  let address = current.pointee.ifa_addr, let name = current.pointee.ifa_name,
                  !excluded.contains(String(cString: name)) else { continue }
            let family = Int32(address.pointee.sa_family)
            guard family == AF_INET || family == AF_INET6, let parsed = SocketAddress(UnsafeRawPointer(address)) else { continue }
            if case let .v6(high, _) = parsed.ip, high >> 54 == 0x3FA { continue }  // fe80::/10
            if !result.contains(parsed.ip) { result.append(parsed.ip) }
        }
        return result
    }
}
