import Actors
import Foundation
import Logging
import STUN
import Synchronization
import TURN

/// The relay's listener and user-space data path, on one dedicated thread: an epoll loop over the
/// listener and relayed sockets that feeds the sans-IO front door (`TURNServer`: decoding,
/// authentication, nonces, quotas, ports, Binding and Allocate) and carries out the commands of the
/// front door and of the allocation actors.
///
/// Each allocation is an `AllocationActor` running its pure `AllocationSession` (permissions,
/// channels, lifetime, Refresh/CreatePermission/ChannelBind, indications, its timers). The front door
/// dispatches an allocation's work; the engine hands it to the actor as one batch per turn of the
/// loop, and performs what the actor sends back (the engine keeps the sockets' I/O: one epoll, batched
/// sends, the send backlog).
///
/// ChannelData, the hot path, never reaches an actor once a channel is bound: the engine keeps the
/// channel routes the sessions install (the same routes the XDP program gets) and forwards by table
/// lookup, reading and writing in batches (recvmmsg/sendmmsg). Reading is fair: one batch per ready
/// socket per turn of the loop, so a flood on one socket cannot starve control traffic on another.
final class RelayEngine: @unchecked Sendable {
    // Everything below is touched only by the engine's thread, except `stopping` and `loop.wake()`.
    private let configuration: RelayConfiguration
    private let metrics: RelayMetrics
    private let logger: Logger
    private let loop: EventLoop
    private var server: TURNServer<STUNCodec, SystemRandomNumberGenerator>
    private let clock = RelayClock()
    private let stopping = Atomic<Bool>(false)

    private struct Listener {
        let socket: UDPSocket
        /// The 5-tuple's server side as the core knows it.
        let address: SocketAddress
    }

    private var listeners: [Int32: Listener] = [:]
    private var listenerByAddress: [SocketAddress: Listener] = [:]
    /// Relayed sockets by descriptor, and by the public relayed address the core uses.
    private var relayed: [Int32: (socket: UDPSocket, address: SocketAddress)] = [:]
    private var relayedByAddress: [SocketAddress: UDPSocket] = [:]

    private struct ClientKey: Hashable {
        var client: SocketAddress
        var channel: UInt16
    }

    private struct PeerKey: Hashable {
        var relayedPort: UInt16
        var peer: SocketAddress
    }

    private var clientRoutes: [ClientKey: (socket: UDPSocket, peer: SocketAddress)] = [:]
    private var peerRoutes: [PeerKey: (socket: UDPSocket, client: SocketAddress, channel: UInt16)] = [:]

    private let receiveBatch = DatagramBatch(capacity: 64, datagramCapacity: 65_535)
    private var sendBatches: [Int32: (socket: UDPSocket, batch: DatagramBatch)] = [:]

    /// Datagrams a full send buffer refused, per socket, oldest first. They go out before anything newer
    /// on that socket once epoll says it is writable again; beyond `backlogLimit` datagrams per socket
    /// the newest are dropped and counted (`gatehouse_relay_dropped_sends_total`).
    private final class Backlog {
        let socket: UDPSocket
        var datagrams: [(destination: SocketAddress, bytes: [UInt8])] = []
        var head = 0
        var bytes = 0
        init(socket: UDPSocket) { self.socket = socket }
        var isEmpty: Bool { head == datagrams.count }
        var count: Int { datagrams.count - head }
    }

    /// At most this many datagrams and bytes wait per socket.
    static let backlogLimit = (datagrams: 4096, bytes: 4 << 20)
    private var backlogs: [Int32: Backlog] = [:]
    private let backlogBatch = DatagramBatch(capacity: 64, datagramCapacity: 65_535)
    private var commands: [TURNCommand] = []
    private var reportedRequests: [TURNServer<STUNCodec, SystemRandomNumberGenerator>.RequestKey: Int] = [:]

