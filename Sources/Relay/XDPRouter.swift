import Actors
import BPF
import BPFMaps
import Foundation
import Logging
import TURN

/// A change the engine made to its channel routes, in the order it made them.
enum RouteChange: Sendable {
    case install(ChannelRoute)
    case remove(ChannelRoute)
}

/// Owns the relay's XDP program and its maps: writes the whole config, keeps the kernel's channel
/// routes in step with the engine's, reads the kernel's statistics into the metrics, and detaches the
/// program on shutdown.
///
/// The engine hands over route changes in order through a stream (control traffic only: binds,
/// refreshes, expiries; never per packet). Every install writes both maps even when the kernel should
/// already hold the route, because a refresh after expiry re-adds what expiry removed; the config is
/// written in full, defaults included, because the kernel's slot starts zeroed.
actor XDPRouter {
    private let program: RelayXDPProgram
    private let attachment: XDPAttachment
    private let metrics: RelayMetrics
    private let logger: Logger
    private var reported: [RelayXDPReason: RelayXDPCount] = [:]

    private init(
        program: RelayXDPProgram, attachment: XDPAttachment, metrics: RelayMetrics, logger: Logger
    ) {
        self.program = program
        self.attachment = attachment
        self.metrics = metrics
        self.logger = logger
    }

    /// Loads the program, writes the config and attaches to `interface`. Any failure (no privileges,
    /// no such interface, a driver without XDP, a program already attached) gives one warning and nil:
    /// the relay then runs everything in user space.
    static func start(
        interface: String, mode: XDPMode, relay: RelayConfiguration, listenPort: UInt16,
        metrics: RelayMetrics, logger: Logger
    ) -> XDPRouter? {
        func fallBack(_ reason: String) -> XDPRouter? {
            // One line, however many lines libbpf logged.
            let oneLine = reason.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .joined(separator: "; ")
            logger.warning(
                "XDP fast path not available; relaying in user space",
                metadata: ["interface": "\(interface)", "mode": "\(mode.rawValue)", "reason": "\(oneLine)"])
            return nil
        }
        guard listenPort != 0 else {
            return fallBack("the IPv4 and IPv6 listeners got different ports; give a fixed --listen-port")
        }
        let addresses: InterfaceAddresses
        do {
            addresses = try InterfaceAddresses(interface: interface)
        } catch {
            return fallBack("\(error)")
        }
        let configuration = XDPConfiguration(
            listenPort: listenPort, portRange: relay.portRange,
            publicIPv4: relay.publicIPv4, publicIPv6: relay.publicIPv6,
            interfaceIPv4: addresses.ipv4(preferring: relay.bindIPv4 ?? relay.publicIPv4),
            interfaceIPv6: addresses.ipv6(preferring: relay.bindIPv6 ?? relay.publicIPv6),
            mtu: addresses.mtu)
        if configuration.kernelValue.families == 0 {
            return fallBack("\(interface) has no address of a family the relay serves")
        }
        do {
            let program = try RelayXDPProgram()
            try program.apply(configuration.kernelValue)
            let attachment = try program.attach(to: interface, mode: mode)
            logger.info(
                "XDP fast path attached",
                metadata: [
                    "interface": "\(interface)", "mode": "\(mode.rawValue)", "listen_port": "\(listenPort)",
                    "port_range": "\(relay.portRange.lowerBound)-\(relay.portRange.upperBound)",
                    "source_ipv4": "\(configuration.interfaceIPv4.map { SocketAddress(ip: $0, port: 0).address } ?? "-")",
                    "source_ipv6": "\(configuration.interfaceIPv6.map { SocketAddress(ip: $0, port: 0).address } ?? "-")",
                    "mtu": "\(configuration.mtu)",
                ])
            return XDPRouter(
                program: program, attachment: attachment, metrics: metrics, logger: logger)
        } catch {
            return fallBack("\(error)")
        }
    }

    /// Follows the engine's route changes until the stream ends.
    func follow(_ changes: AsyncStream<RouteChange>) async {
        for await change in changes {
            switch change {
            case let .install(route): install(KernelRoute(route))
            case let .remove(route): remove(KernelRoute(route))
            }
        }
    }

    func install(_ route: KernelRoute) {
        do {
            try program.toPeer.update(route.peerKey, forKey: route.channelKey)
            try program.toClient.update(route.channelKey, forKey: route.peerKey)
        } catch {
            // The route stays in user space, which relays it: slower, not lost.
            failed("installing a kernel route", route: route, error: error)
        }
    }

    func remove(_ route: KernelRoute) {
        do {
            try program.toPeer.delete(route.channelKey)
            try program.toClient.delete(route.peerKey)
        } catch {
            failed("removing a kernel route", route: route, error: error)
        }
    }

    private func failed(_ action: String, route: KernelRoute, error: BPFError) {
        metrics.xdpMapErrors.increment()
        logger.error("\(action) failed", metadata: ["route": "\(route)", "error": "\(error)"])
    }

    /// The kernel's client → peer routes, read back from the map, with any entry whose reverse entry
    /// is missing or different reported as inconsistent.
    func kernelRoutes() throws(BPFError) -> (routes: [KernelRoute], inconsistent: [String]) {
        var routes: [KernelRoute] = []
        var inconsistent: [String] = []
        for (key, value) in try program.toPeer.entries() {
            guard let route = KernelRoute(channel: key, peer: value) else {
                inconsistent.append("undecodable relay_to_peer entry")
                continue
            }
            routes.append(route)
            let reverse = try program.toClient.lookup(value)
            if reverse.map({ KernelRoute(channel: $0, peer: value) }) != route {
                inconsistent.append("relay_to_client lacks the reverse of \(route)")
            }
        }
        let reverseCount = try program.toClient.keys().count
        if reverseCount != routes.count {
            inconsistent.append("relay_to_client holds \(reverseCount) entries, relay_to_peer \(routes.count)")
        }
        return (routes, inconsistent)
    }

    /// The config slot as the kernel holds it, decoded (read back, not remembered).
    nonisolated func kernelConfiguration() throws(BPFError) -> [String: Any] {
        guard let value = try program.kernelConfig() else { return [:] }
        var result: [String: Any] = [
            "configured": Int(value.configured), "checksum_mode": Int(value.checksum_mode), "families": Int(value.families),
            "listen_port": Int(UInt16(bigEndian: value.listen_port)),
            "port_min": Int(UInt16(bigEndian: value.port_min)), "port_max": Int(UInt16(bigEndian: value.port_max)),
            "mtu": Int(UInt16(bigEndian: value.mtu)),
        ]
        if value.iface_ipv4 != 0 {
            result["interface_ipv4"] = SocketAddress(ip: .v4(UInt32(bigEndian: value.iface_ipv4)), port: 0).address
        }
        if let ipv6 = KernelAddress.load(value.iface_ipv6, family: UInt8(RELAY_FAMILY_IPV6)), ipv6 != .v6(0, 0) {
            result["interface_ipv6"] = SocketAddress(ip: ipv6, port: 0).address
        }
        return result
    }

    /// Adds what the kernel counted since the last call to the metrics.
    func collectStatistics() {
        do {
            let current = try program.statistics()
            for (reason, count) in current {
                let before = reported[reason] ?? RelayXDPCount(packets: 0, bytes: 0)
                guard count.packets > before.packets || count.bytes > before.bytes else { continue }
                metrics.xdp(reason).packets.increment(by: Int64(count.packets - before.packets))
                metrics.xdp(reason).bytes.increment(by: Int64(count.bytes - before.bytes))
                if reason.isRelayed {
                    metrics.kernelPackets.increment(by: Int64(count.packets - before.packets))
                }
            }
            reported = current
        } catch {
            logger.error("reading XDP statistics failed", metadata: ["error": "\(error)"])
        }
    }

    /// Detaches the program; the kernel frees the maps once nothing holds them.
    func detach() {
        do {
            try attachment.detach()
            logger.info("XDP fast path detached", metadata: ["interface": "\(attachment.interface)"])
        } catch {
            logger.error("detaching XDP failed", metadata: ["interface": "\(attachment.interface)", "error": "\(error)"])
        }
    }

    var interface: String { attachment.interface }
}

