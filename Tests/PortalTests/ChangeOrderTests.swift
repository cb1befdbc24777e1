import Foundation
import Persistence
import Portal
import Synchronization
import TestSupport
import Testing

/// Admin writes are serialised per account, not per portal: a change of one account held open does not
/// hold up another account's, while the same account's next change waits its turn (issue #11).
@Suite struct ChangeOrderTests {
    final class Log: Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
    }

    @Test func changesOfTwoAccountsInterleaveAndOneAccountsKeepTheirOrder() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-order-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let repository = SQLitePortalRepository(database: try AppDatabase(path: directory.appending(path: "portal.sqlite").path))
        let now = Date()
        let a = try await repository.bootstrap(account: "A", slug: "a", adminName: "A", adminEmail: "a@a.test", tokenHash: String(repeating: "a", count: 64), now: now)
        let b = try await repository.bootstrap(account: "B", slug: "b", adminName: "B", adminEmail: "b@b.test", tokenHash: String(repeating: "b", count: 64), now: now)
        let evaluator = PolicyEvaluator(repository: repository)
        let log = Log()
        let (gate, open) = AsyncStream<Void>.makeStream()

        // A's first change writes a group, then stays open until the gate opens.
        let first = Task {
            try await evaluator.change(accountID: a.account.id) {
                _ = try await repository.createGroup(accountID: a.account.id, name: "a1", by: a.admin, now: now)
                log.add("A1 wrote")
                for await _ in gate { break }
                log.add("A1 done")
            }
        }
        try await Wait.until("A's first change holds its turn", timeout: .seconds(60)) { log.all == ["A1 wrote"] }
        let second = Task {
            try await evaluator.change(accountID: a.account.id) {
                _ = try await repository.createGroup(accountID: a.account.id, name: "a2", by: a.admin, now: now)
                log.add("A2")
            }
        }
        let other = Task {
            try await evaluator.change(accountID: b.account.id) {
                _ = try await repository.createGroup(accountID: b.account.id, name: "b1", by: b.admin, now: now)
                log.add("B")
            }
        }
        do {
            try await Wait.until("B's change finishes while A's is open", timeout: .seconds(60)) { log.all.contains("B") }
        } catch {
            open.yield()
            throw error
        }
        #expect(!log.all.contains("A2"), "A's second change waits for its first")
        open.yield()
        _ = try await first.value
        _ = try await second.value
        _ = try await other.value
        print("change order: \(log.all)")
        #expect(log.all == ["A1 wrote", "B", "A1 done", "A2"])
        // Each write left its audit event, in the order of its account's turns.
        let audit = try await repository.auditEvents(accountID: a.account.id, after: nil, limit: 10).map(\.action)
        #expect(audit.filter { $0 == "create" }.count == 2)
    }
}