    /// The allocation actors by 5-tuple, the work gathered for them during this turn of the loop (handed
    /// over as one batch per actor at its end), and what they send back.
    private var sessions: [RelayServer.FiveTuple: AllocationActor] = [:]
    private var pendingWork: [RelayServer.FiveTuple: [RelayServer.SessionWork]] = [:]
    private let inbox: EngineInbox

    /// The channel routes user space holds, readable from any thread (`/routes`, the XDP tests).
    private let routeSnapshot = Mutex<Set<ChannelRoute>>([])
    /// Where route changes go besides the engine's own tables (the XDP router), in order; set before
    /// `run()`.
    var routeChanges: AsyncStream<RouteChange>.Continuation?

    /// Binds the listeners; throws if a listener cannot bind (the relay then exits with the reason).
    init(configuration: RelayConfiguration, metrics: RelayMetrics, logger: Logger) throws {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        loop = try EventLoop()
        inbox = EngineInbox(loop: loop)
        var serverConfiguration = TURNServer<STUNCodec, SystemRandomNumberGenerator>.Configuration()
        serverConfiguration.realm = configuration.realm
        serverConfiguration.secrets = configuration.authSecrets.map { $0.reveal() }
        serverConfiguration.relayIPv4 = configuration.publicIPv4
        serverConfiguration.relayIPv6 = configuration.publicIPv6
        serverConfiguration.portRange = configuration.portRange
        serverConfiguration.allocationsPerUsername = configuration.allocationsPerUsername
        serverConfiguration.timers = configuration.timers
        // Each allocation's session runs in an actor of its own (`AllocationActor`).
        serverConfiguration.hostsSessions = false
        serverConfiguration.peerPolicy = PeerPolicy(
            allow: try configuration.allowPeers.map { try AddressRange($0) },
            deny: try configuration.denyPeers.map { try AddressRange($0) },
            relayAddresses: Set([configuration.publicIPv4, configuration.publicIPv6].compactMap { $0 }))
        server = TURNServer(configuration: serverConfiguration, codec: STUNCodec(), random: SystemRandomNumberGenerator())

        for ip in [configuration.bindIPv4 ?? configuration.publicIPv4.map { _ in .v4(0) },
                   configuration.bindIPv6 ?? configuration.publicIPv6.map { _ in .v6(0, 0) }].compactMap({ $0 }) {
            let socket = try UDPSocket(bindTo: SocketAddress(ip: ip, port: configuration.listenPort), receiveBufferBytes: 4 << 20)
            try loop.add(socket.fileDescriptor)
            let listener = Listener(socket: socket, address: socket.localAddress)
            listeners[socket.fileDescriptor] = listener
            listenerByAddress[listener.address] = listener
        }
    }

    /// The addresses the listeners are bound to.
    var listenerAddresses: [SocketAddress] { listeners.values.map(\.address) }

    /// The channel routes user space relays by (every active channel binding).
    var routes: Set<ChannelRoute> { routeSnapshot.withLock { $0 } }

    /// Runs the loop on the calling thread until `stop()`.
    func run() {
        while !stopping.load(ordering: .relaxed) {
            do {
                try turn()
            } catch {
                // A failed system call on one turn (a vanished socket, ENOBUFS) must not stop the relay.
                logger.error("relay loop error", metadata: ["error": "\(error)"])
            }
        }
        for (_, entry) in relayed { loop.remove(entry.socket.fileDescriptor) }
        relayed.removeAll()
        relayedByAddress.removeAll()
    }

