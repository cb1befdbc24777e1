import Actors
import Foundation
import STUN
import Synchronization
import TURN

typealias RelayServer = TURNServer<STUNCodec, SystemRandomNumberGenerator>

/// The relay's clock, shared by the engine and the allocation actors: monotonic time since the relay
/// started, and the wall clock for credential expiry.
struct RelayClock: Sendable {
    let origin = ContinuousClock.now

    func now() -> TURNTime {
        TURNTime(monotonic: ContinuousClock.now - origin, unixSeconds: Int64(Date().timeIntervalSince1970))
    }
}

/// What the allocation actors hand back to the engine's thread: the commands their sessions emitted
/// (sends, route changes, sockets to close), in order, and which allocations are gone. The engine
/// drains it on every turn of its loop; posting wakes the loop.
final class EngineInbox: Sendable {
    struct Event: Sendable {
        var tuple: RelayServer.FiveTuple
        var commands: [TURNCommand]
        var freed: Bool
    }

    private let events = Mutex<[Event]>([])
    private let loop: EventLoop

    init(loop: EventLoop) {
        self.loop = loop
    }

    func post(_ event: Event) {
        events.withLock { $0.append(event) }
        loop.wake()
    }

    func take() -> [Event] {
        events.withLock { events in
            defer { events.removeAll(keepingCapacity: true) }
            return events
        }
    }
}

/// One allocation: its session (the pure state machine of `AllocationSession`: permissions, channels,
/// lifetime) and its timers. The engine hands it the work the front door dispatched, in batches (one per
/// turn of the engine's loop, never an actor hop per packet: bound channels are relayed by the engine's
/// routes or the kernel without reaching the actor), in order through one stream. What the session
/// emits goes back to the engine, which owns the sockets' I/O (epoll, batched sends, the send backlog)
/// and opens and closes the allocation's relayed sockets on its behalf.
actor AllocationActor {
    private var session: AllocationSession<STUNCodec>
    private let tuple: RelayServer.FiveTuple
    private let clock: RelayClock
    private let metrics: RelayMetrics
    private let inbox: EngineInbox
    private var random = SystemRandomNumberGenerator()
    private var timer: Task<Void, Never>?
    private var armedFor: Duration?
    private var freed = false
    private let work: AsyncStream<[RelayServer.SessionWork]>.Continuation

    /// Starts the actor; `deliver` feeds it from then on.
    static func start(
        session: AllocationSession<STUNCodec>, tuple: RelayServer.FiveTuple, clock: RelayClock, metrics: RelayMetrics,
        inbox: EngineInbox
    ) -> AllocationActor {
        // Bounded: a batch that finds the actor this far behind is dropped (and counted by the engine);
        // the clients retransmit their requests, and data is best-effort.
        let (stream, continuation) = AsyncStream<[RelayServer.SessionWork]>.makeStream(
            bufferingPolicy: .bufferingOldest(RelayConfiguration.queuedBatchesPerAllocation))
        let actor = AllocationActor(session: session, tuple: tuple, clock: clock, metrics: metrics, inbox: inbox, work: continuation)
        Task { await actor.run(stream) }
        return actor
    }

    private init(
        session: AllocationSession<STUNCodec>, tuple: RelayServer.FiveTuple, clock: RelayClock, metrics: RelayMetrics,
        inbox: EngineInbox, work: AsyncStream<[RelayServer.SessionWork]>.Continuation
    ) {
        self.session = session
        self.tuple = tuple
        self.clock = clock
        self.metrics = metrics
        self.inbox = inbox
        self.work = work
    }

    /// Hands over a batch of work; callable from the engine's thread. Batches are handled in order.
    /// False when the actor's queue is full and the batch was dropped.
    nonisolated func deliver(_ batch: [RelayServer.SessionWork]) -> Bool {
        switch work.yield(batch) {
        case .enqueued: true
        case .dropped, .terminated: false
        @unknown default: false
        }
    }

    private func run(_ stream: AsyncStream<[RelayServer.SessionWork]>) async {
        arm()
        for await batch in stream {
            handle(batch)
            if freed { break }
        }
        timer?.cancel()
    }

    private func handle(_ batch: [RelayServer.SessionWork]) {
        var commands: [TURNCommand] = []
        var outcome = AllocationSession<STUNCodec>.Outcome.active
        let now = clock.now()
        let metrics = self.metrics
        for item in batch {
            outcome = session.perform(item, now: now, random: &random, into: &commands) { method, code in
                metrics.requests(method: method.metricName, code: code).increment()
            }
            if outcome == .freed { break }
        }
        finish(commands, outcome)
    }

    private func tick() {
        timer = nil
        armedFor = nil
        guard !freed else { return }
        var commands: [TURNCommand] = []
        let outcome = session.handleTimeout(now: clock.now(), into: &commands)
        finish(commands, outcome)
    }

    private func finish(_ commands: [TURNCommand], _ outcome: AllocationSession<STUNCodec>.Outcome) {
        guard !freed else { return }
        if outcome == .freed {
            freed = true
            work.finish()
            timer?.cancel()
        } else {
            arm()
        }
        if !commands.isEmpty || outcome == .freed {
            inbox.post(EngineInbox.Event(tuple: tuple, commands: commands, freed: outcome == .freed))
        }
    }

    /// Wakes for the session's next deadline; a later wake-up already armed is replaced by an earlier
    /// one (a new permission or channel can expire before the allocation does).
    private func arm() {
        let deadline = session.nextDeadline
        if timer != nil, let armedFor, armedFor <= deadline { return }
        timer?.cancel()
        armedFor = deadline
        let delay = max(.zero, deadline - clock.now().monotonic) + .milliseconds(1)
        timer = Task { [weak self] in
            try? await Task.sleep(for: delay)
            guard !Task.isCancelled else { return }
            await self?.tick()
        }
    }
}
