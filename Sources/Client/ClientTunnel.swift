package import Actors
package import Addresses
package import Foundation
package import ICE
package import Identifiers
import CGatehouseSystem
import Glibc
import STUN
import Synchronization
package import Tunnel
package import WireGuard

/// The client's data plane (client spec, "Headless client"): one thread runs a readiness loop over the
/// TUN device and the UDP sockets and drives a WireGuard peer per gateway, initiator side. A packet
/// the TUN gives is for the resource whose range holds its destination (the most specific): sealed
/// to the gateway of that resource's flow; without a flow it waits (at most `Limits.heldPackets`, for
/// at most `Limits.flowWait`) while the control side asks the portal for one (`Event.needFlow`); a
/// flow the portal refused answers what waits, and what comes for a while after, with ICMP
/// unreachable. A packet out of a gateway's tunnel reaches the TUN only when it is for one of the
/// client's tunnel addresses and from a resource whose flow goes through that gateway.
package final class ClientTunnel: @unchecked Sendable {
    package enum Limits {
        /// Packets held per resource while its flow is made.
        package static let heldPackets = 64
        /// How long packets wait for a flow (the portal gives up on a gateway's confirmation after 15 s).
        package static let flowWait: TimeInterval = 20
        /// How long packets to a refused resource are answered at once before the portal is asked again.
        package static let refusalMemory: TimeInterval = 5
        /// After a fresh establishment in which every pair failed (the relay unreachable for a while,
        /// say), the next one comes after this, doubling each time up to `iceRetryLongest`.
        package static let iceRetryFirst: TimeInterval = 1
        package static let iceRetryLongest: TimeInterval = 15
    }

    /// What a flow is to: a CIDR or IP resource, or one name of a DNS resource (whose proxy
    /// addresses stand for that name only).
    package struct Target: Hashable, Sendable, Comparable, CustomStringConvertible {
        package var resource: ResourceID
        package var name: String?

        package init(resource: ResourceID, name: String? = nil) {
            self.resource = resource
            self.name = name
        }

        package var description: String { name.map { "\(resource) (\($0))" } ?? resource.description }

        package static func < (a: Target, b: Target) -> Bool { (a.resource, a.name ?? "") < (b.resource, b.name ?? "") }
    }

    /// What the loop asks of the control side (called on the loop's thread: hand it over, do not block).
    package enum Event: Sendable, Equatable {
        /// A packet is waiting for a flow to this target.
        case needFlow(Target)
        /// The gateway answered a packet to this target with "administratively prohibited".
        case prohibited(Target)
        /// Local ICE candidates (RFC 8839 texts) to trickle to the gateway of a flow.
        case candidates(flow: AuthorizationID, gateway: DeviceID, [String])
        /// The way to a gateway was lost (a fresh establishment is under way).
        case pathLost(gateway: DeviceID, reason: String)
        /// The network changed (or SIGHUP said so): the sockets were bound again, candidates and relay
        /// allocations are being made again; the portal connection should be made again too.
        case networkChanged(reason: String, ports: [UInt16])
        /// A relay's allocation failed (refused, unanswered, or forgotten by the relay); tried again in
        /// `retryIn` seconds.
        case relayUnavailable(relay: String, reason: String, retryIn: TimeInterval)
    }

    /// A flow the portal made: through which gateway, with what keys, until when.
    package struct Flow: Sendable {
        package var flowID: AuthorizationID
        /// The flow's ICE credentials, the client's and the gateway's (nil: plain WireGuard to `endpoint`).
        package var ice: (local: ICEAgent.Credentials, remote: ICEAgent.Credentials)?
        package var target: Target
        package var gateway: DeviceID
        package var gatewayPublicKey: [UInt8]
        package var presharedKey: [UInt8]
        package var endpoint: SocketAddress
        package var expiresAt: Date

        package init(flowID: AuthorizationID, ice: (local: ICEAgent.Credentials, remote: ICEAgent.Credentials)?, target: Target, gateway: DeviceID,
                     gatewayPublicKey: [UInt8], presharedKey: [UInt8], endpoint: SocketAddress, expiresAt: Date) {
            self.flowID = flowID
            self.ice = ice
            self.target = target
            self.gateway = gateway
            self.gatewayPublicKey = gatewayPublicKey
            self.presharedKey = presharedKey
            self.endpoint = endpoint
            self.expiresAt = expiresAt
        }
    }

    /// What `status` shows of one gateway's tunnel.
    package struct GatewayStatus: Sendable, Equatable {
        package var gateway: DeviceID
        package var endpoint: SocketAddress
        package var established: Bool
        package var lastHandshake: Date?
        /// The pair ICE chose (nil: none yet, data goes to the gateway's announced endpoint).
        package var pair: ICEPair?
        /// The relay the pair goes through (a relayed pair only).
        package var relay: String?
        /// Fresh establishments after the pair was lost.
        package var restarts = 0
        package var packetsSent = 0
        package var bytesSent = 0
        package var packetsReceived = 0
        package var bytesReceived = 0

        /// The pair was lost and no other one answers yet (a fresh establishment is under way, or waits
        /// for its next try).
        package var searching: Bool { pair == nil && restarts > 0 }
    }

    /// Counters for `status` and the logs.
    package struct Counters: Sendable, Equatable {
        package var gateways: [DeviceID: GatewayStatus] = [:]
        /// Packets answered with ICMP unreachable because no flow could be had.
        package var refusedPackets = 0
        /// What was dropped, by reason.
        package var dropped: [String: Int] = [:]
    }

    private enum FlowState {
        case pending(since: Date, held: [[UInt8]])
        case ready(key: [UInt8], expiresAt: Date)
        case refused(until: Date, reason: ICMPUnreachable.Reason)
    }

    private struct GatewayState {
        var peer: Peer
        var id: DeviceID
        var endpoint: SocketAddress
        var status: GatewayStatus
        /// The local ufrag of the ICE agent finding the way to this gateway (that of its first flow).
        var iceUfrag: String?
        /// When the next establishment comes after one in which every pair failed, and the wait before
        /// it (doubled after each that fails too; cleared when a pair is selected).
        var iceRetryDue: Date?
        var iceRetryWait: TimeInterval?
    }

    private enum Command {
        case routes([(range: AddressRange, target: Target)])
        case proxy(SocketAddress.IP, Target?)
        case addresses([SocketAddress.IP])
        case flow(Flow)
        case refused(Target, ICMPUnreachable.Reason)
        case forget(ResourceID)
        case gather([SocketAddress])
        case remoteCandidates(AuthorizationID, [ICECandidate])
        case relays([RelayServer])
        case networkChanged(String)
        case announceCandidates
    }

    /// A relay this client may allocate on, with the portal's TURN REST credentials.
    package struct RelayServer: Sendable, Equatable {
        package var name: String
        package var address: SocketAddress
        package var username: String
        package var password: String

        package init(name: String, address: SocketAddress, username: String, password: String) {
            self.name = name
            self.address = address
            self.username = username
            self.password = password
        }
    }

    private let tun: TUNDevice
    /// One per address family; bound again after a network change (owned by the loop's thread).
    private var sockets: [UDPSocket]
    /// Hears of links and addresses coming and going (nil where rtnetlink is not available).
    private let netlink: Int32?
    /// When a network change (seen by rtnetlink) is acted on: a second after the last event, so that
    /// a burst of them makes one rebind.
    private var networkChangeDue: Date?
    private var relayList: [RelayServer] = []
    private let local: StaticKey
    private let loop: EventLoop
    private let onEvent: @Sendable (Event) -> Void
    private let pending = Mutex<[Command]>([])
    private let stopped = Atomic<Bool>(false)
    private let stoppedRunning = DispatchSemaphore(value: 0)
    private let published = Mutex(Counters())
    private let indexes = IndexCounter()

    // Owned by the loop's thread.
    private var routes: [(range: AddressRange, target: Target)] = []
    /// DNS proxy addresses and the name each stands for.
    private var proxies: [SocketAddress.IP: Target] = [:]
    private var ownAddresses: Set<SocketAddress.IP> = []
    private var flows: [Target: FlowState] = [:]
    /// Targets whose "administratively prohibited" already made the client ask again (once per flow).
    private var askedAgain: Set<Target> = []
    private var gateways: [[UInt8]: GatewayState] = [:]
    private var byIndex: [UInt32: [UInt8]] = [:]
    private var tally = Counters()
    private var timersDue = Date()
    private var ice = ICESessions<[UInt8]>()
    /// Each ICE agent's flow and gateway (by local ufrag), each flow's ufrag, and candidates that came
    /// before their flow.
    private var iceFlows: [String: (flow: AuthorizationID, gateway: DeviceID)] = [:]
    private var flowUfrags: [AuthorizationID: String] = [:]
    private var earlyCandidates: [AuthorizationID: [ICECandidate]] = [:]
    /// TURN allocations, by relay address (at most two: the relays the portal chose).
    private var allocations: [SocketAddress: RelayAllocation] = [:]
    private var relayNames: [SocketAddress: String] = [:]
    /// Where a read from the TUN lands (a `VirtioNetHeader` first when the device offloads), and where
    /// a super-packet's segments are made.
    private let packetBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNetHeader.size + 65_536, alignment: 16)
    private let segmentBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    /// Datagrams in (several per entry when the kernel coalesced them) and data messages out, batched.
    private let received = DatagramBatch(capacity: 64, datagramCapacity: 65_536)
    private lazy var outbox = Outbox { [unowned self] in socket(for: $0) }
    /// Packets out of tunnels into the TUN, joined into super-packets where the device takes them.
    private let writer: TUNWriter

    /// `sockets`: one per address family the host has (bound to any port); `onEvent` is called on the
    /// loop's thread.
    /// `keepaliveInterval`: how often the selected pair of each gateway is checked (25 s).
    package init(tun: TUNDevice, sockets: [UDPSocket], local: StaticKey, keepaliveInterval: TimeInterval = 25,
                 onEvent: @escaping @Sendable (Event) -> Void) throws(SocketError) {
        ice.keepaliveInterval = keepaliveInterval
        precondition(!sockets.isEmpty)
        self.tun = tun
        self.sockets = sockets
        self.local = local
        self.onEvent = onEvent
        initialPorts = sockets.map(\.localPort)
        writer = TUNWriter(tun: tun)
        loop = try EventLoop()
        for socket in sockets {
            try loop.add(socket.fileDescriptor)
            socket.enableReceiveCoalescing()
        }
        try loop.add(tun.fileDescriptor)
        let watch = gatehouse_netlink_watch()
        netlink = watch >= 0 ? watch : nil
        if let netlink { try loop.add(netlink) }
    }

    deinit {
        packetBuffer.deallocate()
        segmentBuffer.deallocate()
        if let netlink { close(netlink) }
    }

    /// The network changed: sockets bound again, candidates and allocations made again, every gateway's
    /// way found again; flows and WireGuard sessions stay.
    package func networkChanged(reason: String) { command(.networkChanged(reason)) }

    /// Every local candidate again, for every gateway's flow: the portal was away (a reconnect, often
    /// right after a network change), and candidates trickled meanwhile never reached the gateways.
    package func announceCandidates() { command(.announceCandidates) }

    // MARK: Control (any thread)

    /// The resources' ranges (each packet goes to the most specific one holding its destination).
    package func setRoutes(_ routes: [(range: AddressRange, target: Target)]) { command(.routes(routes)) }
    /// A DNS proxy address now stands for `target` (nil: for nothing). Taken before the next packet
    /// is read, so the answer that hands the address out may go as soon as this returns.
    package func setProxy(_ address: SocketAddress.IP, _ target: Target?) { command(.proxy(address, target)) }
    /// The client's tunnel addresses (what comes out of a tunnel must be for one of them).
    package func setAddresses(_ addresses: [SocketAddress.IP]) { command(.addresses(addresses)) }
    /// A flow the portal made: what waits for it goes now.
    package func flowCreated(_ flow: Flow) { command(.flow(flow)) }
    /// The portal refused a flow (or could not make one): what waits gets ICMP unreachable.
    package func flowRefused(_ target: Target, reason: ICMPUnreachable.Reason) { command(.refused(target, reason)) }
    /// The resource is gone or changed: its flows end; the next packet asks again.
    package func forget(_ resource: ResourceID) { command(.forget(resource)) }

    package var statistics: Counters { published.withLock { $0 } }

    /// Learns server-reflexive candidates from these STUN servers (the relays).
    package func gatherCandidates(from servers: [SocketAddress]) { command(.gather(servers)) }
    /// The relays to allocate on (the portal's two, with fresh credentials): allocations on relays no
    /// longer listed end, new ones start.
    package func setRelays(_ relays: [RelayServer]) { command(.relays(relays)) }
    /// The gateway's candidates for a flow.
    package func addRemoteCandidates(_ candidates: [ICECandidate], flow: AuthorizationID) { command(.remoteCandidates(flow, candidates)) }

    /// The UDP ports the tunnel's sockets are bound to (at start).
    package let initialPorts: [UInt16]

    private func command(_ command: Command) {
        pending.withLock { $0.append(command) }
        loop.wake()
    }

    /// Runs the loop on the calling thread until `stopAndWait()`.
    package func run() {
        performICE(ice.setHostCandidates(hostCandidates()), now: Date())
        while !stopped.load(ordering: .relaxed) {
            applyPending()
            publish()
            let wait = max(0, min(timersDue.timeIntervalSinceNow, 1))
            let ready = (try? loop.wait(timeout: .milliseconds(Int64(wait * 1000) + 1))) ?? []
            for socket in sockets where ready.contains(socket.fileDescriptor) { readDatagrams(from: socket) }
            if ready.contains(tun.fileDescriptor) { readPackets() }
            if let netlink, ready.contains(netlink) { readNetlink(netlink) }
            if timersDue.timeIntervalSinceNow <= 0 { timersDue = runTimers() }
        }
        releaseAllocations()
        stoppedRunning.signal()
    }

    package func stopAndWait() {
        stopped.store(true, ordering: .relaxed)
        loop.wake()
        stoppedRunning.wait()
    }

    private func publish() {
        // Each gateway's status is the gateway's own, copied here (gone gateways are taken out where they go).
        for state in gateways.values { tally.gateways[state.id] = state.status }
        if outbox.refused > 0 { tally.dropped["send_refused"] = outbox.refused }
        let counters = tally
        published.withLock { $0 = counters }
    }

    private func drop(_ reason: String) { tally.dropped[reason, default: 0] += 1 }

    private func applyPending() {
        let commands = pending.withLock { commands in defer { commands = [] }; return commands }
        let now = Date()
        for command in commands {
            switch command {
            case let .routes(list):
                routes = list.sorted { $0.range.prefixLength > $1.range.prefixLength }
            case let .gather(servers):
                performICE(ice.gather(from: servers, now: now), now: now)
                timersDue = now
            case let .remoteCandidates(flow, candidates):
                if let ufrag = flowUfrags[flow] {
                    ice.addRemote(candidates, ufrag: ufrag)
                    timersDue = now
                } else {
                    earlyCandidates[flow, default: []] += candidates
                    if earlyCandidates.count > 256 { earlyCandidates.removeAll() }
                }
            case let .relays(list):
                relayList = list
                updateRelays(list, now: now)
            case let .networkChanged(reason):
                rebind(reason: reason, now: now)
            case .announceCandidates:
                for ufrag in iceFlows.keys { announceCandidates(ufrag: ufrag) }
            case let .proxy(address, target):
                proxies[address] = target
            case let .addresses(list):
                ownAddresses = Set(list)
            case let .flow(flow):
                var state = gateways[flow.gatewayPublicKey]
                if state == nil || state!.peer.presharedKey != flow.presharedKey {
                    let counter = indexes
                    state = GatewayState(peer: Peer(local: local, remoteStatic: flow.gatewayPublicKey, presharedKey: flow.presharedKey,
                                                    newIndex: { counter.next() }),
                                         id: flow.gateway, endpoint: flow.endpoint,
                                         status: GatewayStatus(gateway: flow.gateway, endpoint: flow.endpoint, established: false))
                }
                if state!.status.pair == nil {
                    state!.endpoint = flow.endpoint
                    state!.status.endpoint = flow.endpoint
                }
                // ICE finds the way to a gateway once, with the credentials of its first flow.
                if let credentials = flow.ice, state!.iceUfrag == nil {
                    state!.iceUfrag = credentials.local.ufrag
                    iceFlows[credentials.local.ufrag] = (flow.flowID, flow.gateway)
                    flowUfrags[flow.flowID] = credentials.local.ufrag
                    gateways[flow.gatewayPublicKey] = state
                    performICE(ice.add(owner: flow.gatewayPublicKey, controlling: true, local: credentials.local, remote: credentials.remote), now: now)
                    ice.addRemote(earlyCandidates.removeValue(forKey: flow.flowID) ?? [], ufrag: credentials.local.ufrag)
                    timersDue = now
                }
                gateways[flow.gatewayPublicKey] = state
                let held: [[UInt8]] = if case let .pending(_, held) = flows[flow.target] { held } else { [] }
                flows[flow.target] = .ready(key: flow.gatewayPublicKey, expiresAt: flow.expiresAt)
                askedAgain.remove(flow.target)
                for packet in held { send(packet, to: flow.gatewayPublicKey, now: now) }
            case let .refused(target, reason):
                if case let .pending(_, held) = flows[target] {
                    for packet in held { refuse(packet, reason: reason) }
                }
                flows[target] = .refused(until: now.addingTimeInterval(Limits.refusalMemory), reason: reason)
            case let .forget(resource):
                for target in flows.keys where target.resource == resource { flows[target] = nil }
                askedAgain = askedAgain.filter { $0.resource != resource }
            }
        }
        if !commands.isEmpty { forgetUnusedGateways() }
    }

    /// Gateways no flow goes through any more are forgotten (their sessions end).
    private func forgetUnusedGateways() {
        var used = Set<[UInt8]>()
        for state in flows.values { if case let .ready(key, _) = state { used.insert(key) } }
        for key in gateways.keys where !used.contains(key) {
            tally.gateways[gateways[key]!.id] = nil
            if let ufrag = gateways[key]!.iceUfrag, let flow = iceFlows.removeValue(forKey: ufrag) { flowUfrags[flow.flow] = nil }
            ice.remove(owner: key)
            gateways[key] = nil
        }
        reindex()
    }

    private func reindex() {
        byIndex = [:]
        for (key, state) in gateways {
            for index in state.peer.indexes { byIndex[index] = key }
        }
    }

    /// What `destination` is: a DNS proxy address's name, or the resource whose range holds it (the
    /// most specific first).
    private func target(for destination: SocketAddress.IP) -> Target? {
        if !proxies.isEmpty, let target = proxies[destination] { return target }
        return routes.first { $0.range.contains(destination) }?.target
    }

    // MARK: From the TUN

    private func readPackets() {
        applyPending()  // a proxy address handed out a moment ago is known before its first packet
        let now = Date()
        let offset = tun.offload ? VirtioNetHeader.size : 0
        for _ in 0..<64 {
            guard let length = try? tun.read(into: packetBuffer), length > offset else { break }
            let read = UnsafeMutableRawBufferPointer(rebasing: packetBuffer[..<length])
            // Judged once per read: a super-packet's segments share its addresses and ports.
            guard let header = PacketHeader(UnsafeRawBufferPointer(rebasing: read[offset...])) else {
                drop("malformed")
                continue
            }
            guard let target = target(for: header.destination) else {
                drop("no_resource")
                continue
            }
            if case let .ready(key, expiresAt) = flows[target], now < expiresAt, gateways[key] != nil {
                sendFast(read, to: key, now: now)
                continue
            }
            var packets: [[UInt8]] = []
            forEachSegment(read) { packets.append(Array($0)) }
            for packet in packets { waitOrAsk(packet, target: target, now: now) }
        }
        flushOutbox()
    }

    /// Each IP packet of a read: itself, or the segments of a super-packet.
    private func forEachSegment(_ read: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Void) {
        if tun.offload {
            if !Offload.forEachPacket(in: read, scratch: segmentBuffer, body) { drop("malformed") }
        } else {
            body(UnsafeRawBufferPointer(read))
        }
    }

    /// A packet for a target without a usable flow: it waits while the portal is asked, or is refused.
    private func waitOrAsk(_ packet: [UInt8], target: Target, now: Date) {
        switch flows[target] {
        case let .ready(key, expiresAt) where now < expiresAt && gateways[key] != nil:
            send(packet, to: key, now: now)
        case let .pending(since, held):
            flows[target] = .pending(since: since, held: Array((held + [packet]).suffix(Limits.heldPackets)))
        case let .refused(until, reason) where now < until:
            refuse(packet, reason: reason)
        default:
            // No flow yet, an expired one, or a refusal long enough ago: the portal is asked.
            flows[target] = .pending(since: now, held: [packet])
            onEvent(.needFlow(target))
        }
    }

    /// The hot path: each packet of a read (a super-packet's segments) sealed in place into the outbox
    /// (sent in batches, segmented where the kernel can), straight to the gateway or framed as
    /// ChannelData for the relay of a relayed pair. The gateway and the way are looked up once per
    /// read, and its state reached by its dictionary index, neither copied nor its key hashed per
    /// packet. What cannot go so (no session yet, a rekey due, a channel not bound) takes the slow path.
    private func sendFast(_ read: UnsafeMutableRawBufferPointer, to key: [UInt8], now: Date) {
        guard var gateway = gateways.index(forKey: key) else { return }
        // Where this read's packets go: the gateway's endpoint, or its relay with the bound channel.
        var destination: SocketAddress? = gateways.values[gateway].endpoint
        var channel: UInt16?
        if let pair = gateways.values[gateway].status.pair, pair.local.kind == .relayed {
            destination = nil
            if let index = allocations.firstIndex(where: { $0.value.relayed == pair.local.address }),
               let bound = allocations.values[index].boundChannel(for: gateways.values[gateway].endpoint) {
                destination = allocations.keys[index]
                channel = bound
            }
        }
        var (packets, bytes) = (0, 0)
        var slowPath = false
        forEachSegment(read) { packet in
            let size = TransportSession.messageSize(forPacket: packet.count)
            var sent = false
            if let destination, let channel {
                sent = queue(to: destination, size: ChannelData.headerLength + size) { buffer in
                    let message = UnsafeMutableRawBufferPointer(rebasing: buffer[ChannelData.headerLength...])
                    guard let length = gateways.values[gateway].peer.seal(packet, into: message, now: now) else { return nil }
                    buffer.storeBytes(of: channel.bigEndian, toByteOffset: 0, as: UInt16.self)
                    buffer.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
                    return ChannelData.headerLength + length
                }
            } else if let destination {
                sent = queue(to: destination, size: size) { gateways.values[gateway].peer.seal(packet, into: $0, now: now) }
            }
            if sent {
                packets += 1
                bytes += packet.count
            } else {
                // The slow path may change the gateways (and the way): the rest of the read takes it too.
                destination = nil
                slowPath = true
                send(Array(packet), to: key, now: now)
            }
        }
        guard packets > 0 else { return }
        if slowPath {
            guard let index = gateways.index(forKey: key) else { return }
            gateway = index
        }
        gateways.values[gateway].status.packetsSent += packets
        gateways.values[gateway].status.bytesSent += bytes
    }

    private func queue(to destination: SocketAddress, size: Int, _ write: (UnsafeMutableRawBufferPointer) -> Int?) -> Bool {
        outbox.queue(to: destination, size: size, write)
    }

    private func flushOutbox() { outbox.flush() }

    /// The socket that sends to `destination` (by its address family).
    private func socket(for destination: SocketAddress) -> UDPSocket {
        sockets.first { $0.localAddress.isIPv6 == destination.isIPv6 } ?? sockets[0]
    }

    /// ICMP unreachable back into the TUN for a packet that cannot go.
    private func refuse(_ packet: [UInt8], reason: ICMPUnreachable.Reason) {
        tally.refusedPackets += 1
        guard let reply = packet.withUnsafeBytes({ ICMPUnreachable.reply(to: $0, reason: reason) }) else { return }
        writer.flush()
        _ = try? tun.write(reply)
    }

    private func send(_ packet: [UInt8], to key: [UInt8], now: Date) {
        guard gateways[key] != nil else { return }
        let outputs = gateways[key]!.peer.send(packet, now: now)
        gateways[key]!.status.packetsSent += 1
        gateways[key]!.status.bytesSent += packet.count
        perform(outputs, key: key, now: now)
    }

    private func perform(_ outputs: [PeerOutput], key: [UInt8], now: Date) {
        var handshake = false
        for output in outputs {
            switch output {
            case let .datagram(bytes):
                guard let endpoint = gateways[key]?.endpoint else { continue }
                if bytes.first != 4 { handshake = true }
                if let pair = gateways[key]?.status.pair, pair.local.kind == .relayed {
                    sendThroughRelay(bytes, relayed: pair.local.address, to: endpoint, now: now)
                } else {
                    sendDirect(bytes, to: endpoint)
                }
            case let .packet(bytes):
                deliver(bytes, from: key)
            case let .dropped(reason):
                drop(reason.rawValue)
            }
        }
        if handshake { reindex() }
        if let state = gateways[key], state.peer.hasSession(now: now), !state.status.established {
            gateways[key]!.status.established = true
            gateways[key]!.status.lastHandshake = now
        }
    }

    // MARK: From the network

    private func readDatagrams(from socket: UDPSocket) {
        let now = Date()
        for _ in 0..<8 {
            guard let count = try? socket.receive(into: received), count > 0 else { break }
            for entry in 0..<count {
                guard let source = received.address(entry) else { continue }
                received.forEachDatagram(entry) { datagram in
                    let bytes = UnsafeMutableRawBufferPointer(mutating: datagram)
                    if !openFast(bytes, from: source, now: now) { handle(Array(datagram), from: source, now: now) }
                }
            }
            writer.flush()
            flushOutbox()
            if count < received.capacity { break }
        }
    }

    /// The hot path in: transport data opened where it lies (straight from a gateway, or inside the
    /// ChannelData of a bound channel) and written into the TUN, joined where the device takes
    /// super-packets. False for anything else (the slow path takes it).
    private func openFast(_ datagram: UnsafeMutableRawBufferPointer, from source: SocketAddress, now: Date) -> Bool {
        var message = datagram
        if datagram.count >= 36, (0x40...0x7F).contains(datagram[0]), allocations[source] != nil {
            // ChannelData from a relay: the WireGuard message after its 4-byte header.
            let channel = UInt16(datagram[0]) << 8 | UInt16(datagram[1])
            let length = Int(UInt16(datagram[2]) << 8 | UInt16(datagram[3]))
            guard allocations[source]!.peer(forChannel: channel) != nil, ChannelData.headerLength + length <= datagram.count else { return false }
            message = UnsafeMutableRawBufferPointer(rebasing: datagram[ChannelData.headerLength..<(ChannelData.headerLength + length)])
        }
        guard message.count >= 32, message[0] == 4, message[1] == 0, message[2] == 0, message[3] == 0 else { return false }
        let index = UInt32(littleEndian: message.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard let key = byIndex[index], gateways[key] != nil else {
            drop("unknown_session")
            return true
        }
        var owed: [PeerOutput] = []
        let range: Range<Int>
        do {
            range = try gateways[key]!.peer.open(inPlace: message, now: now, outputs: &owed)
        } catch {
            drop(error.rawValue)
            return true
        }
        if !owed.isEmpty { perform(owed, key: key, now: now) }
        guard !range.isEmpty else { return true }  // a keepalive
        let padded = UnsafeRawBufferPointer(rebasing: message[range])
        guard let (length, _) = TunnelEngine.packetLength(padded) else {
            drop("malformed")
            return true
        }
        let packet = UnsafeRawBufferPointer(rebasing: padded[..<length])
        guard admit(packet, from: key) else { return true }
        writer.write(packet)  // the WireGuard header before it is room for the device's header
        return true
    }

    private func handle(_ datagram: [UInt8], from source: SocketAddress, now: Date) {
        switch DatagramKind(datagram) {
        case .wireGuard:
            break
        case .stun:
            if allocations[source] != nil, let result = allocations[source]!.receive(datagram, now: now) {
                return relayResult(result, from: source, now: now)
            }
            let base = ice.localCandidates.first { $0.kind == .host && $0.address.isIPv6 == source.isIPv6 }
                ?? ICECandidate(kind: .host, address: SocketAddress(ip: source.isIPv6 ? .v6(0, 0) : .v4(0), port: sockets[0].localPort))
            guard let outputs = ice.receive(datagram, at: base, from: source, now: now) else { return drop("stun_unknown") }
            return performICE(outputs, now: now)
        case .channelData:
            guard allocations[source] != nil, let result = allocations[source]!.receive(datagram, now: now) else { return drop("channel_data_unknown") }
            return relayResult(result, from: source, now: now)
        case .unknown:
            return drop("malformed")
        }
        let key: [UInt8]?
        switch datagram[0] {
        case 1:
            // A gateway's initiation (it had packets for us and no session): answered as its peer would.
            guard datagram.count == Handshake.initiationSize,
                  let response = Handshake.respond(to: datagram, local: local, localIndex: indexes.next(), presharedKey: { [gateways] key in
                      gateways[key]?.peer.presharedKey
                  }) else { return drop("invalid_handshake") }
            key = gateways[response.initiatorStatic] == nil ? nil : response.initiatorStatic
            if let key {
                gateways[key]!.endpoint = source
                perform(gateways[key]!.peer.accept(response, now: now), key: key, now: now)
                reindex()
            }
            return
        case 2:
            key = datagram.count >= 12 ? byIndex[Handshake.readLE32(datagram, at: 8)] : nil
        case 3:
            key = datagram.count >= 8 ? byIndex[Handshake.readLE32(datagram, at: 4)] : nil
        default:
            key = datagram.count >= 8 ? byIndex[Handshake.readLE32(datagram, at: 4)] : nil
        }
        guard let key, gateways[key] != nil else { return drop("unknown_session") }
        let outputs = gateways[key]!.peer.receive(datagram, now: now)
        if datagram[0] == 2, outputs.contains(where: { if case .datagram = $0 { true } else { false } }) {
            gateways[key]!.status.lastHandshake = now
        }
        perform(outputs, key: key, now: now)
    }

    /// A packet out of a gateway's tunnel: into the TUN when it is for this client and from a resource
    /// whose flow goes through that gateway.
    private func deliver(_ packet: [UInt8], from key: [UInt8]) {
        let length = packet.withUnsafeBytes { TunnelEngine.packetLength($0)?.0 } ?? packet.count
        guard packet.withUnsafeBytes({ admit(UnsafeRawBufferPointer(rebasing: $0[..<length]), from: key) }) else { return }
        writer.flush()  // in order with what the fast path joined
        if (try? tun.write(Array(packet.prefix(length)))) != true { drop("tun_full") }
    }

    /// Whether a packet out of `key`'s tunnel may enter the TUN: for one of the client's addresses and
    /// from a resource whose flow goes through that gateway (counted). "Administratively prohibited"
    /// from the gateway (it restarted, or the filters changed) makes the client ask the portal once more.
    private func admit(_ packet: UnsafeRawBufferPointer, from key: [UInt8]) -> Bool {
        guard let header = PacketHeader(packet), ownAddresses.contains(header.destination),
              let target = target(for: header.source), case let .ready(flowKey, _) = flows[target], flowKey == key else {
            drop("spoofed")
            return false
        }
        gateways[key]!.status.packetsReceived += 1
        gateways[key]!.status.bytesReceived += packet.count
        if header.icmp != nil, AdministrativelyProhibited.matches(packet), !askedAgain.contains(target) {
            askedAgain.insert(target)
            flows[target] = nil
            onEvent(.prohibited(target))
        }
        return true
    }

    // MARK: ICE

    private func performICE(_ outputs: [ICESessions<[UInt8]>.Output], now: Date) {
        var trickled: [String: [String]] = [:]
        for output in outputs {
            switch output {
            case let .send(bytes, from, destination):
                if from.kind == .relayed {
                    sendThroughRelay(bytes, relayed: from.address, to: destination, now: now)
                } else {
                    sendDirect(bytes, to: destination)
                }
            case let .candidate(candidate, ufrag):
                trickled[ufrag, default: []].append(candidate.sdp)
            case let .selected(pair, key):
                guard gateways[key] != nil else { continue }
                gateways[key]!.iceRetryDue = nil
                gateways[key]!.iceRetryWait = nil
                gateways[key]!.endpoint = pair.remote.address
                gateways[key]!.status.endpoint = pair.remote.address
                gateways[key]!.status.pair = pair
                gateways[key]!.status.relay = pair.local.kind == .relayed ? relayName(of: pair.local.address) : nil
                // A handshake that went the announced way is sent again the way ICE found.
                perform(gateways[key]!.peer.retryHandshake(now: now), key: key, now: now)
            case let .failed(key, _):
                // Every pair failed: tried again later, for as long as the gateway has flows (an outage
                // of the only way, a relay that comes back).
                drop("ice_failed")
                guard gateways[key] != nil else { continue }
                let wait = gateways[key]!.iceRetryWait.map { min($0 * 2, Limits.iceRetryLongest) } ?? Limits.iceRetryFirst
                gateways[key]!.iceRetryWait = wait
                gateways[key]!.iceRetryDue = now.addingTimeInterval(wait)
                timersDue = min(timersDue, now.addingTimeInterval(wait))
            case let .lost(pair, key, ufrag):
                // A fresh establishment: the other pairs (another relay, a direct one) are checked again.
                drop("ice_pair_lost")
                restartICE(key: key, ufrag: ufrag, reason: "the pair \(pair.local.address) <-> \(pair.remote.address) stopped answering", now: now)
            }
        }
        for (ufrag, candidates) in trickled {
            guard let (flow, gateway) = iceFlows[ufrag] else { continue }
            onEvent(.candidates(flow: flow, gateway: gateway, candidates))
        }
    }

    private func sendDirect(_ bytes: [UInt8], to destination: SocketAddress) {
        if (try? socket(for: destination).send(bytes, to: destination)) != true { drop("send_failed") }
    }

    /// Through the allocation whose relayed address is `relayed`: ChannelData once the peer's channel
    /// is bound (the relay's kernel path carries it); before that the allocation holds it and sends the
    /// ChannelBind, and the relay's answer releases it.
    private func sendThroughRelay(_ bytes: [UInt8], relayed: SocketAddress, to peer: SocketAddress, now: Date) {
        guard let server = allocations.first(where: { $0.value.relayed == relayed })?.key else { return drop("relay_gone") }
        var requests: [[UInt8]] = []
        let wrapped = allocations[server]!.wrap(bytes, for: peer, now: now, requests: &requests)
        for request in requests { sendDirect(request, to: server) }
        switch wrapped {
        case let .frame(framed): sendDirect(framed, to: server)
        case .held: break
        case .unavailable: drop("relay_unavailable")
        }
        if !requests.isEmpty { timersDue = now }
    }

    private func relayName(of relayed: SocketAddress) -> String? {
        allocations.first { $0.value.relayed == relayed }.flatMap { relayNames[$0.key] }
    }

    /// A fresh establishment of the way to a gateway (its pair is gone).
    private func restartICE(key: [UInt8], ufrag: String, reason: String, now: Date) {
        guard gateways[key] != nil else { return }
        gateways[key]!.status.pair = nil
        gateways[key]!.status.relay = nil
        gateways[key]!.status.restarts += 1
        gateways[key]!.iceRetryDue = nil  // this establishment is the retry (or supersedes it)
        ice.restart(ufrag: ufrag)
        timersDue = now
        onEvent(.pathLost(gateway: gateways[key]!.id, reason: reason))
        // The gateway checks its pairs again when it hears the candidates again: its NAT may have
        // forgotten the way in for pairs it checked long ago.
        announceCandidates(ufrag: ufrag)
    }

    /// Every local candidate, trickled (again) to the gateway of the agent with local ufrag `ufrag`.
    private func announceCandidates(ufrag: String) {
        guard let (flow, gateway) = iceFlows[ufrag], !ice.localCandidates.isEmpty else { return }
        onEvent(.candidates(flow: flow, gateway: gateway, ice.localCandidates.map(\.sdp)))
    }

    private func updateRelays(_ list: [RelayServer], now: Date) {
        let wanted = Set(list.map(\.address))
        for server in Array(allocations.keys) where !wanted.contains(server) {
            if let relayed = allocations[server]!.relayed {
                forgetRelayed(relayed, of: server, reason: "relay \(relayNames[server] ?? server.description) is gone", now: now)
            }
            release(server)
            allocations[server] = nil
            relayNames[server] = nil
        }
        for relay in list {
            relayNames[relay.address] = relay.name
            if allocations[relay.address] != nil {
                allocations[relay.address]!.renew(username: relay.username, password: relay.password)
                continue
            }
            var allocation = RelayAllocation(server: relay.address, username: relay.username, password: relay.password)
            for request in allocation.start(now: now) { sendDirect(request, to: relay.address) }
            allocations[relay.address] = allocation
        }
        timersDue = now
    }

    /// A relayed candidate that is no more: ICE stops using it, and gateways reached through it find
    /// another way.
    private func forgetRelayed(_ relayed: SocketAddress, of server: SocketAddress, reason: String, now: Date) {
        ice.removeLocalCandidate(ice.localCandidates.first { $0.kind == .relayed && $0.address == relayed }
                                 ?? ICECandidate(kind: .relayed, address: relayed))
        for (key, state) in gateways where state.status.pair?.local.address == relayed {
            if let ufrag = state.iceUfrag { restartICE(key: key, ufrag: ufrag, reason: reason, now: now) }
        }
    }

    /// Deletes every allocation on its relay (the client is stopping, or leaving these sockets): a relay
    /// keeps one it is not told about for its whole lifetime, and refuses (437) a new Allocate from the
    /// same address and port meanwhile.
    private func releaseAllocations() {
        for server in Array(allocations.keys) { release(server) }
    }

    /// Sends the allocation's release to its relay: best effort and uncounted (the relay may be gone, and
    /// so may the socket's address).
    private func release(_ server: SocketAddress) {
        for request in allocations[server]!.release() { _ = try? socket(for: server).send(request, to: server) }
    }

    /// What an allocation said: requests to send, a relayed candidate, data from a peer through it.
    private func relayResult(_ result: (send: [[UInt8]], events: [RelayAllocation.Event]), from server: SocketAddress, now: Date) {
        for request in result.send { sendDirect(request, to: server) }
        for event in result.events {
            switch event {
            case let .allocated(relayed, mapped):
                let candidate = ICECandidate(kind: .relayed, address: relayed, base: mapped, server: server)
                performICE(ice.addLocalCandidate(ICECandidate(foundation: candidate.foundation, priority: candidate.priority, address: relayed,
                                                              kind: .relayed, related: mapped)), now: now)
                timersDue = now
            case let .failed(reason, lost, retryIn):
                drop("relay_allocation_failed")
                let name = relayNames[server] ?? server.description
                if let lost { forgetRelayed(lost, of: server, reason: "relay \(name) lost the allocation", now: now) }
                onEvent(.relayUnavailable(relay: name, reason: reason, retryIn: retryIn))
                timersDue = now
            case let .data(payload, peer):
                // As if it came from `peer` to the relayed candidate.
                guard let relayed = allocations[server]?.relayed else { continue }
                switch DatagramKind(payload) {
                case .stun:
                    let base = ice.localCandidates.first { $0.kind == .relayed && $0.address == relayed }
                        ?? ICECandidate(kind: .relayed, address: relayed)
                    if let outputs = ice.receive(payload, at: base, from: peer, now: now) { performICE(outputs, now: now) } else { drop("stun_unknown") }
                case .wireGuard:
                    handle(payload, from: peer, now: now)
                default:
                    drop("malformed")
                }
            }
        }
    }

    // MARK: Network changes

    /// Links and addresses that changed: anything but this tunnel's own device and loopback (where the
    /// DNS stub's addresses come and go) makes a rebind a second later.
    private func readNetlink(_ fd: Int32) {
        var indexes = [Int32](repeating: 0, count: 64)
        let count = gatehouse_netlink_changes(fd, &indexes, 64)
        guard count > 0 else { return }
        let own = Int32(if_nametoindex(tun.name))
        if indexes.prefix(Int(count)).contains(where: { $0 != own && $0 != 1 && $0 != 0 }) {
            networkChangeDue = Date().addingTimeInterval(1)
            timersDue = min(timersDue, networkChangeDue!)
        }
    }

    /// This host's addresses (never the tunnel device's) at the ports of the sockets of their family.
    private func hostCandidates() -> [ICECandidate] {
        let ports = Dictionary(sockets.map { ($0.localAddress.isIPv6, $0.localPort) }, uniquingKeysWith: { first, _ in first })
        return ICECandidate.hosts(HostAddresses.list(excludingInterfaces: [tun.name]).compactMap { ip in
            ports[ip.bitWidth == 128].map { SocketAddress(ip: ip, port: $0) }
        })
    }

    /// New sockets (new ports), new host candidates, new allocations on the same relays, and a fresh
    /// establishment to every gateway; the WireGuard sessions carry on over the new pairs.
    private func rebind(reason: String, now: Date) {
        networkChangeDue = nil
        var fresh: [UDPSocket] = []
        for old in sockets {
            do {
                fresh.append(try UDPSocket.tunnelEndpoint(bindTo: SocketAddress(old.localAddress.isIPv6 ? "::" : "0.0.0.0", port: 0)))
            } catch {
                drop("rebind_failed")
            }
        }
        guard !fresh.isEmpty else { return }
        releaseAllocations()  // from the old sockets, whose address and port the relays know
        for old in sockets { loop.remove(old.fileDescriptor) }
        sockets = fresh
        for socket in sockets {
            try? loop.add(socket.fileDescriptor)
            socket.enableReceiveCoalescing()
        }
        performICE(ice.resetLocalCandidates(hostCandidates()), now: now)
        allocations.removeAll()
        updateRelays(relayList, now: now)
        performICE(ice.gather(from: relayList.map(\.address), now: now), now: now)
        for (key, state) in gateways {
            if let ufrag = state.iceUfrag { restartICE(key: key, ufrag: ufrag, reason: "the network changed", now: now) }
        }
        timersDue = now
        onEvent(.networkChanged(reason: reason, ports: sockets.map(\.localPort)))
    }

    // MARK: Timers

    /// Handshake retries, keepalives, and packets that waited too long for a flow; when to come back.
    private func runTimers() -> Date {
        let now = Date()
        if let due = networkChangeDue, due <= now { rebind(reason: "addresses or links changed", now: now) }
        if ice.nextDeadline <= now { performICE(ice.poll(now: now), now: now) }
        var next = min(now.addingTimeInterval(1), ice.nextDeadline)
        if let due = networkChangeDue { next = min(next, due) }
        for server in Array(allocations.keys) where allocations[server]!.nextDeadline <= now {
            relayResult(allocations[server]!.poll(now: now), from: server, now: now)
        }
        for allocation in allocations.values { next = min(next, allocation.nextDeadline) }
        for key in Array(gateways.keys) {
            if let due = gateways[key]!.iceRetryDue, let ufrag = gateways[key]!.iceUfrag {
                if due <= now {
                    let wait = gateways[key]!.iceRetryWait ?? Limits.iceRetryFirst
                    restartICE(key: key, ufrag: ufrag, reason: "no pair answered in the last establishment (tried again after \(Int(wait)) s)", now: now)
                } else {
                    next = min(next, due)
                }
            }
            let outputs = gateways[key]!.peer.tick(now: now)
            if !outputs.isEmpty { perform(outputs, key: key, now: now) }
            if let deadline = gateways[key]?.peer.nextDeadline() { next = min(next, deadline) }
            if let state = gateways[key], state.status.established, !state.peer.hasSession(now: now) {
                gateways[key]!.status.established = false
            }
        }
        for (resource, state) in flows {
            guard case let .pending(since, held) = state else { continue }
            if now.timeIntervalSince(since) >= Limits.flowWait {
                for packet in held { refuse(packet, reason: .unreachable) }
                flows[resource] = .refused(until: now.addingTimeInterval(Limits.refusalMemory), reason: .unreachable)
            } else {
                next = min(next, since.addingTimeInterval(Limits.flowWait))
            }
        }
        return next
    }
}

/// Session indexes for the client's handshakes (random start, then counting).
final class IndexCounter: Sendable {
    private let value = Atomic<UInt32>(UInt32.random(in: 1...UInt32.max / 2))
    func next() -> UInt32 { value.add(1, ordering: .relaxed).newValue }
}