    /// Makes `run()` return soon; callable from any thread.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        loop.wake()
    }

    private func now() -> TURNTime { clock.now() }

    private func turn() throws {
        var timeout: Duration = .seconds(1)
        if let deadline = server.nextDeadline {
            timeout = max(.zero, min(timeout, deadline - now().monotonic))
        }
        let ready = try loop.wait(timeout: timeout)
        takeFromActors()
        for fd in ready {
            if backlogs[fd] != nil { drainBacklog(fd) }
            if let listener = listeners[fd] {
                try readClients(listener)
            } else if let entry = relayed[fd] {
                try readPeers(entry.socket, relayedAddress: entry.address)
            }
        }
        let current = now()
        if let deadline = server.nextDeadline, deadline <= current.monotonic {
            server.handleTimeout(now: current, into: &commands)
        }
        perform()
        collectDispatched()
        deliverToActors()
        flush()
        reportMetrics()
    }

    /// Sessions the front door created this turn get an actor (their relayed sockets are open: the
    /// front door's commands were performed datagram by datagram); the work it dispatched is grouped
    /// per allocation, in arrival order.
    private func collectDispatched() {
        for item in server.takeDispatched() {
            switch item {
            case let .created(tuple, session):
                sessions[tuple] = AllocationActor.start(session: session, tuple: tuple, clock: clock, metrics: metrics, inbox: inbox)
            case let .work(tuple, work):
                pendingWork[tuple, default: []].append(work)
            }
        }
    }

    /// One batch per allocation actor per turn.
    private func deliverToActors() {
        guard !pendingWork.isEmpty else { return }
        for (tuple, batch) in pendingWork {
            sessions[tuple]?.deliver(batch)
        }
        pendingWork.removeAll(keepingCapacity: true)
    }

    /// Carries out what the actors' sessions emitted, and forgets the allocations they freed.
    private func takeFromActors() {
        for event in inbox.take() {
            commands.append(contentsOf: event.commands)
            perform()
            if event.freed {
                server.sessionFreed(event.tuple)
                sessions[event.tuple] = nil
                pendingWork[event.tuple] = nil
            }
        }
    }

    private func readClients(_ listener: Listener) throws {
        let count = try listener.socket.receive(into: receiveBatch)
        guard count > 0 else { return }
        let current = now()
        for index in 0..<count {
            guard let client = receiveBatch.address(index) else { continue }
            let bytes = receiveBatch.payload(index)
            if let first = bytes.first, first & 0xC0 == 0x40, bytes.count >= 4 {  // ChannelData: 0x40-0x7F
                let channel = UInt16(first) << 8 | UInt16(bytes[1])
                let length = Int(UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
                if let route = clientRoutes[ClientKey(client: client, channel: channel)],
                   bytes.count == 4 + length || bytes.count == 4 + ((length + 3) & ~3) {
                    enqueue(UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + length)]), on: route.socket, to: route.peer)
                    metrics.userSpacePackets.increment()
                    metrics.userSpaceBytes.increment(by: Int64(length))
                    continue
                }
            }
            server.handleClientDatagram(bytes, from: client, to: listener.address, now: current, into: &commands)
            perform()
        }
    }

    private func readPeers(_ socket: UDPSocket, relayedAddress: SocketAddress) throws {
        let count = try socket.receive(into: receiveBatch)
        guard count > 0 else { return }
        let current = now()
        for index in 0..<count {
            guard let peer = receiveBatch.address(index) else { continue }
            let bytes = receiveBatch.payload(index)
            if let route = peerRoutes[PeerKey(relayedPort: relayedAddress.port, peer: peer)] {
                let length = bytes.count
                enqueue(on: route.socket, to: route.client) { buffer in
                    guard buffer.count >= 4 + length else { return 0 }
                    buffer[0] = UInt8(route.channel >> 8)
                    buffer[1] = UInt8(route.channel & 0xFF)
                    buffer[2] = UInt8(length >> 8)
                    buffer[3] = UInt8(length & 0xFF)
                    UnsafeMutableRawBufferPointer(rebasing: buffer[4..<(4 + length)]).copyMemory(from: bytes)
                    return 4 + length
                }
                metrics.userSpacePackets.increment()
                metrics.userSpaceBytes.increment(by: Int64(length))
                continue
            }
            server.handlePeerDatagram(bytes, from: peer, to: relayedAddress, now: current, into: &commands)
            perform()
        }
    }

    /// Carries out the core's commands, in order.
    private func perform() {
        guard !commands.isEmpty else { return }
        for command in commands {
            switch command {
            case let .sendToClient(bytes, client, listener):
                guard let socket = listenerByAddress[listener]?.socket else { continue }
                bytes.withUnsafeBytes { enqueue($0, on: socket, to: client) }
                if bytes.count >= 20 && bytes[0] == 0x00 && bytes[1] == 0x17 {  // a Data indication: relayed data
                    metrics.userSpacePackets.increment()
                    metrics.userSpaceBytes.increment(by: Int64(bytes.count))
                }
            case let .sendToPeer(bytes, peer, relayedAddress):
                guard let socket = relayedByAddress[relayedAddress] else { continue }
                bytes.withUnsafeBytes { enqueue($0, on: socket, to: peer) }
                metrics.userSpacePackets.increment()
                metrics.userSpaceBytes.increment(by: Int64(bytes.count))
            case let .openRelayedSocket(address):
                openRelayed(address)
            case let .closeRelayedSocket(address):
                guard let socket = relayedByAddress.removeValue(forKey: address) else { continue }
                flush(socket.fileDescriptor)
                loop.remove(socket.fileDescriptor)
                relayed[socket.fileDescriptor] = nil
                sendBatches[socket.fileDescriptor] = nil
                if let backlog = backlogs.removeValue(forKey: socket.fileDescriptor) {
                    metrics.droppedSends.increment(by: Int64(backlog.count))  // its allocation is gone
                }
            case let .installChannelRoute(route):
                guard let socket = relayedByAddress[route.relayed], let listener = listenerByAddress[route.listener] else { continue }
                clientRoutes[ClientKey(client: route.client, channel: route.channel)] = (socket, route.peer)
                peerRoutes[PeerKey(relayedPort: route.relayed.port, peer: route.peer)] = (listener.socket, route.client, route.channel)
                routeSnapshot.withLock { _ = $0.insert(route) }
                routeChanges?.yield(.install(route))
            case let .removeChannelRoute(route):
                clientRoutes[ClientKey(client: route.client, channel: route.channel)] = nil
                peerRoutes[PeerKey(relayedPort: route.relayed.port, peer: route.peer)] = nil
                routeSnapshot.withLock { _ = $0.remove(route) }
                routeChanges?.yield(.remove(route))
            }
        }
        commands.removeAll(keepingCapacity: true)
    }

    private func openRelayed(_ address: SocketAddress) {
        let bindIP: SocketAddress.IP = address.isIPv6 ? (configuration.bindIPv6 ?? .v6(0, 0)) : (configuration.bindIPv4 ?? .v4(0))
        do {
            let socket = try UDPSocket(bindTo: SocketAddress(ip: bindIP, port: address.port), receiveBufferBytes: 1 << 20)
            try loop.add(socket.fileDescriptor)
            relayed[socket.fileDescriptor] = (socket, address)
            relayedByAddress[address] = socket
        } catch {
            // The port was free in our table but taken on the host: the allocation cannot relay.
            logger.error("cannot open relayed port", metadata: ["relayed_address": "\(address)", "error": "\(error)"])
        }
    }

    private func enqueue(_ bytes: UnsafeRawBufferPointer, on socket: UDPSocket, to destination: SocketAddress) {
        enqueue(on: socket, to: destination) { buffer in
            guard bytes.count <= buffer.count else { return 0 }
            buffer.copyMemory(from: bytes)
            return bytes.count
        }
    }

    private func enqueue(on socket: UDPSocket, to destination: SocketAddress, _ write: (UnsafeMutableRawBufferPointer) -> Int) {
        let fd = socket.fileDescriptor
        if sendBatches[fd] == nil { sendBatches[fd] = (socket, DatagramBatch(capacity: 64, datagramCapacity: 65_535)) }
        guard let entry = sendBatches[fd] else { return }
        if entry.batch.count == entry.batch.capacity { flush(fd) }
        entry.batch.append(to: destination, write)
    }

    private func flush() {
        for fd in sendBatches.keys { flush(fd) }
    }

    /// Sends what is queued for one socket. What a full send buffer refuses waits in the socket's
    /// backlog (bounded), and everything newer queues behind it, so a socket's datagrams stay in order.
    private func flush(_ fd: Int32) {
        guard let entry = sendBatches[fd], entry.batch.count > 0 else { return }
        defer { entry.batch.removeAll() }
        if let backlog = backlogs[fd] {
            drainBacklog(fd)
            if !backlog.isEmpty {
                keep(entry.batch, from: 0, in: backlog)
                return
            }
        }
        let queued = entry.batch.count
        let sent: Int
        do {
            sent = try entry.socket.send(entry.batch)
        } catch {
            // Not a full buffer but a failing socket: nothing to wait for.
            metrics.droppedSends.increment(by: Int64(queued))
            return
        }
        if sent < queued {
            let backlog = Backlog(socket: entry.socket)
            backlogs[fd] = backlog
            keep(entry.batch, from: sent, in: backlog)
            loop.watchWritable(fd, true)
        }
    }

    /// Copies the unsent datagrams of `batch` into `backlog`, dropping (and counting) what exceeds the bound.
    private func keep(_ batch: DatagramBatch, from first: Int, in backlog: Backlog) {
        for index in first..<batch.count {
            let bytes = batch.outgoing(index)
            guard backlog.count < Self.backlogLimit.datagrams, backlog.bytes + bytes.count <= Self.backlogLimit.bytes,
                  let destination = batch.address(index) else {
                metrics.droppedSends.increment()
                continue
            }
            backlog.datagrams.append((destination, Array(bytes)))
            backlog.bytes += bytes.count
        }
    }

    /// Sends what a socket's backlog holds, oldest first, until the buffer is full again or the backlog
    /// is empty (then the socket is no longer watched for writability).
    private func drainBacklog(_ fd: Int32) {
        guard let backlog = backlogs[fd] else { return }
        let batch = backlogBatch
        while !backlog.isEmpty {
            batch.removeAll()
            var index = backlog.head
            while index < backlog.datagrams.count, batch.count < batch.capacity {
                let datagram = backlog.datagrams[index]
                datagram.bytes.withUnsafeBytes { _ = batch.append($0, to: datagram.destination) }
                index += 1
            }
            let sent: Int
            do {
                sent = try backlog.socket.send(batch)
            } catch {
                metrics.droppedSends.increment(by: Int64(batch.count))
                sent = batch.count
            }
            for index in backlog.head..<(backlog.head + sent) { backlog.bytes -= backlog.datagrams[index].bytes.count }
            backlog.head += sent
            if sent < batch.count { break }  // full again: wait for the next writable event
        }
        if backlog.isEmpty {
            backlogs[fd] = nil
            loop.watchWritable(fd, false)
        } else if backlog.head > 1024 {
            backlog.datagrams.removeFirst(backlog.head)
            backlog.head = 0
        }
    }

    private var nextGaugeUpdate: Duration = .zero

    private func reportMetrics() {
        metrics.allocations.set(Int64(server.allocationCount))
        // Channels are the engine's routes; permissions are what the actors last reported. Once a second.
        let current = now()
        if current.monotonic >= nextGaugeUpdate {
            nextGaugeUpdate = current.monotonic + .seconds(1)
            metrics.channels.set(Int64(clientRoutes.count))
            metrics.permissions.set(Int64(inbox.permissionCount))
        }
        for (key, value) in server.requests where reportedRequests[key] != value {
            metrics.requests(method: key.method, code: key.code).increment(by: Int64(value - reportedRequests[key, default: 0]))
            reportedRequests[key] = value
        }
    }
}
