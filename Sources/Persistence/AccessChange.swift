package import Foundation
package import Identifiers
import Synchronization

/// One row change of an account, as the evaluator's view takes it: a row before and after (nil before:
/// created; nil after: deleted), a membership added or removed, or the clock moving on. The repository
/// reports each change it commits (see `AccessChangeRecorder`); the schema's cascades are the reader's
/// to apply (`AccessData.apply`).
package enum AccessChange: Sendable {
    case resource(before: ResourceRecord?, after: ResourceRecord?)
    case policy(before: PolicyRecord?, after: PolicyRecord?)
    case group(before: GroupRecord?, after: GroupRecord?)
    case membership(actor: ActorID, group: GroupID, added: Bool)
    case actor(before: ActorRecord?, after: ActorRecord?)
    case device(before: DeviceRecord?, after: DeviceRecord?)
    case token(before: TokenRecord?, after: TokenRecord?)
    case authorization(before: AuthorizationRecord?, after: AuthorizationRecord?)
    case site(deleted: SiteID)
    /// Time alone moved to `to`.
    case clock(to: Date)
}

/// Collects the access changes one account's writes commit, in commit order. The policy evaluator sets
/// one (a task-local) around each change it runs; the repository appends to it after each transaction
/// that commits. A write with no recorder for its account, or for another account, is remembered in
/// the repository's `UnrecordedWrites`, so that the evaluator knows its view of that account missed
/// something and reads the account again: a forgotten path costs a reload, never a stale answer.
package final class AccessChangeRecorder: Sendable {
    @TaskLocal package static var current: AccessChangeRecorder?

    package let accountID: AccountID
    private let changes = Mutex<[AccessChange]>([])

    package init(accountID: AccountID) {
        self.accountID = accountID
    }

    package func append(_ change: AccessChange) {
        changes.withLock { $0.append(change) }
    }

    /// The changes recorded so far, which are then forgotten.
    package func take() -> [AccessChange] {
        changes.withLock { changes in
            defer { changes = [] }
            return changes
        }
    }
}

/// The accounts written to without a recorder since the evaluator last asked.
package final class UnrecordedWrites: Sendable {
    private let accounts = Mutex<Set<AccountID>>([])

    package init() {}

    func insert(_ account: AccountID) {
        _ = accounts.withLock { $0.insert(account) }
    }

    /// Whether `account` was written to without a recorder, and forgets it.
    package func take(_ account: AccountID) -> Bool {
        accounts.withLock { $0.remove(account) != nil }
    }
}

/// A row whose changes the evaluator's view takes (nil: a change that grants or revokes nothing, such
/// as a site's new name).
protocol AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange?
}

extension ResourceRecord: AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange? { .resource(before: before, after: after) }
}

extension PolicyRecord: AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange? { .policy(before: before, after: after) }
}

extension GroupRecord: AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange? { .group(before: before, after: after) }
}

extension ActorRecord: AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange? { .actor(before: before, after: after) }
}

extension DeviceRecord: AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange? { .device(before: before, after: after) }
}

extension TokenRecord: AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange? { .token(before: before, after: after) }
}

extension AuthorizationRecord: AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange? { .authorization(before: before, after: after) }
}

extension SiteRecord: AccessRow {
    static func accessChange(before: Self?, after: Self?) -> AccessChange? {
        guard let before, after == nil else { return nil }
        return .site(deleted: before.id)
    }
}

extension SQLitePortalRepository {
    /// Reports a committed change of `account`'s rows to the recorder of the change in progress.
    func record(_ change: AccessChange?, account: AccountID?) {
        guard let change, let account else { return }
        if let recorder = AccessChangeRecorder.current, recorder.accountID == account {
            recorder.append(change)
        } else {
            unrecorded.insert(account)
        }
    }

    /// Reports a committed row change, when rows of its type matter to access.
    func record<Record>(_ type: Record.Type, before: Record?, after: Record?, account: AccountID?) {
        guard let row = type as? any AccessRow.Type else { return }
        record(Self.change(row, before, after), account: account)
    }

    private static func change<Row: AccessRow>(_ row: Row.Type, _ before: Any?, _ after: Any?) -> AccessChange? {
        row.accessChange(before: before as? Row, after: after as? Row)
    }
}
