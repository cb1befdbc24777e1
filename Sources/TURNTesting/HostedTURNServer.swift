package import Addresses
package import STUN
package import TURN

/// The whole TURN server in one value, for tests and fuzzing: the front door (`TURNServer`) with every
/// allocation's session run inline, in arrival order, instead of in an actor each as the relay runs
/// them. It performs what the shell would between the two (relayed sockets open at once unless the
/// test says a port cannot bind; sessions' permissions and frees go back to the front door) and passes
/// every command on, so tests see exactly what a shell would be asked to do.
package struct HostedTURNServer<Codec: TURNCodec, Random: RandomNumberGenerator & Sendable>: Sendable {
    package typealias FrontDoor = TURNServer<Codec, Random>
    package typealias Configuration = FrontDoor.Configuration
    package typealias FiveTuple = TURNFiveTuple

    package private(set) var frontDoor: FrontDoor
    private var sessions: [FiveTuple: AllocationSession<Codec>] = [:]
    private var random: Random
    /// Ports the "host" refuses to bind (taken by another program), so that tests can see the front
    /// door try another port or answer 508.
    package var unbindablePorts: Set<UInt16> = []

    package init(configuration: Configuration, codec: Codec, random: Random) {
        frontDoor = FrontDoor(configuration: configuration, codec: codec, random: random)
        self.random = random
    }

    package var configuration: Configuration { frontDoor.configuration }
    package var allocationCount: Int { frontDoor.allocationCount }
    package var nonceCount: Int { frontDoor.nonceCount }
    package var reservationCount: Int { frontDoor.reservationCount }
    package var portsInUse: Int { frontDoor.portsInUse }
    package var droppedPeerDatagrams: Int { frontDoor.droppedPeerDatagrams }

    /// Every route the data paths should hold now.
    package func activeRoutes(now: TURNTime) -> [ChannelRoute] {
        sessions.values.flatMap { $0.allocation.activeRoutes(now: now) }
    }

    /// The earliest moment the front door or a session wants `handleTimeout`.
    package var nextDeadline: Duration {
        sessions.values.reduce(frontDoor.nextDeadline) { min($0, $1.nextDeadline) }
    }

    package mutating func handleClientDatagram(
        _ bytes: UnsafeRawBufferPointer, from client: SocketAddress, to listener: SocketAddress, now: TURNTime,
        into commands: inout [TURNCommand]
    ) {
        var emitted: [TURNCommand] = []
        frontDoor.handleClientDatagram(bytes, from: client, to: listener, now: now, into: &emitted)
        settle(emitted, now: now, into: &commands)
    }

    package mutating func handlePeerDatagram(
        _ bytes: UnsafeRawBufferPointer, from peer: SocketAddress, to relayed: SocketAddress, now: TURNTime,
        into commands: inout [TURNCommand]
    ) {
        var emitted: [TURNCommand] = []
        frontDoor.handlePeerDatagram(bytes, from: peer, to: relayed, now: now, into: &emitted)
        settle(emitted, now: now, into: &commands)
    }

    package mutating func handleTimeout(now: TURNTime, into commands: inout [TURNCommand]) {
        var emitted: [TURNCommand] = []
        frontDoor.handleTimeout(now: now, into: &emitted)
        for (tuple, var session) in sessions {
            let outcome = session.handleTimeout(now: now, into: &emitted)
            finish(tuple, session, outcome)
        }
        settle(emitted, now: now, into: &commands)
    }

    /// Passes every command on, doing the shell's part in between: opening sockets (and reporting it),
    /// handing sessions' permissions back, and running the work the front door dispatched.
    private mutating func settle(_ emitted: [TURNCommand], now: TURNTime, into commands: inout [TURNCommand]) {
        var queue = emitted
        var index = 0
        while true {
            while index < queue.count {
                let command = queue[index]
                index += 1
                commands.append(command)
                switch command {
                case let .openRelayedSockets(addresses, tuple):
                    let bound = !addresses.contains { unbindablePorts.contains($0.port) }
                    frontDoor.relayedSocketsOpened(for: tuple, success: bound, now: now, into: &queue)
                case let .setPermissions(permissions, tuple):
                    frontDoor.updatePermissions(permissions, for: tuple)
                case .sendToClient, .sendToPeer, .closeRelayedSocket, .installChannelRoute, .removeChannelRoute:
                    break
                }
            }
            let dispatched = frontDoor.takeDispatched()
            if dispatched.isEmpty { return }
            for item in dispatched { run(item, now: now, into: &queue) }
        }
    }

    private mutating func run(_ item: FrontDoor.Dispatch, now: TURNTime, into commands: inout [TURNCommand]) {
        switch item {
        case let .created(tuple, session):
            sessions[tuple] = session
        case let .work(tuple, work):
            guard var session = sessions[tuple] else { return }
            let outcome = session.perform(work, now: now, random: &random, into: &commands) { _, _ in }
            finish(tuple, session, outcome)
        }
    }

    private mutating func finish(_ tuple: FiveTuple, _ session: AllocationSession<Codec>, _ outcome: AllocationSession<Codec>.Outcome) {
        switch outcome {
        case .active:
            sessions[tuple] = session
        case .freed:
            sessions[tuple] = nil
            frontDoor.sessionFreed(tuple)
        }
    }
}
