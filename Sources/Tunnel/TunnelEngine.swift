package import Actors
package import Addresses
package import Foundation
package import ICE
import Synchronization
package import WireGuard

/// The WireGuard data plane (gateway spec, "WireGuard"): one thread runs a readiness loop over the
/// UDP sockets (IPv4, and IPv6 where the host has it) and a queue of the TUN device and drives every
/// peer's state inline, with no actor hop per packet. Control (who may connect, with which keys and tunnel addresses) comes from any thread
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
        /// What the peer may reach, checked on every packet each way; nil: no check here (the kernel's
        /// TC program still judges what enters the TUN).
        package var rules: AccessRules?
        /// Who the flows of the rules belong to, for the flow log (indexed by the rules' labels), and
        /// the label of what no rule holds.
        package var labels: [FlowLabel]
        package var unlabelled: FlowLabel
        /// DNS proxy address → the real address it stands for (gateway spec, "DNS resources").
        package var translations: [SocketAddress.IP: SocketAddress.IP]
        /// Proxy addresses whose name has no address of their family: answered "unreachable" (the
        /// client's application tries the other family), not "prohibited" (the client would ask again).
        package var withoutAddress: Set<SocketAddress.IP>

        package init(publicKey: [UInt8], presharedKey: [UInt8], addresses: [SocketAddress.IP], rules: AccessRules? = nil,
                     labels: [FlowLabel] = [], unlabelled: FlowLabel = FlowLabel(client: ""),
                     translations: [SocketAddress.IP: SocketAddress.IP] = [:], withoutAddress: Set<SocketAddress.IP> = []) {
            self.publicKey = publicKey
            self.presharedKey = presharedKey
            self.addresses = addresses
            self.rules = rules
            self.labels = labels
            self.unlabelled = unlabelled
            self.translations = translations
            self.withoutAddress = withoutAddress
        }
    }

    /// Counters the operations endpoints read.
    package struct Counters: Sendable, Equatable {
        package var handshakes = 0
        package var packetsIn = 0
        package var bytesIn = 0
        package var packetsOut = 0
        package var bytesOut = 0
        /// What was dropped, by reason.
        package var dropped: [WireGuardDrop: Int] = [:]
        /// Cookie replies sent instead of handshakes while under load.
        package var cookieReplies = 0
        /// Peers authorised now.
        package var peers = 0
        /// Flows ended and handed to the flow log, by verdict.
        package var flowsAllowed = 0
        package var flowsRefused = 0
        /// DNS proxy translations in use (one per flow to a proxy address), and those that ended idle.
        package var natEntries = 0
        package var natExpired = 0
        /// Writes into the TUN the device refused (its queue full, or a packet it would not take).
        package var tunWriteErrors = 0
        /// ICE: pairs selected, agents whose every pair failed, STUN datagrams no agent took.
        package var iceSelected = 0
        package var iceFailed = 0
        package var iceDropped = 0

        package init() {}

        package func dropped(_ reason: WireGuardDrop) -> Int { dropped[reason] ?? 0 }
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
    /// The sockets WireGuard listens on, one per address family.
    private let sockets: [UDPSocket]
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

    // Owned by the loop's thread. Peers live in slots; the maps point at slots.
    private var slots: [PeerState?] = []
    private var freeSlots: [Int] = []
    private var slotByKey: [[UInt8]: Int] = [:]
    private var byIndex: [UInt32: Int] = [:]
    private var byAddress: [SocketAddress.IP: Int] = [:]
    private var lastReindex = Date()
    /// When the peers' timers are looked at next: their earliest deadline, at least once a second (a
    /// deadline made while packets pass is never sooner than REKEY-TIMEOUT away), so that a turn of the
    /// loop does not walk every peer.
    private var timersDue = Date()
    /// Datagrams in (several per entry when the kernel coalesced them), and data messages out, batched.
    private let received = DatagramBatch(capacity: 64, datagramCapacity: 65_536)
    private let outbox: Outbox
    /// Where a packet read from the TUN lands, and where a super-packet's segments are made.
    private let packetBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNetHeader.size + 65_536, alignment: 16)
    private let segmentBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    /// Packets out of tunnels into the TUN (joined into super-packets where the device takes them).
    private let writer: TUNWriter
    /// The flow log, and the flows going on (a 5-tuple per peer slot), kept only when there is a log.
    private let flowLog: FlowLog?
    private var flows: [FlowKey: FlowState] = [:]
    /// The DNS proxy NAT: per flow from a client to a proxy address, the real address it went to (keyed
    /// with the proxy address as the resource), and the way back (keyed with the real address).
    private var natOut: [FlowKey: (real: SocketAddress.IP, last: Date)] = [:]
    private var natIn: [FlowKey: SocketAddress.IP] = [:]
    private var lastNATSweep = Date()
    /// How long a translation may be idle, when not the spec's (tests make it short).
    private let natIdleOverride: TimeInterval?
    private var finished: [FlowRecord] = []
    private var lastFlowSweep = Date()
    private let stoppedRunning = DispatchSemaphore(value: 0)
    /// ICE (gateway controlled): an agent per flow, owned by the client's public key, on the WireGuard
    /// sockets; what it trickles goes to `onCandidates` (local ufrag, candidates) from the loop's thread.
    private var ice = ICESessions<[UInt8]>()
    /// When the agents' timers are due next (see `applyICE`).
    private var iceDue = Date.distantFuture
    private let iceCommands = Mutex<[ICECommand]>([])
    private let onCandidates = Mutex<(@Sendable (String, [ICECandidate]) -> Void)?>(nil)

    private enum ICECommand {
        case hosts([ICECandidate])
        case gather([SocketAddress])
        case start(client: [UInt8], local: ICEAgent.Credentials, remote: ICEAgent.Credentials)
        case remote(ufrag: String, [ICECandidate])
    }

    private struct FlowKey: Hashable {
        var slot: Int
        var protocolNumber: UInt8
        var client: SocketAddress.IP
        var clientPort: UInt16
        var resource: SocketAddress.IP
        var resourcePort: UInt16
    }

    private struct FlowState {
        var record: FlowRecord
        var last: Date
        var finFromClient = false
        var finFromResource = false
    }

    /// How long a flow may be idle before it ends in the log: refused 5-tuples are gathered for 10 s,
    /// TCP for two hours, the rest for two minutes.
    static func idleLimit(protocolNumber: UInt8, refused: Bool) -> TimeInterval {
        refused ? 10 : protocolNumber == 6 ? 7200 : 120
    }

    /// How long a DNS proxy translation may be idle: TCP about two hours, UDP and ICMP two minutes.
    package static func natIdleLimit(protocolNumber: UInt8) -> TimeInterval {
        protocolNumber == 6 ? 7200 : 120
    }

    package convenience init(tun: TUNDevice, socket: UDPSocket, local: StaticKey, flowLog: FlowLog? = nil) throws(SocketError) {
        try self.init(tun: tun, sockets: [socket], local: local, flowLog: flowLog)
    }

    /// Listens on `sockets` (at most one per address family: replies leave by the one of their
    /// destination's family).
    /// `natIdleLimit`: how long a DNS proxy translation may be idle, in place of the spec's (for tests).
    package init(tun: TUNDevice, sockets: [UDPSocket], local: StaticKey, flowLog: FlowLog? = nil,
                 natIdleLimit: TimeInterval? = nil) throws(SocketError) {
        precondition(!sockets.isEmpty)
        natIdleOverride = natIdleLimit
        self.flowLog = flowLog
        self.tun = tun
        self.sockets = sockets
        self.local = local
        cookies = CookieResponder(local: local.publicKey, now: Date())
        writer = TUNWriter(tun: tun)
        loop = try EventLoop()
        outbox = Outbox { destination in sockets.first { $0.localAddress.isIPv6 == destination.isIPv6 } ?? sockets[0] }
        for socket in sockets {
            try loop.add(socket.fileDescriptor)
            socket.enableReceiveCoalescing()
        }
        try loop.add(tun.fileDescriptor)
    }

    deinit {
        packetBuffer.deallocate()
        segmentBuffer.deallocate()
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

    // MARK: ICE (any thread)

    /// Where the local candidates of each flow's agent go (to be trickled through the portal).
    package func onICECandidates(_ handler: @escaping @Sendable (String, [ICECandidate]) -> Void) {
        onCandidates.withLock { $0 = handler }
    }

    /// The host candidates (this host's addresses at the WireGuard port).
    package func setHostCandidates(_ candidates: [ICECandidate]) { iceCommand(.hosts(candidates)) }
    /// Learns server-reflexive candidates from these STUN servers (the relays).
    package func gatherCandidates(from servers: [SocketAddress]) { iceCommand(.gather(servers)) }
    /// An agent for a flow of `client` (controlled), named by the gateway's ufrag `local.ufrag`.
    package func startICE(client: [UInt8], local: ICEAgent.Credentials, remote: ICEAgent.Credentials) {
        iceCommand(.start(client: client, local: local, remote: remote))
    }
    /// The client's candidates for the flow whose gateway ufrag is `ufrag`.
    package func addRemoteCandidates(_ candidates: [ICECandidate], ufrag: String) { iceCommand(.remote(ufrag: ufrag, candidates)) }

    private func iceCommand(_ command: ICECommand) {
        iceCommands.withLock { $0.append(command) }
        loop.wake()
    }

    /// Commands from control, and the agents' timers when due; `iceDue` is worked out again only
    /// after the agents changed (the loop reads it every turn: walking every agent each turn would
    /// put the number of flows on the hot path).
    private func applyICE(now: Date) {
        let commands = iceCommands.withLock { commands in defer { commands = [] }; return commands }
        guard !commands.isEmpty || iceDue <= now else { return }
        for command in commands {
            switch command {
            case let .hosts(candidates): performICE(ice.setHostCandidates(candidates))
            case let .gather(servers): performICE(ice.gather(from: servers, now: now))
            case let .start(client, local, remote):
                guard ice.sessions[local.ufrag] == nil else { continue }
                performICE(ice.add(owner: client, controlling: false, local: local, remote: remote))
            case let .remote(ufrag, candidates): ice.addRemote(candidates, ufrag: ufrag)
            }
        }
        if ice.nextDeadline <= now { performICE(ice.poll(now: now)) }
        iceDue = ice.nextDeadline
    }

    private func performICE(_ outputs: [ICESessions<[UInt8]>.Output]) {
        var trickled: [String: [ICECandidate]] = [:]
        for output in outputs {
            switch output {
            case let .send(bytes, _, destination):
                _ = try? socket(for: destination).send(bytes, to: destination)
            case let .candidate(candidate, ufrag):
                trickled[ufrag, default: []].append(candidate)
            case let .selected(pair, owner):
                // The client's data goes over the pair ICE chose (roaming moves it again as data comes).
                if let slot = slotByKey[owner] { slots[slot]?.endpoint = pair.remote.address }
                tally.iceSelected += 1
            case .failed:
                tally.iceFailed += 1
            case .lost:
                break  // only controlling agents (clients) check their pair: WireGuard roaming follows the client
            }
        }
        if !trickled.isEmpty, let handler = onCandidates.withLock({ $0 }) {
            for (ufrag, candidates) in trickled { handler(ufrag, candidates) }
        }
    }

    /// The host candidate a datagram to `socket` arrived at.
    private func iceBase(_ socket: UDPSocket) -> ICECandidate {
        ice.localCandidates.first { $0.kind == .host && $0.address.isIPv6 == socket.localAddress.isIPv6 }
            ?? ICECandidate(kind: .host, address: socket.localAddress)
    }

    /// The UDP port WireGuard listens on.
    package var port: UInt16 { sockets[0].localPort }

    /// Runs the loop on the calling thread until `stop()`.
    package func run() {
        while !stopped.load(ordering: .relaxed) {
            applyPending()
            publish()
            let timeout = max(0, min(timersDue.timeIntervalSinceNow, 1))
            let iceTimeout = max(0, iceDue.timeIntervalSinceNow)
            let ready = (try? loop.wait(timeout: .milliseconds(Int64(min(timeout, iceTimeout) * 1000) + 1))) ?? []
            applyICE(now: Date())
            for socket in sockets where ready.contains(socket.fileDescriptor) { readDatagrams(from: socket) }
            if ready.contains(tun.fileDescriptor) { readPackets() }
            if timersDue.timeIntervalSinceNow <= 0 { runTimers() }
        }
        // What is going on ends here: the log gets it all.
        let now = Date()
        for key in Array(flows.keys) { finishFlow(key, reason: "shutdown", now: now) }
        handOverFinished()
        flowLog?.flush()
        publish()
        stoppedRunning.signal()
    }

    /// Stops the loop and waits until it has handed every flow to the log (call once, from another
    /// thread than the loop's, after `run()` started).
    package func stopAndWait() {
        stop()
        stoppedRunning.wait()
    }

    private func publish() {
        tally.peers = slotByKey.count
        tally.natEntries = natOut.count
        tally.tunWriteErrors = writer.dropped
        let published = tally
        counters.withLock { $0 = published }
    }

    package func stop() {
        stopped.store(true, ordering: .relaxed)
        loop.wake()
    }

    private func count(_ reason: WireGuardDrop) {
        tally.dropped[reason, default: 0] += 1
    }

    private func applyPending() {
        let changes = pending.withLock { changes in defer { changes = [] }; return changes }
        for change in changes {
            if let authorization = change.authorization {
                if let slot = slotByKey[change.key] {
                    slots[slot]!.authorization = authorization
                } else {
                    let source = indexes
                    let state = PeerState(
                        peer: Peer(local: local, remoteStatic: authorization.publicKey, presharedKey: authorization.presharedKey,
                                   newIndex: { source.next() }),
                        authorization: authorization)
                    if let slot = freeSlots.popLast() {
                        slots[slot] = state
                        slotByKey[change.key] = slot
                    } else {
                        slots.append(state)
                        slotByKey[change.key] = slots.count - 1
                    }
                }
            } else if let slot = slotByKey.removeValue(forKey: change.key) {
                ice.remove(owner: change.key)
                iceDue = min(iceDue, Date())  // worked out again at the next turn
                let now = Date()
                for key in flows.keys where key.slot == slot { finishFlow(key, reason: "revoked", now: now) }
                natOut = natOut.filter { $0.key.slot != slot }
                natIn = natIn.filter { $0.key.slot != slot }
                slots[slot] = nil
                freeSlots.append(slot)
            }
        }
        if !changes.isEmpty { reindex() }
    }

    private func reindex() {
        byIndex = [:]
        byAddress = [:]
        for (slot, state) in slots.enumerated() {
            guard let state else { continue }
            for index in state.peer.indexes { byIndex[index] = slot }
            for address in state.authorization.addresses { byAddress[address] = slot }
        }
    }

    // MARK: From the network

    /// The socket that sends to `destination`.
    private func socket(for destination: SocketAddress) -> UDPSocket {
        sockets.first { $0.localAddress.isIPv6 == destination.isIPv6 } ?? sockets[0]
    }

    private func readDatagrams(from socket: UDPSocket) {
        guard let count = try? socket.receive(into: received), count > 0 else { return }
        let now = Date()
        for entry in 0..<count {
            guard let source = received.address(entry) else { continue }
            received.forEachDatagram(entry) { datagram in
                if CheckMessage.isSTUN(datagram) {
                    // A check or a Binding answer for ICE, on the WireGuard socket.
                    if let outputs = ice.receive(Array(datagram), at: iceBase(socket), from: source, now: now) {
                        performICE(outputs)
                        iceDue = ice.nextDeadline
                    } else {
                        tally.iceDropped += 1
                    }
                    return
                }
                handle(UnsafeMutableRawBufferPointer(mutating: datagram), from: source, now: now)
            }
        }
        writer.flush()
        flushOutbox()
    }

    private func handle(_ datagram: UnsafeMutableRawBufferPointer, from source: SocketAddress, now: Date) {
        guard datagram.count >= 4, datagram[1] == 0, datagram[2] == 0, datagram[3] == 0 else { return count(.malformed) }
        let type = datagram[0]
        guard type == 4 else { return handleControl(Array(datagram), type: type, from: source, now: now) }
        // Transport data, the hot path: opened in place, straight into the TUN.
        guard datagram.count >= 32 else { return count(.malformed) }
        let index = UInt32(littleEndian: datagram.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard let slot = byIndex[index], slots[slot] != nil else { return count(.unknownSession) }
        var owed: [PeerOutput] = []
        let range: Range<Int>
        do {
            range = try slots[slot]!.peer.open(inPlace: datagram, now: now, outputs: &owed)
        } catch {
            return count(error)
        }
        slots[slot]!.endpoint = source
        if !owed.isEmpty { perform(owed, slot: slot) }
        guard !range.isEmpty else { return }  // a keepalive
        deliver(UnsafeMutableRawBufferPointer(rebasing: datagram[range]), slot: slot, hasRoomInFront: true)
    }

    /// A packet out of a peer's tunnel into the TUN: only from one of the peer's own addresses.
    /// `hasRoomInFront`: the bytes before it (the WireGuard header it came under) may be overwritten.
    private func deliver(_ padded: UnsafeMutableRawBufferPointer, slot: Int, hasRoomInFront: Bool) {
        guard let (length, source) = Self.packetLength(UnsafeRawBufferPointer(padded)), slots[slot]!.authorization.addresses.contains(source) else {
            return count(.spoofed)
        }
        let writable = UnsafeMutableRawBufferPointer(rebasing: padded[..<length])
        let packet = UnsafeRawBufferPointer(writable)
        let rules = slots[slot]!.authorization.rules
        let header = rules != nil || flowLog != nil || !slots[slot]!.authorization.translations.isEmpty ? PacketHeader(packet) : nil
        if let rules {
            guard let header else { return count(.filtered) }
            if let refusal = rules.refusal(outbound: header) {
                // Refused: the client hears so through its tunnel (it may ask the portal again), and
                // the packet goes no further.
                count(refusal)
                noteOutbound(header, bytes: packet.count, slot: slot, refusal: refusal)
                if let reply = AdministrativelyProhibited.reply(to: packet) { sendThroughTunnel(reply, slot: slot, now: Date()) }
                return
            }
        }
        if let header, AddressTranslation.isProxyAddress(header.destination) {
            // To a DNS resource's proxy address: on to the real address it stands for.
            guard let real = translate(header, slot: slot) else {
                count(.unresolved)
                noteOutbound(header, bytes: packet.count, slot: slot, refusal: .unresolved)
                let reply = slots[slot]!.authorization.withoutAddress.contains(header.destination)
                    ? ICMPUnreachable.reply(to: packet, reason: .unreachable) : AdministrativelyProhibited.reply(to: packet)
                if let reply { sendThroughTunnel(reply, slot: slot, now: Date()) }
                return
            }
            noteOutbound(header, bytes: packet.count, slot: slot, refusal: nil, real: real)
            AddressTranslation.rewrite(writable, source: false, to: real)
        } else if let header {
            noteOutbound(header, bytes: packet.count, slot: slot, refusal: nil)
        }
        if hasRoomInFront {
            writer.write(packet)
        } else {
            writer.flush()
            _ = try? tun.write(Array(packet))
        }
        tally.packetsIn += 1
        tally.bytesIn += length
    }

    /// Handshake messages and cookie replies (rare: arrays are fine here).
    private func handleControl(_ datagram: [UInt8], type: UInt8, from source: SocketAddress, now: Date) {
        if type == 1 || type == 2 {
            guard datagram.count == (type == 1 ? Handshake.initiationSize : Handshake.responseSize) else { return count(.malformed) }
            guard Handshake.hasValidMAC1(datagram, to: local.publicKey) else { return count(.badMAC) }
            if now.timeIntervalSince(handshakeWindow.start) >= 1 { handshakeWindow = (now, 0) }
            handshakeWindow.count += 1
            // Under load, only a source that proves it owns its address (MAC2 with our cookie) costs DH work.
            if handshakeWindow.count > Self.loadThreshold {
                let sourceBytes = Self.cookieSource(source)
                if !cookies.hasValidMAC2(datagram, from: sourceBytes, now: now) {
                    if let reply = cookies.reply(to: datagram, from: sourceBytes, now: now) {
                        _ = try? socket(for: source).send(reply, to: source)
                        tally.cookieReplies += 1
                    }
                    return
                }
            }
        }
        switch type {
        case 1:
            var stranger = false
            guard let response = Handshake.respond(to: datagram, local: local, localIndex: indexes.next(), presharedKey: { [slots, slotByKey] key in
                guard let slot = slotByKey[key] else {
                    stranger = true
                    return nil
                }
                return slots[slot]?.authorization.presharedKey
            }) else { return count(stranger ? .unknownKey : .invalidHandshake) }
            guard let slot = slotByKey[response.initiatorStatic] else { return count(.unknownKey) }
            let outputs = slots[slot]!.peer.accept(response, now: now)
            if outputs.contains(where: { if case .datagram = $0 { true } else { false } }) {
                slots[slot]!.endpoint = source
                tally.handshakes += 1
            }
            perform(outputs, slot: slot)
        case 2, 3:
            let index = Handshake.readLE32(datagram, at: type == 2 ? 8 : 4)
            guard let slot = byIndex[index], slots[slot] != nil else { return count(.unknownSession) }
            let outputs = slots[slot]!.peer.receive(datagram, now: now)
            if type == 2, outputs.contains(where: { if case .datagram = $0 { true } else { false } }) { slots[slot]!.endpoint = source }
            perform(outputs, slot: slot)
        default:
            count(.malformed)
        }
    }

    // MARK: From the TUN

    private func readPackets() {
        let now = Date()
        for _ in 0..<64 {
            guard let length = try? tun.read(into: packetBuffer), length > 0 else { break }
            let read = UnsafeMutableRawBufferPointer(rebasing: packetBuffer[..<length])
            let packet = UnsafeRawBufferPointer(rebasing: read[(tun.offload ? VirtioNetHeader.size : 0)...])
            // Judged once per read: a super-packet's segments share its addresses and ports.
            guard let (slot, header, translation) = admit(packet, now: now) else { continue }
            var segments = 0
            var bytes = 0
            if tun.offload {
                // A super-packet comes out as its segments, each sealed on its own.
                let cut = Offload.forEachPacket(in: read, scratch: segmentBuffer) { segment in
                    segments += 1
                    bytes += segment.count
                    if let translation { Self.untranslate(UnsafeMutableRawBufferPointer(mutating: segment), translation) }
                    sendThroughTunnel(segment, slot: slot, now: now)
                }
                if !cut { count(.malformed) }
            } else {
                segments = 1
                bytes = packet.count
                if let translation { Self.untranslate(UnsafeMutableRawBufferPointer(mutating: packet), translation) }
                sendThroughTunnel(packet, slot: slot, now: now)
            }
            tally.packetsOut += segments
            tally.bytesOut += bytes
            noteInbound(header, slot: slot, packets: segments, bytes: bytes, now: now)
        }
        flushOutbox()
    }

    /// The peer a packet from the TUN is for, when it may have it: its destination one of the peer's
    /// tunnel addresses, and (where there are rules) from what the client may reach.
    /// A reply through the DNS proxy NAT is judged (and logged) as coming from the proxy address the
    /// client used; `translation` says what to rewrite.
    private func admit(_ packet: UnsafeRawBufferPointer, now: Date)
        -> (slot: Int, header: PacketHeader, translation: (real: SocketAddress.IP, proxy: SocketAddress.IP, isError: Bool)?)? {
        guard var header = PacketHeader(packet), let slot = byAddress[header.destination], slots[slot] != nil else {
            count(.noPeer)
            return nil
        }
        var translation: (real: SocketAddress.IP, proxy: SocketAddress.IP, isError: Bool)?
        if !natIn.isEmpty {
            if header.isICMPError, let range = AddressTranslation.quoted(in: packet),
               let quoted = PacketHeader(UnsafeRawBufferPointer(rebasing: packet[range])) {
                // An error about a packet the client sent through the NAT: it is about the proxy address.
                let key = FlowKey(slot: slot, protocolNumber: quoted.protocolNumber, client: quoted.source, clientPort: quoted.sourcePort,
                                  resource: quoted.destination, resourcePort: quoted.destinationPort)
                if let proxy = natIn[key] {
                    translation = (quoted.destination, proxy, true)
                    if header.source == quoted.destination { header.source = proxy }
                }
            } else {
                let key = FlowKey(slot: slot, protocolNumber: header.protocolNumber, client: header.destination, clientPort: header.destinationPort,
                                  resource: header.source, resourcePort: header.sourcePort)
                if let proxy = natIn[key] {
                    translation = (header.source, proxy, false)
                    let outward = FlowKey(slot: slot, protocolNumber: key.protocolNumber, client: key.client, clientPort: key.clientPort,
                                          resource: proxy, resourcePort: key.resourcePort)
                    natOut[outward]?.last = now
                    header.source = proxy
                }
            }
        }
        if let refusal = slots[slot]!.authorization.rules?.refusal(inbound: header) {
            count(refusal)
            return nil
        }
        return (slot, header, translation)
    }

    /// The real address a packet to a proxy address goes to: its flow's translation, made now from the
    /// client's translations when the flow is new; nil when no address stands behind the proxy.
    private func translate(_ header: PacketHeader, slot: Int) -> SocketAddress.IP? {
        let key = FlowKey(slot: slot, protocolNumber: header.protocolNumber, client: header.source, clientPort: header.sourcePort,
                          resource: header.destination, resourcePort: header.destinationPort)
        let now = Date()
        if let entry = natOut[key] {
            natOut[key]!.last = now
            return entry.real
        }
        guard let real = slots[slot]!.authorization.translations[header.destination] else { return nil }
        natOut[key] = (real, now)
        natIn[FlowKey(slot: slot, protocolNumber: key.protocolNumber, client: key.client, clientPort: key.clientPort,
                      resource: real, resourcePort: key.resourcePort)] = header.destination
        return real
    }

    /// A packet from a resource back through the DNS proxy NAT: from the proxy address again.
    private static func untranslate(_ packet: UnsafeMutableRawBufferPointer, _ translation: (real: SocketAddress.IP, proxy: SocketAddress.IP, isError: Bool)) {
        if translation.isError {
            AddressTranslation.translateError(packet, real: translation.real, proxy: translation.proxy)
        } else {
            AddressTranslation.rewrite(packet, source: true, to: translation.proxy)
        }
    }

    /// Seals a packet for a peer into the outbox, or has the peer hold it while it makes a handshake.
    private func sendThroughTunnel(_ packet: UnsafeRawBufferPointer, slot: Int, now: Date) {
        if let endpoint = slots[slot]!.endpoint, queue(to: endpoint, size: TransportSession.messageSize(forPacket: packet.count), { message in
            slots[slot]!.peer.seal(packet, into: message, now: now)
        }) {
            return
        }
        perform(slots[slot]!.peer.send(Array(packet), now: now), slot: slot)
    }

    private func sendThroughTunnel(_ packet: [UInt8], slot: Int, now: Date) {
        packet.withUnsafeBytes { sendThroughTunnel($0, slot: slot, now: now) }
    }

    private func queue(to destination: SocketAddress, size: Int, _ write: (UnsafeMutableRawBufferPointer) -> Int?) -> Bool {
        outbox.queue(to: destination, size: size, write)
    }

    private func flushOutbox() { outbox.flush() }

    // MARK: Timers and outputs

    private func runTimers() {
        let now = Date()
        // Indexes of sessions that ended are forgotten now and then (new ones are added as they come).
        if now.timeIntervalSince(lastReindex) > 30 {
            reindex()
            lastReindex = now
        }
        if !natOut.isEmpty, now.timeIntervalSince(lastNATSweep) >= 1 {
            lastNATSweep = now
            for (key, entry) in natOut where now.timeIntervalSince(entry.last) >= natIdleOverride ?? Self.natIdleLimit(protocolNumber: key.protocolNumber) {
                natOut[key] = nil
                natIn[FlowKey(slot: key.slot, protocolNumber: key.protocolNumber, client: key.client, clientPort: key.clientPort,
                              resource: entry.real, resourcePort: key.resourcePort)] = nil
                tally.natExpired += 1
            }
        }
        if flowLog != nil, now.timeIntervalSince(lastFlowSweep) >= 1 {
            lastFlowSweep = now
            for (key, state) in flows where now.timeIntervalSince(state.last) >= Self.idleLimit(protocolNumber: key.protocolNumber,
                                                                                               refused: state.record.verdict == .refused) {
                finishFlow(key, reason: state.record.verdict == .refused ? state.record.reason : "idle", now: now)
            }
            handOverFinished()
        }
        var earliest = now.addingTimeInterval(1)
        for slot in slots.indices {
            guard let deadline = slots[slot]?.peer.nextDeadline() else { continue }
            if deadline <= now {
                perform(slots[slot]!.peer.tick(now: now), slot: slot)
                if let next = slots[slot]?.peer.nextDeadline() { earliest = min(earliest, next) }
            } else {
                earliest = min(earliest, deadline)
            }
        }
        timersDue = earliest
    }

    private func perform(_ outputs: [PeerOutput], slot: Int) {
        guard let state = slots[slot] else { return }
        for output in outputs {
            switch output {
            case let .datagram(bytes):
                if let endpoint = state.endpoint { _ = try? socket(for: endpoint).send(bytes, to: endpoint) }
            case let .packet(bytes):
                var copy = bytes
                copy.withUnsafeMutableBytes { deliver($0, slot: slot, hasRoomInFront: false) }
            case let .dropped(reason):
                count(reason)
            }
        }
        // Handshakes make and drop session indexes.
        for index in state.peer.indexes where byIndex[index] == nil { byIndex[index] = slot }
    }

    // MARK: Flow log

    /// A packet from a client, allowed or refused: its flow starts or goes on.
    private func noteOutbound(_ header: PacketHeader, bytes: Int, slot: Int, refusal: WireGuardDrop?, real: SocketAddress.IP? = nil) {
        guard flowLog != nil else { return }
        let now = Date()
        let key = FlowKey(slot: slot, protocolNumber: header.protocolNumber, client: header.source, clientPort: header.sourcePort,
                          resource: header.destination, resourcePort: header.destinationPort)
        // One lookup per packet: the flow's entry is reached by its index afterwards.
        let index: Dictionary<FlowKey, FlowState>.Index
        if let found = flows.index(forKey: key) {
            index = found
        } else {
            let authorization = slots[slot]!.authorization
            let rule = refusal == .noRule ? -1 : authorization.rules?.label(for: header.destination) ?? -1
            let label = authorization.labels.indices.contains(rule) ? authorization.labels[rule] : authorization.unlabelled
            var state = FlowState(
                record: FlowRecord(label: label, protocolNumber: header.protocolNumber, clientAddress: header.source, clientPort: header.sourcePort,
                                   resourceAddress: header.destination, resourcePort: header.destinationPort, start: now, end: now,
                                   verdict: refusal == nil ? .allowed : .refused, reason: refusal?.rawValue ?? ""),
                last: now)
            if let real {
                state.record.resourceAddress = real
                state.record.proxyAddress = header.destination
            }
            flows[key] = state
            index = flows.index(forKey: key)!
        }
        flows.values[index].record.bytesFromClient += bytes
        flows.values[index].record.packetsFromClient += 1
        flows.values[index].last = now
        if header.tcpFlags & 0x01 != 0 { flows.values[index].finFromClient = true }
        if header.tcpFlags & 0x04 != 0 || flows.values[index].finFromClient && flows.values[index].finFromResource, refusal == nil {
            finishFlow(key, reason: "closed", now: now)
        }
    }

    /// A packet for a client: it counts toward the flow the client began (a resource begins none).
    private func noteInbound(_ header: PacketHeader, slot: Int, packets: Int, bytes: Int, now: Date) {
        guard flowLog != nil else { return }
        let key = FlowKey(slot: slot, protocolNumber: header.protocolNumber, client: header.destination, clientPort: header.destinationPort,
                          resource: header.source, resourcePort: header.sourcePort)
        guard let index = flows.index(forKey: key) else { return }
        flows.values[index].record.bytesToClient += bytes
        flows.values[index].record.packetsToClient += packets
        flows.values[index].last = now
        if header.tcpFlags & 0x01 != 0 { flows.values[index].finFromResource = true }
        if header.tcpFlags & 0x04 != 0 || flows.values[index].finFromClient && flows.values[index].finFromResource { finishFlow(key, reason: "closed", now: now) }
    }

    private func finishFlow(_ key: FlowKey, reason: String, now: Date) {
        guard var state = flows.removeValue(forKey: key) else { return }
        state.record.end = state.record.verdict == .refused ? state.last : now
        if state.record.verdict == .allowed { state.record.reason = reason }
        if state.record.verdict == .allowed { tally.flowsAllowed += 1 } else { tally.flowsRefused += 1 }
        finished.append(state.record)
    }

    private func handOverFinished() {
        guard !finished.isEmpty else { return }
        flowLog?.append(finished)
        finished = []
    }

    /// A source address as cookies take it.
    static func cookieSource(_ source: SocketAddress) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { source.ip.storeZeroPadded(into: $0) }
        let isV4: Bool = if case .v4 = source.ip { true } else { false }
        return CookieResponder.source(address: Array(bytes.prefix(isV4 ? 4 : 16)), port: source.port)
    }

    /// The length of the packet without WireGuard's padding (the IP header's length), and its source
    /// address; nil when it is no IP packet or claims more than it holds.
    /// The length an IP packet's header gives (what follows is padding) and its source.
    package static func packetLength(_ bytes: UnsafeRawBufferPointer) -> (Int, SocketAddress.IP)? {
        guard let first = bytes.first else { return nil }
        switch first >> 4 {
        case 4 where bytes.count >= 20:
            let length = Int(bytes[2]) << 8 | Int(bytes[3])
            guard length >= 20, length <= bytes.count else { return nil }
            return (length, .v4(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self))))
        case 6 where bytes.count >= 40:
            let length = 40 + (Int(bytes[4]) << 8 | Int(bytes[5]))
            guard length <= bytes.count else { return nil }
            return (length, .v6(read64(bytes, 8), read64(bytes, 16)))
        default:
            return nil
        }
    }

    private static func read64(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
        UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

/// Session indexes unique within the engine (the peers draw theirs from it).
final class IndexSource: Sendable {
    private let value = Atomic<UInt32>(UInt32.random(in: 1...1 << 24))
    func next() -> UInt32 { value.add(1, ordering: .relaxed).newValue }
}