/// The addresses and MTU of one network interface, as the kernel reports them.
struct InterfaceAddresses {
    var ipv4: [SocketAddress.IP] = []
    /// Global-scope IPv6 addresses (link-local ones cannot be a relay's source).
    var ipv6: [SocketAddress.IP] = []
    var mtu: UInt16 = 1500

    enum Failure: Error, CustomStringConvertible {
        case noSuchInterface(String)
        case system(String, Int32)

        var description: String {
            switch self {
            case let .noSuchInterface(name): "network interface \"\(name)\" not found"
            case let .system(call, code): "\(call): \(String(cString: strerror(code)))"
            }
        }
    }

    init(interface: String) throws(Failure) {
        guard if_nametoindex(interface) != 0 else { throw .noSuchInterface(interface) }
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { throw .system("getifaddrs", errno) }
        defer { freeifaddrs(list) }
        var current = list
        while let entry = current {
            defer { current = entry.pointee.ifa_next }
            guard String(cString: entry.pointee.ifa_name) == interface, let address = entry.pointee.ifa_addr,
                  let socketAddress = SocketAddress(address) else { continue }
            switch socketAddress.ip {
            case .v4: ipv4.append(socketAddress.ip)
            case let .v6(high, _):
                if high >> 54 != 0x3FA { ipv6.append(socketAddress.ip) }  // not fe80::/10
            }
        }
        if let text = try? String(contentsOfFile: "/sys/class/net/\(interface)/mtu", encoding: .utf8),
           let value = UInt16(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            mtu = value
        }
    }

    /// Every address of every interface of this host (the relay refuses them as peers: a client must
    /// not reach services on the relay's own host through it). Empty when the host will not say.
    static func host() -> [SocketAddress.IP] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        var addresses: [SocketAddress.IP] = []
        var current = list
        while let entry = current {
            defer { current = entry.pointee.ifa_next }
            if let address = entry.pointee.ifa_addr, let socketAddress = SocketAddress(address) { addresses.append(socketAddress.ip) }
        }
        return addresses
    }

    /// `preferred` when the interface has it, else its first IPv4 address.
    func ipv4(preferring preferred: SocketAddress.IP?) -> SocketAddress.IP? {
        if let preferred, ipv4.contains(preferred) { return preferred }
        return ipv4.first
    }

    func ipv6(preferring preferred: SocketAddress.IP?) -> SocketAddress.IP? {
        if let preferred, ipv6.contains(preferred) { return preferred }
        return ipv6.first
    }
}
