package import Actors
package import Addresses
import Foundation
import Synchronization
package import WireGuard

/// The WireGuard data plane (gateway spec, "WireGuard"): one thread runs a readiness loop over the
/// UDP socket and a queue of the TUN device and drives every peer's state inline, with no actor hop
/// per packet. Control (who may connect, with which keys and tunnel addresses) comes from any thread
/// through `authorize`/`remove`, which the loop applies between batches.
///
/// A packet out of a peer's tunnel enters the TUN only when its source is one of that peer's tunnel
/// addresses; a packet read from the TUN goes to the peer that holds its destination address.
package final class TunnelEngine: @unchecked Sendable {
    /// One authorised peer: its key, preshared key and tunnel addresses.
    package struct Authorization: Sendable, Equatable {
        package var publicKey: [UInt8]
        package var presharedKey: [UInt8]
        package var addresses: [SocketAddress.IP]

        package init(publicKey: [UInt8], presharedKey: [UInt8], addresses: [SocketAddress.IP]) {
            self.publicKey = publicKey
            self.presharedKey = presharedKey
            self.addresses = addresses
        }
    }

    /// Counters the operations endpoints read.
    package struct Counters: Sendable, Equatable {
        package var handshakes = 0
        package var packetsIn = 0
        package var bytesIn = 0
        package var packetsOut = 0
        package var bytesOut = 0
        package var droppedSpoofed = 0
        package var droppedNoPeer = 0
        package var droppedInvalid = 0
        /// Cookie replies sent instead of handshakes while under load.
        package var cookieReplies = 0
        /// Peers authorised now.
        package var peers = 0
    }

    /// Handshake messages per second above which the engine is under load: it then answers a
    /// handshake message without a valid MAC2 with a cookie reply instead of doing its DH work.
    package static let loadThreshold = 64

    private struct PeerState {
        var peer: Peer
        var authorization: Authorization
        var endpoint: SocketAddress?
    }

    private let tun: TUNDevice
    private let socket: UDPSocket
    private let local: StaticKey
    private let loop: EventLoop
    private let pending = Mutex<[(key: [UInt8], authorization: Authorization?)]>([])
    private let stopped = Atomic<Bool>(false)
    /// What `statistics` reads: the loop's own tally, published once per turn (not a lock per packet).
    private let counters = Mutex(Counters())
    private var tally = Counters()
    private let indexes = IndexSource()
    private let cookies: CookieResponder
    /// Handshake messages in the current one-second window, and when it began.
    private var handshakeWindow = (start: Date.distantPast, count: 0)

    // Owned by the loop's thread.
    private var peers: [[UInt8]: PeerState] = [:]
    private var byIndex: [UInt32: [UInt8]] = [:]
    private var byAddress: [SocketAddress.IP: [UInt8]] = [:]
    private var lastReindex = Date()

    package init(tun: TUNDevice, socket: UDPSocket, local: StaticKey) throws(SocketError) {
        self.tun = tun
        self.socket = socket
        self.local = local
        cookies = CookieResponder(local: local.publicKey, now: Date())
        loop = try EventLoop()
        try loop.add(socket.fileDescriptor)
        try loop.add(tun.fileDescriptor)
    }

    /// Lets a peer connect (or updates its keys and addresses).
    package func authorize(_ authorization: Authorization) {
        pending.withLock { $0.append((authorization.publicKey, authorization)) }
        loop.wake()
    }

    /// Forgets a peer: its sessions end at once.
    package func remove(publicKey: [UInt8]) {
        pending.withLock { $0.append((publicKey, nil)) }
        loop.wake()
    }

    package var statistics: Counters { counters.withLock { $0 } }

    /// Runs the loop on the calling thread until `stop()`.
    package func run() {
        while !stopped.load(ordering: .relaxed) {
            applyPending()
            publish()
            let now = Date()
            let timeout = peers.values.compactMap { $0.peer.nextDeadline() }.min().map { max(0, $0.timeIntervalSince(now)) } ?? 1
            let ready = (try? loop.wait(timeout: .milliseconds(Int64(min(timeout, 1) * 1000) + 1))) ?? []
            if ready.contains(socket.fileDescriptor) { readDatagrams() }
            if ready.contains(tun.fileDescriptor) { readPackets() }
            runTimers()
            publish()
        }
    }

    private func publish() {
        tally.peers = peers.count
        let published = tally
        counters.withLock { $0 = published }
    }

    package func stop() {
        stopped.store(true, ordering: .relaxed)
        loop.wake()
    }

    private func applyPending() {
        let changes = pending.withLock { changes in defer { changes = [] }; return changes }
        for change in changes {
            if let authorization = change.authorization {
                if var state = peers[change.key] {
                    state.authorization = authorization
                    peers[change.key] = state
                } else {
                    let source = indexes
                    peers[change.key] = PeerState(
                        peer: Peer(local: local, remoteStatic: authorization.publicKey, presharedKey: authorization.presharedKey,
                                   newIndex: { source.next() }),
                        authorization: authorization)
                }
            } else {
                peers[change.key] = nil
            }
        }
        if !changes.isEmpty { reindex() }
    }

    private func reindex() {
        byIndex = [:]
        byAddress = [:]
        for (key, state) in peers {
            for index in state.peer.indexes { byIndex[index] = key }
            for address in state.authorization.addresses { byAddress[address] = key }
        }
    }

    private func readDatagrams() {
        for _ in 0..<256 {
            guard let received = try? socket.receive(timeout: .zero) else { return }
            handle(received.bytes, from: received.from)
        }
    }

    private func handle(_ datagram: [UInt8], from source: SocketAddress) {
        let now = Date()
        guard let type = datagram.first else { return }
        if type == 1 || type == 2 {
            guard Handshake.hasValidMAC1(datagram, to: local.publicKey) else {
                tally.droppedInvalid += 1
                return
            }
            if now.timeIntervalSince(handshakeWindow.start) >= 1 { handshakeWindow = (now, 0) }
            handshakeWindow.count += 1
            // Under load, only a source that proves it owns its address (MAC2 with our cookie) costs DH work.
            if handshakeWindow.count > Self.loadThreshold {
                let sourceBytes = Self.cookieSource(source)
                if !cookies.hasValidMAC2(datagram, from: sourceBytes, now: now) {
                    if let reply = cookies.reply(to: datagram, from: sourceBytes, now: now) {
                        _ = try? socket.send(reply, to: source)
                        tally.cookieReplies += 1
                    }
                    return
                }
            }
        }
        if type == 1 {
            guard let response = Handshake.respond(to: datagram, local: local, localIndex: indexes.next(),
                                                   presharedKey: { [peers] in peers[$0]?.authorization.presharedKey }),
                  var state = peers[response.initiatorStatic] else {
                tally.droppedInvalid += 1
                return
            }
            let outputs = state.peer.accept(response, now: now)
            if !outputs.isEmpty { state.endpoint = source }
            peers[response.initiatorStatic] = state
            perform(outputs, for: response.initiatorStatic)
            tally.handshakes += 1
            return
        }
        guard datagram.count >= 8 else { return }
        let index = (0..<4).reduce(UInt32(0)) { $0 | UInt32(datagram[4 + $1]) << (8 * UInt32($1)) }
        guard let key = byIndex[index], var state = peers[key] else {
            tally.droppedInvalid += 1
            return
        }
        let outputs = state.peer.receive(datagram, now: now)
        if !outputs.isEmpty || type == 4 { state.endpoint = source }
        peers[key] = state
        perform(outputs, for: key)
    }

    private func readPackets() {
        let now = Date()
        for _ in 0..<256 {
            guard let packet = try? tun.read(), !packet.isEmpty else { return }
            guard let destination = Self.destination(of: packet), let key = byAddress[destination], var state = peers[key] else {
                tally.droppedNoPeer += 1
                continue
            }
            let outputs = state.peer.send(packet, now: now)
            peers[key] = state
            tally.packetsOut += 1
            tally.bytesOut += packet.count
            perform(outputs, for: key)
        }
    }

    private func runTimers() {
        let now = Date()
        // Indexes of sessions that ended are forgotten now and then (new ones are added as they come).
        if now.timeIntervalSince(lastReindex) > 30 {
            reindex()
            lastReindex = now
        }
        for (key, state) in peers {
            guard let deadline = state.peer.nextDeadline(), deadline <= now else { continue }
            var state = state
            let outputs = state.peer.tick(now: now)
            peers[key] = state
            perform(outputs, for: key)
        }
    }

    private func perform(_ outputs: [PeerOutput], for key: [UInt8]) {
        guard let state = peers[key] else { return }
        for output in outputs {
            switch output {
            case let .datagram(bytes):
                if let endpoint = state.endpoint { _ = try? socket.send(bytes, to: endpoint) }
            case let .packet(bytes):
                guard let (packet, source) = Self.trimmed(bytes), state.authorization.addresses.contains(source) else {
                    tally.droppedSpoofed += 1
                    continue
                }
                _ = try? tun.write(packet)
                tally.packetsIn += 1
                tally.bytesIn += packet.count
            }
        }
        // Handshakes make and drop session indexes.
        for index in state.peer.indexes where byIndex[index] == nil { byIndex[index] = key }
    }

    /// A source address as cookies take it.
    static func cookieSource(_ source: SocketAddress) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { source.ip.storeZeroPadded(into: $0) }
        let isV4: Bool = if case .v4 = source.ip { true } else { false }
        return CookieResponder.source(address: Array(bytes.prefix(isV4 ? 4 : 16)), port: source.port)
    }

    /// The packet without WireGuard's padding (the IP header's length), and its source address.
    static func trimmed(_ bytes: [UInt8]) -> ([UInt8], SocketAddress.IP)? {
        guard let first = bytes.first else { return nil }
        switch first >> 4 {
        case 4 where bytes.count >= 20:
            let length = Int(bytes[2]) << 8 | Int(bytes[3])
            guard length >= 20, length <= bytes.count else { return nil }
            let source = UInt32(bytes[12]) << 24 | UInt32(bytes[13]) << 16 | UInt32(bytes[14]) << 8 | UInt32(bytes[15])
            return (Array(bytes[..<length]), .v4(source))
        case 6 where bytes.count >= 40:
            let length = 40 + (Int(bytes[4]) << 8 | Int(bytes[5]))
            guard length <= bytes.count else { return nil }
            return (Array(bytes[..<length]), .v6(read64(bytes, 8), read64(bytes, 16)))
        default:
            return nil
        }
    }

    static func destination(of packet: [UInt8]) -> SocketAddress.IP? {
        guard let first = packet.first else { return nil }
        switch first >> 4 {
        case 4 where packet.count >= 20:
            return .v4(UInt32(packet[16]) << 24 | UInt32(packet[17]) << 16 | UInt32(packet[18]) << 8 | UInt32(packet[19]))
        case 6 where packet.count >= 40:
            return .v6(read64(packet, 24), read64(packet, 32))
        default:
            return nil
        }
    }

    private static func read64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[offset + $1]) }
    }
}

/// Session indexes unique within the engine (the peers draw theirs from it).
final class IndexSource: Sendable {
    private let value = Atomic<UInt32>(UInt32.random(in: 1...1 << 24))
    func next() -> UInt32 { value.add(1, ordering: .relaxed).newValue }
}
