import Actors
import Foundation
import Logging
import STUN
import Synchronization
import TURN

/// The relay's event loop, on one dedicated thread: epoll over the listener and relayed sockets. It
/// feeds the sans-IO front door (`TURNServer`: decoding, authentication, nonces, quotas, ports,
/// Binding and Allocate), hands each allocation's work to its `AllocationActor`, and carries out the
/// commands of both. Around it: `ChannelRouteTable` (the hot path: bound channels relayed by table
/// lookup, never reaching an actor), `SendQueue` (batched sends and the bounded backlog), `RelayMetrics`.
///
/// Reading is fair: one batch per ready socket per turn of the loop, so a flood on one socket cannot
/// starve control traffic on another; every queue toward the actors is bounded.
final class RelayEngine: @unchecked Sendable {
    // Everything below is touched only by the engine's thread, except `stopping` and `loop.wake()`.
    private let configuration: RelayConfiguration
    private let metrics: RelayMetrics
    private let logger: Logger
    private let loop: EventLoop
    private var server: RelayServer
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

    private var routes = ChannelRouteTable()
    private let receiveBatch = DatagramBatch(capacity: 64, datagramCapacity: 65_535)
    private let sendQueue: SendQueue
    private var commands: [TURNCommand] = []

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
        let loop = try EventLoop()
        self.loop = loop
        inbox = EngineInbox(loop: loop)
        sendQueue = SendQueue(watchWritable: { fd, writable in loop.watchWritable(fd, writable) })
        server = RelayServer(configuration: try configuration.serverConfiguration(hostAddresses: InterfaceAddresses.host()), codec: STUNCodec(), random: SystemRandomNumberGenerator())

