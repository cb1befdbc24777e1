package import Actors
package import Addresses
package import Foundation
import Glibc
import Synchronization
package import Logging
package import Tunnel
import WireGuard

/// The client's host side: the tunnel device with its addresses and routes, the UDP sockets, the data
/// plane's thread and the control actor; `shutdown()` takes it all away again (the routes go with the
/// device).
package final class ClientService: Sendable {
    package let tunnel: ClientTunnel
    package let control: ClientControl
    package let dns: ClientDNS?
    private let resolver: ResolverFile?
    private let device: TUNDevice
    private let events: AsyncStream<ClientTunnel.Event>.Continuation
    private let reconnect = Handler()

    /// What to do about the portal connection after a network change (make it again).
    package func onNetworkChange(_ handler: @escaping @Sendable () async -> Void) {
        reconnect.value.withLock { $0 = handler }
    }

    final class Handler: Sendable {
        let value = Mutex<(@Sendable () async -> Void)?>(nil)
    }
    private let logger: Logger

    /// Opens the tunnel device `tunName` (MTU `mtu`), binds the sockets and starts the data plane.
    /// `portalHost`: the portal's host, whose addresses are never routed into the tunnel.
    /// `resolverFile`: the resolver file to take over for DNS resources (nil: DNS left alone). Needs
    /// CAP_NET_ADMIN; says which step failed and why.
    package init(identity: ClientControl.Identity, tunName: String, mtu: Int, portalHost: String, resolverFile: String?,
                 stateDirectory: String, keepaliveInterval: TimeInterval = 25, logger: Logger) throws {
        self.logger = logger
        guard let keyBytes = Data(base64Encoded: identity.device.privateKey.reveal()), keyBytes.count == 32 else {
            throw ClientStartError("the client's WireGuard private key is not 32 bytes of base64")
        }
        do {
            // With offloads (TCP super-packets both ways) where the kernel has them, else plain.
            let offloading = try? TUNDevice(name: tunName, offload: true)
            if offloading == nil { logger.warning("the TUN device has no offloads here: one packet per read and write") }
            device = try offloading ?? TUNDevice(name: tunName)
            try device.configure(mtu: mtu, addresses: [])
        } catch {
            throw ClientStartError("\(error)")
        }
        var sockets: [UDPSocket] = []
        do {
            sockets.append(try UDPSocket.tunnelEndpoint(bindTo: SocketAddress("0.0.0.0", port: 0)))
        } catch {
            device.close()
            throw ClientStartError("binding a UDP socket: \(error)")
        }
        if let warning = sockets.first?.smallBufferWarning { logger.warning("\(warning)") }
        do {
            sockets.append(try UDPSocket.tunnelEndpoint(bindTo: SocketAddress("::", port: 0)))
        } catch {
            logger.warning("no IPv6 socket: gateways are reached over IPv4 only", metadata: ["error": "\(error)"])
        }
        let (stream, continuation) = AsyncStream<ClientTunnel.Event>.makeStream()
        events = continuation
        do {
            tunnel = try ClientTunnel(tun: device, sockets: sockets, local: StaticKey(privateKey: [UInt8](keyBytes)),
                                      keepaliveInterval: keepaliveInterval) { event in
                continuation.yield(event)
            }
        } catch {
            device.close()
            throw ClientStartError("starting the data plane: \(error)")
        }
        if let resolverFile {
            // The stub's addresses live on loopback: local to this host, and never the source the
            // kernel picks for what goes into the tunnel.
            var stubs: [UDPSocket] = []
            for text in ClientDNS.stubAddresses {
                do {
                    let ip = try SocketAddress(text, port: 0).ip
                    try InterfaceAddress.change(AddressRange(network: ip, prefixLength: ip.bitWidth), on: "lo", add: true)
                    stubs.append(try UDPSocket(bindTo: SocketAddress(text, port: 53)))
                } catch {
                    logger.warning("the DNS stub does not listen on \(text)", metadata: ["error": "\(error)"])
                }
            }
            var taken: ResolverFile?
            do {
                guard !stubs.isEmpty else { throw ClientStartError("the DNS stub could not listen on \(ClientDNS.stubAddresses.joined(separator: " or "))") }
                let file = try ResolverFile(path: resolverFile, stateDirectory: stateDirectory, logger: logger)
                taken = file
                if file.upstreams.isEmpty { logger.warning("\(resolverFile) names no nameserver: only DNS resources' names will resolve") }
                dns = try ClientDNS(sockets: stubs, upstreams: file.upstreams, tunnel: tunnel, logger: logger)
                resolver = file
            } catch {
                taken?.restore()
                Self.removeStubAddresses()
                device.close()
                throw ClientStartError("taking over DNS: \(error)")
            }
        } else {
            resolver = nil
            dns = nil
        }
        let portalAddresses = Self.addresses(of: portalHost)
        control = ClientControl(identity: identity, tunnel: tunnel, device: TunnelDevice(device: device, mtu: mtu), dns: dns,
                                excluding: portalAddresses + (resolver?.upstreams.map(\.ip) ?? []), logger: logger)
        let running = tunnel
        let thread = Thread { running.run() }
        thread.name = "gatehouse-client-tunnel"
        thread.start()
        if let dns {
            dns.listenTCP()
            let dnsThread = Thread { dns.run() }
            dnsThread.name = "gatehouse-client-dns"
            dnsThread.start()
        }
        let control = self.control
        let reconnect = self.reconnect
        Task {
            for await event in stream {
                await control.handle(event)
                if case .networkChanged = event, let handler = reconnect.value.withLock({ $0 }) { await handler() }
            }
        }
        logger.info("tunnel device ready", metadata: [
            "tun": "\(device.name)", "mtu": "\(mtu)", "offload": "\(device.offload ? (device.udpOffload ? "tcp+udp" : "tcp") : "none")", "ports": "\(tunnel.initialPorts.map(String.init).joined(separator: ","))",
            "dns": "\(resolverFile.map { "\($0) -> \(ClientDNS.stubAddresses.joined(separator: ","))" } ?? "off")",
            "upstream_dns": "\(resolver?.upstreams.map(\.description).joined(separator: ",") ?? "")",
            "portal_addresses": "\(portalAddresses.map { SocketAddress(ip: $0, port: 0).address }.joined(separator: ","))",
        ])
    }

    /// Stops the data plane and removes the tunnel device (its addresses and routes go with it).
    package func shutdown() {
        resolver?.restore()
        if let dns {
            dns.stopAndWait()
            Self.removeStubAddresses()
        }
        events.finish()
        tunnel.stopAndWait()
        device.close()
        logger.info("tunnel device removed", metadata: ["tun": "\(device.name)"])
    }

    static func removeStubAddresses() {
        for text in ClientDNS.stubAddresses {
            guard let ip = try? SocketAddress(text, port: 0).ip else { continue }
            try? InterfaceAddress.change(AddressRange(network: ip, prefixLength: ip.bitWidth), on: "lo", add: false)
        }
    }

    /// The addresses `host` stands for (an IP literal is itself).
    static func addresses(of host: String) -> [SocketAddress.IP] {
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if let ip = try? SocketAddress(bare, port: 0).ip { return [ip] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(bare, nil, &hints, &list) == 0 else { return [] }
        defer { freeaddrinfo(list) }
        var result: [SocketAddress.IP] = []
        var entry = list
        while let current = entry {
            if let address = current.pointee.ai_addr, let parsed = SocketAddress(UnsafeRawPointer(address)), !result.contains(parsed.ip) {
                result.append(parsed.ip)
            }
            entry = current.pointee.ai_next
        }
        return result
    }
}

/// The TUN device as the control side changes it.
struct TunnelDevice: ClientDevice {
    let device: TUNDevice
    let mtu: Int

    func setAddresses(_ addresses: [SocketAddress.IP]) throws {
        try device.configure(mtu: mtu, addresses: addresses.map { AddressRange(network: $0, prefixLength: $0.bitWidth) })
    }

    func replaceRoutes(removing: Set<AddressRange>, adding: Set<AddressRange>) throws {
        for range in removing { try device.route(range, add: false) }
        for range in adding { try device.route(range, add: true) }
    }
}

/// Why the client could not start, said plainly.
package struct ClientStartError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
