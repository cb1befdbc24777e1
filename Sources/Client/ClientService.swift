package import Actors
package import Addresses
package import Foundation
import Glibc
package import Logging
package import Tunnel
import WireGuard

/// The client's host side: the tunnel device with its addresses and routes, the UDP sockets, the data
/// plane's thread and the control actor; `shutdown()` takes it all away again (the routes go with the
/// device).
package final class ClientService: Sendable {
    package let tunnel: ClientTunnel
    package let control: ClientControl
    private let device: TUNDevice
    private let events: AsyncStream<ClientTunnel.Event>.Continuation
    private let logger: Logger

    /// Opens the tunnel device `tunName` (MTU `mtu`), binds the sockets and starts the data plane.
    /// `portalHost`: the portal's host, whose addresses are never routed into the tunnel. Needs
    /// CAP_NET_ADMIN; says which step failed and why.
    package init(identity: ClientControl.Identity, tunName: String, mtu: Int, portalHost: String, logger: Logger) throws {
        self.logger = logger
        guard let keyBytes = Data(base64Encoded: identity.device.privateKey.reveal()), keyBytes.count == 32 else {
            throw ClientStartError("the client's WireGuard private key is not 32 bytes of base64")
        }
        do {
            device = try TUNDevice(name: tunName)
            try device.configure(mtu: mtu, addresses: [])
        } catch {
            throw ClientStartError("\(error)")
        }
        var sockets: [UDPSocket] = []
        do {
            sockets.append(try UDPSocket(bindTo: SocketAddress("0.0.0.0", port: 0)))
        } catch {
            device.close()
            throw ClientStartError("binding a UDP socket: \(error)")
        }
        do {
            sockets.append(try UDPSocket(bindTo: SocketAddress("::", port: 0)))
        } catch {
            logger.warning("no IPv6 socket: gateways are reached over IPv4 only", metadata: ["error": "\(error)"])
        }
        let (stream, continuation) = AsyncStream<ClientTunnel.Event>.makeStream()
        events = continuation
        do {
            tunnel = try ClientTunnel(tun: device, sockets: sockets, local: StaticKey(privateKey: [UInt8](keyBytes))) { event in
                continuation.yield(event)
            }
        } catch {
            device.close()
            throw ClientStartError("starting the data plane: \(error)")
        }
        let portalAddresses = Self.addresses(of: portalHost)
        control = ClientControl(identity: identity, tunnel: tunnel, device: TunnelDevice(device: device, mtu: mtu), portalAddresses: portalAddresses, logger: logger)
        let running = tunnel
        let thread = Thread { running.run() }
        thread.name = "gatehouse-client-tunnel"
        thread.start()
        let control = self.control
        Task {
            for await event in stream { await control.handle(event) }
        }
        logger.info("tunnel device ready", metadata: [
            "tun": "\(device.name)", "mtu": "\(mtu)", "ports": "\(tunnel.ports.map(String.init).joined(separator: ","))",
            "portal_addresses": "\(portalAddresses.map { SocketAddress(ip: $0, port: 0).address }.joined(separator: ","))",
        ])
    }

    /// Stops the data plane and removes the tunnel device (its addresses and routes go with it).
    package func shutdown() {
        events.finish()
        tunnel.stopAndWait()
        device.close()
        logger.info("tunnel device removed", metadata: ["tun": "\(device.name)"])
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
