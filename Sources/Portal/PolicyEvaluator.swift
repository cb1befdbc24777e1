package import Actors
import Addresses
package import Foundation
package import Persistence
package import Identifiers
package import Policy

/// The portal's policy evaluator: answers "may this actor (on this client) reach this resource, until
/// when, and why" (portal spec, "Policy evaluation" and "Explaining access"), and runs every admin
/// change so that it can tell who must be told what ("Live changes").
///
/// It keeps each account's `AccessView` in memory, read from the database the first time the account
/// is seen (the portal's expiry service does so for every account at start). Changes of one account
/// are serialised here, in arrival order; changes of different accounts proceed side by side. The rows
/// a change commits reach the view through an `AccessChangeRecorder`, in commit order, and the view
/// re-evaluates only the clients they can affect; what it says must be told is published to
/// subscribers (the realtime API) and returned, and revoked authorisations are deleted. A write the
/// recorder did not see (`PortalRepository.takeUnrecordedWrites`) makes the evaluator read the account
/// again and tell the difference of the two, so the database stays the source of truth.
package actor PolicyEvaluator {
    private let repository: any PortalRepository
    /// Accounts with a change in progress, and the changes waiting for their turn, per account.
    private var changing: Set<AccountID> = []
    private var waiting: [AccountID: [CheckedContinuation<Void, Never>]] = [:]
    private var subscribers: [UUID: AsyncStream<AccessNotification>.Continuation] = [:]
    private var updateSubscribers: [UUID: AsyncStream<AccessUpdate>.Continuation] = [:]
    package nonisolated let clock: any WallClock
    /// Each account's view, as of its last change.
    private var views: [AccountID: AccessView] = [:]
    /// Per account: the next instant time alone may change its access (none when nothing runs out).
    private var deadlines: [AccountID: Date] = [:]
    /// `runExpiries()`'s wait for the earliest deadline, cut short when an earlier one appears.
    private var sleeper: (task: Task<Void, any Error>, until: Date?)?

    package init(repository: any PortalRepository, clock: any WallClock = SystemWallClock()) {
        self.repository = repository
        self.clock = clock
    }

    /// Evaluates `actor`'s access to a resource, as `client` if one is given (its source address and
    /// verified flag feed the conditions; its token's expiry bounds the authorisation).
    package func evaluate(accountID: AccountID, actor: ActorRecord, resource: ResourceID, client: DeviceRecord?, tokenExpiry: Date?, now: Date)
        async throws -> AccessEvaluation
    {
        let inputs = if let view = views[accountID] {
            view.evaluationInputs(actor: actor.id, resource: resource)
        } else {
            try await repository.evaluationInputs(accountID: accountID, actor: actor.id, resource: resource)
        }
        let policies = inputs.policies
        let names = inputs.groupNames
        var memberOf = inputs.memberOf
        // Everyone implicitly holds every user and admin, never a service account.
        if actor.type != .serviceAccount, let everyone = inputs.everyone { memberOf.insert(everyone) }
        let context = ConditionContext(
            sourceAddress: client?.lastSeenAddress.flatMap { try? SocketAddress($0, port: 0).ip }, clientVerified: client?.verified, now: now)
        let outcomes = policies.map { policy in
            AccessEvaluation.PolicyOutcome(
                policyID: policy.id, groupName: names[policy.groupID] ?? policy.groupID.description, disabled: policy.disabled,
                groupContainsActor: !actor.disabled && memberOf.contains(policy.groupID),
                // Conditions that no longer parse become one that never holds: never access on a guess.
                conditions: (try? PolicyConditions.decode(policy.conditions)) ?? [.sourceIn([])], context: context)
        }
        return AccessEvaluation.evaluate(policies: outcomes, tokenExpiry: tokenExpiry)
    }

    /// The notifications of every change from now on.
    package func subscribe() -> AsyncStream<AccessNotification> {
        let (stream, continuation) = AsyncStream<AccessNotification>.makeStream(bufferingPolicy: .bufferingNewest(100_000))
        let id = UUID()
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(id) }
        }
        return stream
    }

    /// Each account change from now on, with its notifications and the account's view after it.
    package func subscribeUpdates() -> AsyncStream<AccessUpdate> {
        let (stream, continuation) = AsyncStream<AccessUpdate>.makeStream(bufferingPolicy: .unbounded)
        let id = UUID()
        updateSubscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(id) }
        }
        return stream
    }

    private func unsubscribe(_ id: UUID) {
        subscribers[id] = nil
        updateSubscribers[id] = nil
    }

    /// A change in progress: its recorder, and what time alone changed since the account's last change.
    package struct PendingChange: Sendable {
        fileprivate let accountID: AccountID
        package let recorder: AccessChangeRecorder
        fileprivate let elapsed: [AccessNotification]
    }

    /// Waits for the account's earlier changes to finish and brings its view up to `now` (reading it
    /// from the database if this is the account's first change, or if something wrote to it unseen).
    package nonisolated func begin(accountID: AccountID, now: Date) async throws -> PendingChange {
        await acquire(accountID)
        do {
            let elapsed = try await settle(accountID, changes: [], now: now)
            return PendingChange(accountID: accountID, recorder: AccessChangeRecorder(accountID: accountID), elapsed: elapsed)
        } catch {
            await release(accountID)
            throw error
        }
    }

    /// Applies what the change committed to the view, deletes revoked authorisations and publishes the
    /// notifications; returns those the change caused.
    package nonisolated func finish(_ change: PendingChange, now: Date) async throws -> [AccessNotification] {
        do {
            let notifications = try await settle(change.accountID, changes: change.recorder.take(), now: now)
            await release(change.accountID)
            return notifications
        } catch {
            await release(change.accountID)
            throw error
        }
    }

    /// Takes `changes` (and time up to `now`) into the account's view, then deletes what they revoked,
    /// publishes and returns the notifications. The caller holds the account's turn.
    private nonisolated func settle(_ accountID: AccountID, changes: [AccessChange], now: Date) async throws -> [AccessNotification] {
        var result: (notifications: [AccessNotification], revoked: [AuthorizationID])
        var replaced = false
        if await views[accountID] == nil {
            _ = repository.takeUnrecordedWrites(accountID: accountID)  // the read below sees those writes
            let data = try await repository.accessData(accountID: accountID)
            await install(accountID, AccessView(data, now: now))
            // Rows of policies deleted before a restart, their gateways told or not (a gateway's `init`
            // after the restart lists only what stands).
            result = ([], data.authorizationsWithoutPolicy)
        } else if repository.takeUnrecordedWrites(accountID: accountID) {
            replaced = true
            let data = try await repository.accessData(accountID: accountID)
            result = await replace(accountID, with: data, now: now)
            let revoked = Set(result.revoked)
            result.revoked += data.authorizationsWithoutPolicy.filter { !revoked.contains($0) }
        } else {
            result = await apply(changes, to: accountID, now: now)
        }
        // Told first: the view already counts revoked authorisations as gone; deleting their rows is
        // bookkeeping (those a cascade already took are not asked for again).
        let standingChanged = replaced || changes.contains { change in
            switch change {
            case .token, .actor, .device, .site: true
            default: false
            }
        }
        let receipt = await publish(accountID, result.notifications, changed: replaced || !changes.isEmpty || !result.revoked.isEmpty,
                                    standingChanged: standingChanged)
        // After the devices online were sent what they must be told (a second at most): even finding
        // the rows to delete would compete with the telling for the processor.
        if !result.revoked.isEmpty { await receipt?.wait(atMost: .seconds(1)) }
        let remaining = await stillRecorded(accountID, result.revoked)
        if !remaining.isEmpty {
            let recorder = AccessChangeRecorder(accountID: accountID)
            try await AccessChangeRecorder.$current.withValue(recorder) {
                _ = try await repository.deleteAuthorizations(accountID: accountID, remaining)
            }
            _ = await apply(recorder.take(), to: accountID, now: now)
        }
        return result.notifications
    }

    /// Of `ids`, the rows of the authorisations the account's view still holds.
    private func stillRecorded(_ accountID: AccountID, _ ids: [AuthorizationID]) -> [AuthorizationRecord] {
        guard !ids.isEmpty, let view = views[accountID] else { return [] }
        let wanted = Set(ids)
        return view.data.authorizations.filter { wanted.contains($0.id) }
    }

    private func install(_ accountID: AccountID, _ view: AccessView) {
        views[accountID] = view
        record(accountID, nextChange: view.nextChange)
    }

    /// Applies `changes` in order, then moves the view's clock to `now`.
    private func apply(_ changes: [AccessChange], to accountID: AccountID, now: Date) -> (notifications: [AccessNotification], revoked: [AuthorizationID]) {
        // Taken out of the dictionary while it changes, so that the view's storage is not copied.
        guard var view = views.removeValue(forKey: accountID) else { return ([], []) }
        let outcome = view.apply(changes)
        let elapsed = view.advance(to: now)
        install(accountID, view)
        return (outcome.notifications + elapsed.notifications, outcome.revoked + elapsed.revoked)
    }

    /// Replaces the account's view with one read afresh, and says what differs from what the old view
    /// had told (at its own instant, so that what time ran out meanwhile is told and revoked too).
    private func replace(_ accountID: AccountID, with data: AccessData, now: Date) -> (notifications: [AccessNotification], revoked: [AuthorizationID]) {
        let old = views[accountID]
        let view = AccessView(data, now: now)
        install(accountID, view)
        guard let old else { return ([], []) }
        return AccessSnapshot.changes(from: AccessSnapshot(old.data, now: old.now), to: AccessSnapshot(data, now: now))
    }

    /// What a write would change: run as a change of the account, but in a dry run (`DryRun`: its
    /// transactions roll back), with the rows it would have committed applied to a copy of the view.
    /// Nothing is published or deleted. The same path as `change`, so the same notifications.
    package nonisolated func preview<T>(accountID: AccountID, now: (@Sendable () -> Date)? = nil, _ write: () async throws -> T)
        async throws -> (T, AccessPreviewResult)
    {
        let now = now ?? { [clock] in clock.now() }
        let pending = try await begin(accountID: accountID, now: now())
        do {
            let result = try await DryRun.$isActive.withValue(true) {
                try await AccessChangeRecorder.$current.withValue(pending.recorder) { try await write() }
            }
            let preview = await simulate(accountID, pending.recorder.take(), now: now())
            await release(accountID)
            return (result, preview)
        } catch {
            await release(accountID)
            throw error
        }
    }

    private func simulate(_ accountID: AccountID, _ changes: [AccessChange], now: Date) -> AccessPreviewResult {
        guard let before = views[accountID] else { return AccessPreviewResult(notifications: [], before: nil, after: nil) }
        var after = before
        var notifications: [AccessNotification] = []
        notifications += after.apply(changes).notifications
        notifications += after.advance(to: now).notifications
        return AccessPreviewResult(notifications: notifications, before: before, after: after)
    }

    /// The account's view as the evaluator holds it now; nil before its first change.
    package func view(of accountID: AccountID) -> AccessView? {
        views[accountID]
    }

    /// Publishes the notifications; the receipt says when the update's subscribers have handed them on.
    private func publish(_ accountID: AccountID, _ notifications: [AccessNotification], changed: Bool, standingChanged: Bool = false)
        -> DeliveryReceipt?
    {
        for notification in notifications {
            for subscriber in subscribers.values { subscriber.yield(notification) }
        }
        guard changed || !notifications.isEmpty, !updateSubscribers.isEmpty, let view = views[accountID] else { return nil }
        // What the realtime hub needs, copied out: holding the view itself would make the next change
        // copy all of it.
        var resources: [ResourceID: ResourceRecord] = [:]
        for notification in notifications {
            switch notification {
            case let .resourceUpdated(_, resource), let .resourceCreatedOrUpdated(_, resource): resources[resource] = view.data.resources[resource]
            case .rejectAccess, .resourceDeleted: break
            }
        }
        let standing = standingChanged ? DeviceStanding(view) : nil
        let receipt = DeliveryReceipt(subscribers: updateSubscribers.count)
        let update = AccessUpdate(accountID: accountID, notifications: notifications, resources: resources, standing: standing, receipt: receipt)
        for subscriber in updateSubscribers.values {
            if case .terminated = subscriber.yield(update) { receipt.sealed() }
        }
        return receipt
    }

    /// What time alone changed up to `now` (tokens, authorisations and time windows that ran out,
    /// windows that opened).
    package func expire(accountID: AccountID, at now: Date) async throws -> [AccessNotification] {
        let pending = try await begin(accountID: accountID, now: now)
        return try await pending.elapsed + finish(pending, now: now)
    }

    /// Notes when time next changes an account; wakes `runExpiries()` if that is sooner than what it
    /// waits for.
    private func record(_ accountID: AccountID, nextChange: Date?) {
        deadlines[accountID] = nextChange
        if let nextChange, let sleeper, sleeper.until.map({ nextChange < $0 }) ?? true { sleeper.task.cancel() }
    }

    /// The earliest deadline of any account.
    private func earliestDeadline() -> Date? {
        deadlines.values.min()
    }

    /// Keeps `task` as the current wait, unless a deadline sooner than `until` came meanwhile.
    private func wait(_ task: Task<Void, any Error>, until: Date?) {
        if let earliest = deadlines.values.min(), until.map({ earliest < $0 }) ?? true { task.cancel() }
        sleeper = (task, until)
    }

    /// The accounts whose deadline has come.
    private func due(at now: Date) -> [AccountID] {
        let accounts = deadlines.filter { $0.value <= now }.map(\.key)
        for account in accounts { deadlines[account] = nil }
        return accounts
    }

    /// Evaluates every account when time changes what it grants, for as long as the task runs (the
    /// portal runs it as a service). It starts by reading every account's view, which gives each its
    /// deadline; `loaded` is told how many accounts when that is done.
    package nonisolated func runExpiries(loaded: (@Sendable (Int) -> Void)? = nil) async throws {
        let start = clock.now()
        let accounts = try await repository.accountIDs()
        for account in accounts {
            _ = try await expire(accountID: account, at: start)
        }
        loaded?(accounts.count)
        while true {
            try Task.checkCancellation()
            let deadline = await earliestDeadline()
            // With nothing due, look again within the hour anyway (a deadline beyond the week a time
            // window is computed over comes closer).
            let until = deadline ?? clock.now().addingTimeInterval(3600)
            let task = Task { [clock] in try await clock.sleep(until: until) }
            await wait(task, until: deadline)
            await withTaskCancellationHandler {
                _ = try? await task.value
            } onCancel: {
                task.cancel()
            }
            try Task.checkCancellation()
            let now = clock.now()
            for account in await due(at: now) {
                _ = try await expire(accountID: account, at: now)
            }
        }
    }

    /// Takes the account's turn, after the changes already waiting for it.
    private func acquire(_ accountID: AccountID) async {
        if changing.contains(accountID) {
            await withCheckedContinuation { waiting[accountID, default: []].append($0) }
        } else {
            changing.insert(accountID)
        }
    }

    private func release(_ accountID: AccountID) {
        guard var queue = waiting[accountID], !queue.isEmpty else {
            changing.remove(accountID)
            return
        }
        let next = queue.removeFirst()
        waiting[accountID] = queue.isEmpty ? nil : queue
        next.resume()  // the next change of this account inherits the turn
    }
}

