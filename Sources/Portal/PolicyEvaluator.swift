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
/// Changes of one account are serialised here, in arrival order; changes of different accounts proceed
/// side by side. Each takes a snapshot of what the account's connected clients may reach before and
/// after the write, and the difference is the notifications, published to subscribers (the realtime
/// API) and returned. Revoked authorisations are deleted. Snapshots are read and computed off the
/// actor, so one large account's change does not hold up another's.
package actor PolicyEvaluator {
    private let repository: any PortalRepository
    /// Accounts with a change in progress, and the changes waiting for their turn, per account.
    private var changing: Set<AccountID> = []
    private var waiting: [AccountID: [CheckedContinuation<Void, Never>]] = [:]
    private var subscribers: [UUID: AsyncStream<AccessNotification>.Continuation] = [:]
    package nonisolated let clock: any WallClock
    /// Per account: the instant its access was last evaluated at, and the next instant time alone may
    /// change it (none when nothing runs out, or the account has no devices).
    private var evaluatedAt: [AccountID: Date] = [:]
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
        let inputs = try await repository.evaluationInputs(accountID: accountID, actor: actor.id, resource: resource)
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

    private func unsubscribe(_ id: UUID) {
        subscribers[id] = nil
    }

    /// A change in progress: the snapshot before it (nil when the account has no devices to tell).
    package struct PendingChange: Sendable {
        fileprivate let accountID: AccountID
        fileprivate let before: AccessSnapshot?
    }

    /// Waits for the account's earlier changes to finish and takes the snapshot before this one.
    package nonisolated func begin(accountID: AccountID, now: Date) async throws -> PendingChange {
        await acquire(accountID)
        do {
            guard try await repository.hasDevices(accountID: accountID) else { return PendingChange(accountID: accountID, before: nil) }
            return PendingChange(accountID: accountID, before: try await snapshot(accountID: accountID, now: now))
        } catch {
            await release(accountID)
            throw error
        }
    }

    /// Takes the snapshot after the change, deletes revoked authorisations and publishes the notifications.
    package nonisolated func finish(_ change: PendingChange, now: Date) async throws -> [AccessNotification] {
        do {
            guard let before = change.before else {
                await record(change.accountID, evaluatedAt: now, nextChange: nil)
                await release(change.accountID)
                return []
            }
            let after = try await snapshot(accountID: change.accountID, now: now)
            let (notifications, revoked) = AccessSnapshot.changes(from: before, to: after)
            _ = try await repository.deleteAuthorizations(accountID: change.accountID, ids: revoked)
            await record(change.accountID, evaluatedAt: now, nextChange: after.nextChange)
            await publish(notifications)
            await release(change.accountID)
            return notifications
        } catch {
            await release(change.accountID)
            throw error
        }
    }

    /// Reads the account and computes what its clients may reach, off the actor.
    private nonisolated func snapshot(accountID: AccountID, now: Date) async throws -> AccessSnapshot {
        AccessSnapshot(try await repository.accessData(accountID: accountID), now: now)
    }

    private func publish(_ notifications: [AccessNotification]) {
        for notification in notifications {
            for subscriber in subscribers.values { subscriber.yield(notification) }
        }
    }

    /// What time alone changed between `from` and `to` (tokens, authorisations and time windows that
    /// ran out, windows that opened).
    package func expire(accountID: AccountID, from: Date, to: Date) async throws -> [AccessNotification] {
        let pending = try await begin(accountID: accountID, now: from)
        return try await finish(pending, now: to)
    }

    /// Notes when an account was evaluated and when time next changes it; wakes `runExpiries()` if that
    /// is sooner than what it waits for.
    private func record(_ accountID: AccountID, evaluatedAt instant: Date, nextChange: Date?) {
        evaluatedAt[accountID] = instant
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

    /// The accounts whose deadline has come, with the instant each was last evaluated at.
    private func due(at now: Date) -> [(AccountID, Date)] {
        let accounts = deadlines.filter { $0.value <= now }.map(\.key)
        for account in accounts { deadlines[account] = nil }
        return accounts.map { ($0, evaluatedAt[$0] ?? now) }
    }

    /// Evaluates every account when time changes what it grants, for as long as the task runs (the
    /// portal runs it as a service). It starts with every account once, which gives each its deadline.
    package nonisolated func runExpiries() async throws {
        let start = clock.now()
        for account in try await repository.accountIDs() {
            _ = try await expire(accountID: account, from: start, to: start)
        }
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
            for (account, from) in await due(at: now) {
                _ = try await expire(accountID: account, from: from, to: now)
            }
        }
    }

    /// Ends a change that wrote nothing.
    package func abandon(_ change: PendingChange) {
        release(change.accountID)
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

extension PolicyEvaluator {
    /// Runs `write` as one change of the account and returns its result with the notifications.
    package nonisolated func change<T>(accountID: AccountID, now: (@Sendable () -> Date)? = nil, _ write: () async throws -> T)
        async throws -> (T, [AccessNotification])
    {
        let now = now ?? { [clock] in clock.now() }
        let pending = try await begin(accountID: accountID, now: now())
        let result: T
        do {
            result = try await write()
        } catch {
            await abandon(pending)
            throw error
        }
        return (result, try await finish(pending, now: now()))
    }
}