        for ip in [configuration.bindIPv4 ?? configuration.publicIPv4.map { _ in .v4(0) },
                   configuration.bindIPv6 ?? configuration.publicIPv6.map { _ in .v6(0, 0) }].compactMap({ $0 }) {
            let socket = try UDPSocket(bindTo: SocketAddress(ip: ip, port: configuration.listenPort), receiveBufferBytes: 4 << 20)
            socket.enableReceiveCoalescing()
            try loop.add(socket.fileDescriptor)
            let listener = Listener(socket: socket, address: socket.localAddress)
            listeners[socket.fileDescriptor] = listener
            listenerByAddress[listener.address] = listener
        }
    }

    /// The addresses the listeners are bound to.
    var listenerAddresses: [SocketAddress] { listeners.values.map(\.address) }

    /// The channel routes user space relays by (every active channel binding).
    var channelRoutes: Set<ChannelRoute> { routeSnapshot.withLock { $0 } }

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

    private func turn() throws {
        let timeout = max(.zero, min(.seconds(1), server.nextDeadline - clock.now().monotonic))
        let ready = try loop.wait(timeout: timeout)
        takeFromActors()
        for fd in ready {
            if sendQueue.hasBacklog(fd) { sendQueue.writable(fd) }
            if let listener = listeners[fd] {
                try readClients(listener)
            } else if let entry = relayed[fd] {
                try readPeers(entry.socket, relayedAddress: entry.address)
            }
        }
        let now = clock.now()
        if server.nextDeadline <= now.monotonic {
            server.handleTimeout(now: now, into: &commands)
            perform()
        }
        collectDispatched()
        deliverToActors()
        sendQueue.flush()
        reportMetrics(now: now)
    }

    // MARK: Reading

    private func readClients(_ listener: Listener) throws {
        let count = try listener.socket.receive(into: receiveBatch)
        guard count > 0 else { return }
        let now = clock.now()
        for index in 0..<count {
            guard let client = receiveBatch.address(index) else { continue }
            receiveBatch.forEachDatagram(index) { bytes in
                if let frame = ChannelData(bytes), let route = routes.peer(from: client, channel: frame.channel) {
                    sendQueue.enqueue(frame.payload, on: route.socket, to: route.peer)
                    countRelayed(frame.payload.count)
                    return
                }
                server.handleClientDatagram(bytes, from: client, to: listener.address, now: now, into: &commands)
                perform()
            }
        }
    }

    private func readPeers(_ socket: UDPSocket, relayedAddress: SocketAddress) throws {
        let count = try socket.receive(into: receiveBatch)
        guard count > 0 else { return }
        let now = clock.now()
        for index in 0..<count {
            guard let peer = receiveBatch.address(index) else { continue }
            let route = routes.client(from: peer, relayedPort: relayedAddress.port)
            receiveBatch.forEachDatagram(index) { bytes in
                if let route {
                    sendQueue.enqueue(length: ChannelData.headerLength + bytes.count, on: route.socket, to: route.client) { buffer in
                        ChannelData.write(channel: route.channel, payload: bytes, into: buffer)
                    }
                    countRelayed(bytes.count)
                    return
                }
                server.handlePeerDatagram(bytes, from: peer, to: relayedAddress, now: now, into: &commands)
                perform()
            }
        }
    }

    private func countRelayed(_ bytes: Int) {
        metrics.userSpacePackets.increment()
        metrics.userSpaceBytes.increment(by: Int64(bytes))
    }

    // MARK: Sessions

    /// Sessions the front door created get an actor; the work it dispatched is grouped per allocation,
    /// in arrival order, at most `RelayConfiguration.queuedWorkPerAllocation` items a turn (the rest is
    /// dropped and counted: only a flood gets there).
    private func collectDispatched() {
        for item in server.takeDispatched() {
            switch item {
            case let .created(tuple, session):
                sessions[tuple] = AllocationActor.start(session: session, tuple: tuple, clock: clock, metrics: metrics, inbox: inbox)
            case let .work(tuple, work):
                if pendingWork[tuple, default: []].count < RelayConfiguration.queuedWorkPerAllocation {
                    pendingWork[tuple, default: []].append(work)
                } else {
                    metrics.droppedWork.increment()
                }
            }
        }
    }

    /// One batch per allocation actor per turn.
    private func deliverToActors() {
        guard !pendingWork.isEmpty else { return }
        for (tuple, batch) in pendingWork {
            if let actor = sessions[tuple], !actor.deliver(batch) { metrics.droppedWork.increment(by: Int64(batch.count)) }
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

    // MARK: Commands

    /// Carries out the core's commands, in order, including those that answering a command adds (a
    /// relayed socket that would not bind makes the front door try another port).
    private func perform() {
        var index = 0
        while index < commands.count {
            let command = commands[index]
            index += 1
            switch command {
            case let .sendToClient(bytes, client, listener):
                guard let socket = listenerByAddress[listener]?.socket else { continue }
                bytes.withUnsafeBytes { sendQueue.enqueue($0, on: socket, to: client) }
                if STUNCodec.isDataIndication(bytes) { countRelayed(bytes.count) }
            case let .sendToPeer(bytes, peer, relayedAddress):
                guard let socket = relayedByAddress[relayedAddress] else { continue }
                bytes.withUnsafeBytes { sendQueue.enqueue($0, on: socket, to: peer) }
                countRelayed(bytes.count)
            case let .openRelayedSockets(addresses, tuple):
                let opened = openRelayed(addresses)
                server.relayedSocketsOpened(for: tuple, success: opened, now: clock.now(), into: &commands)
            case let .closeRelayedSocket(address):
                closeRelayed(address)
            case let .installChannelRoute(route):
                guard let socket = relayedByAddress[route.relayed], let listener = listenerByAddress[route.listener] else { continue }
                routes.install(route, relayed: socket, listener: listener.socket)
                routeSnapshot.withLock { _ = $0.insert(route) }
                routeChanges?.yield(.install(route))
            case let .removeChannelRoute(route):
                routes.remove(route)
                routeSnapshot.withLock { _ = $0.remove(route) }
                routeChanges?.yield(.remove(route))
            case let .setPermissions(permissions, tuple):
                server.updatePermissions(permissions, for: tuple)
            }
        }
        commands.removeAll(keepingCapacity: true)
    }

    /// Binds a relayed socket on every address (all or none: a dual-stack allocation needs both).
    private func openRelayed(_ addresses: [SocketAddress]) -> Bool {
        var opened: [SocketAddress] = []
        for address in addresses {
            let bindIP: SocketAddress.IP = address.isIPv6 ? (configuration.bindIPv6 ?? .v6(0, 0)) : (configuration.bindIPv4 ?? .v4(0))
            do {
                let socket = try UDPSocket(bindTo: SocketAddress(ip: bindIP, port: address.port), receiveBufferBytes: 1 << 20)
                socket.enableReceiveCoalescing()
                try loop.add(socket.fileDescriptor)
                relayed[socket.fileDescriptor] = (socket, address)
                relayedByAddress[address] = socket
                opened.append(address)
            } catch {
                // Free in our table but taken on the host (another program holds it): try another port.
                logger.warning("cannot open relayed port", metadata: ["relayed_address": "\(address)", "error": "\(error)"])
                metrics.relayedBindFailures.increment()
                for address in opened { closeRelayed(address) }
                return false
            }
        }
        return true
    }

    private func closeRelayed(_ address: SocketAddress) {
        guard let socket = relayedByAddress.removeValue(forKey: address) else { return }
        sendQueue.close(socket.fileDescriptor)
        loop.remove(socket.fileDescriptor)
        relayed[socket.fileDescriptor] = nil
    }

    // MARK: Metrics

    private var nextGaugeUpdate: Duration = .zero
    private var reported = (
        requests: [RelayServer.RequestKey: Int](), drops: SendQueue.Drops(), peerDrops: 0, oversized: 0, reservations: (made: 0, redeemed: 0, expired: 0))

    private func reportMetrics(now: TURNTime) {
        metrics.allocations.set(Int64(server.allocationCount))
        for (key, value) in server.requests where reported.requests[key] != value {
            metrics.requests(method: key.method, code: key.code).increment(by: Int64(value - reported.requests[key, default: 0]))
            reported.requests[key] = value
        }
        let drops = sendQueue.drops
        if drops != reported.drops {
            metrics.droppedSends(.backlogFull).increment(by: Int64(drops.backlogFull - reported.drops.backlogFull))
            metrics.droppedSends(.socketFailed).increment(by: Int64(drops.socketFailed - reported.drops.socketFailed))
            metrics.droppedSends(.tooBig).increment(by: Int64(drops.tooBig - reported.drops.tooBig))
            metrics.droppedSends(.closed).increment(by: Int64(drops.closed - reported.drops.closed))
            reported.drops = drops
        }
        let reservations = server.reservationEvents
        if reservations != reported.reservations {
            metrics.reservations("made").increment(by: Int64(reservations.made - reported.reservations.made))
            metrics.reservations("redeemed").increment(by: Int64(reservations.redeemed - reported.reservations.redeemed))
            metrics.reservations("expired").increment(by: Int64(reservations.expired - reported.reservations.expired))
            reported.reservations = reservations
        }
        if server.droppedOversizedPeerDatagrams != reported.oversized {
            metrics.droppedSends(.tooBig).increment(by: Int64(server.droppedOversizedPeerDatagrams - reported.oversized))
            reported.oversized = server.droppedOversizedPeerDatagrams
        }
        if server.droppedPeerDatagrams != reported.peerDrops {
            metrics.droppedPeerDatagrams.increment(by: Int64(server.droppedPeerDatagrams - reported.peerDrops))
            reported.peerDrops = server.droppedPeerDatagrams
        }
        // Gauges that take a walk over a table: once a second.
        if now.monotonic >= nextGaugeUpdate {
            nextGaugeUpdate = now.monotonic + .seconds(1)
            metrics.channels.set(Int64(routes.count))
            metrics.permissions.set(Int64(server.permissionCount(now: now)))
            metrics.nonces.set(Int64(server.nonceCount))
            metrics.rateLimitedSources.set(Int64(server.rateLimitedSources))
            metrics.backlogged.set(Int64(sendQueue.backlogged))
        }
    }
}