/// One change of an account as the realtime API takes it: who must be told what, the resources those
/// notifications show, and, when the change touched tokens, actors, devices or sites, what a connected
/// device needs to stay connected.
package struct AccessUpdate: Sendable {
    package var accountID: AccountID
    package var notifications: [AccessNotification]
    package var resources: [ResourceID: ResourceRecord]
    package var standing: DeviceStanding?
    /// To seal once every device was sent its part (`DeliveryReceipt`).
    package var receipt: DeliveryReceipt?
}

/// What keeps a device connected after a change: its row, an unexpired token, and for a client an
/// enabled actor.
package struct DeviceStanding: Sendable {
    package var devices: Set<DeviceID>
    package var tokens: [TokenID: Date?]
    package var disabledActors: Set<ActorID>
    package var actors: Set<ActorID>
    package var now: Date

    init(_ view: AccessView) {
        devices = Set(view.data.clients.map(\.id)).union(view.data.gateways.map(\.id))
        tokens = view.data.tokens.mapValues(\.expiresAt)
        actors = Set(view.data.actors.keys)
        disabledActors = Set(view.data.actors.values.filter(\.disabled).map(\.id))
        now = view.now
    }
}

/// What a dry run found: the notifications the write would cause, and the account's view before and
/// after it (nil when the evaluator had no view).
package struct AccessPreviewResult: Sendable {
    package var notifications: [AccessNotification]
    package var before: AccessView?
    package var after: AccessView?
}

extension PolicyEvaluator {
    /// Runs `write` as one change of the account and returns its result with the notifications. A
    /// write that fails still has what it committed before failing taken into the view.
    package nonisolated func change<T>(accountID: AccountID, now: (@Sendable () -> Date)? = nil, _ write: () async throws -> T)
        async throws -> (T, [AccessNotification])
    {
        let now = now ?? { [clock] in clock.now() }
        let pending = try await begin(accountID: accountID, now: now())
        let result: T
        do {
            result = try await AccessChangeRecorder.$current.withValue(pending.recorder) { try await write() }
        } catch {
            _ = try? await finish(pending, now: now())
            throw error
        }
        return (result, try await finish(pending, now: now()))
    }
}
