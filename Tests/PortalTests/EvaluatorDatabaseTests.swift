import Actors
import Foundation
import Identifiers
import Persistence
import Portal
import Testing

/// The evaluator's in-memory view against the database it follows: random writes through the
/// repository (with the schema's own cascades, refusals and generated IDs) and clock steps, each run
/// as one change of the evaluator, and first as a dry run of it; after each, what it told equals the difference of two full
/// snapshots read from the database before and after, and its view holds exactly the rows the
/// database holds. The seed fixes the choices; the IDs the database generates (groups, the account)
/// still vary from run to run, so a failure names the change that broke it.
@Suite struct EvaluatorDatabaseTests {
    typealias Random = AccessViewTests.Random
    static let start = AccessViewTests.start

    @Test(arguments: [21, 22, 23] as [UInt64])
    func theEvaluatorsViewFollowsTheDatabase(seed: UInt64) async throws {
        var random = Random(state: seed)
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-view-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let repository = SQLitePortalRepository(database: try AppDatabase(path: directory.appending(path: "portal.sqlite").path))
        let evaluator = PolicyEvaluator(repository: repository, clock: ManualWallClock(Self.start))
        let boot = try await repository.bootstrap(account: "Acme", slug: "acme", adminName: "Admin", adminEmail: "admin@acme.test",
                                                  tokenHash: String(repeating: "a", count: 64), now: Self.start)
        let account = boot.account.id
        let admin = boot.admin
        try await Self.seed(repository, account: account, admin: admin, &random)

        var now = Self.start
        #expect(try await evaluator.expire(accountID: account, at: now) == [], "the first sight of an account tells nobody anything")
        var toldInAll = 0
        var written = 0
        for step in 0..<600 {
            let data = try await repository.accessData(accountID: account)
            let before = AccessSnapshot(data, now: now)
            guard let change = AccessViewTests.change(data, now: now, &random) else { continue }
            let notifications: [AccessNotification]
            if case let .clock(to) = change {
                now = to
                notifications = try await evaluator.expire(accountID: account, at: now)
            } else {
                let at = now
                // First as a dry run: nothing written, and it must tell what the real write then tells.
                let (_, preview) = try await evaluator.preview(accountID: account, now: { at }) {
                    (try? await Self.write(change, repository, account: account, admin: admin, now: at)) ?? false
                }
                #expect(Self.rows(try await repository.accessData(accountID: account)) == Self.rows(data), "a dry run wrote \(change)")
                let (committed, told) = try await evaluator.change(accountID: account, now: { at }) {
                    // The schema may refuse it (a taken name, a duplicate policy): then nothing changed.
                    (try? await Self.write(change, repository, account: account, admin: admin, now: at)) ?? false
                }
                #expect(preview.notifications == told, "seed \(seed) step \(step): the dry run of \(change)")
                notifications = told
                if committed { written += 1 }
            }
            let stored = try await repository.accessData(accountID: account)
            let after = AccessSnapshot(stored, now: now)
            let expected = AccessSnapshot.changes(from: before, to: after).notifications
            #expect(notifications == expected, "seed \(seed) step \(step): \(change)")
            let view = try #require(await evaluator.view(of: account))
            #expect(view.visible == after.visible, "seed \(seed) step \(step): \(change)")
            #expect(Self.rows(view.data) == Self.rows(stored), "seed \(seed) step \(step): the view holds the database's rows after \(change)")
            if notifications != expected || Self.rows(view.data) != Self.rows(stored) { return }
            toldInAll += notifications.count
        }
        print("seed \(seed): \(written) writes committed, \(toldInAll) notifications told")
        #expect(written > 100, "the run committed \(written) writes")
        #expect(toldInAll > 5, "the run told \(toldInAll) notifications")
        // Nothing wrote behind the evaluator's back, so it never had to read the account again.
        #expect(!repository.takeUnrecordedWrites(accountID: account))
    }

    /// Policies deleted while no evaluator watched (a portal stopped between committing a deletion
    /// and deleting its authorisations) leave authorisation rows behind; the first evaluator to read
    /// the account deletes them, and they grant nothing meanwhile.
    @Test func authorizationsLeftByDeletedPoliciesAreDeletedAtFirstSight() async throws {
        var random = Random(state: 31)
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-view-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let repository = SQLitePortalRepository(database: try AppDatabase(path: directory.appending(path: "portal.sqlite").path))
        let boot = try await repository.bootstrap(account: "Acme", slug: "acme", adminName: "Admin", adminEmail: "admin@acme.test",
                                                  tokenHash: String(repeating: "a", count: 64), now: Self.start)
        let account = boot.account.id
        try await Self.seed(repository, account: account, admin: boot.admin, &random)
        let seeded = try await repository.accessData(accountID: account)
        try #require(!seeded.authorizations.isEmpty, "the seed made authorisations")
        for policy in seeded.policies {
            _ = try await repository.deletePolicy(accountID: account, id: policy.id, by: boot.admin, now: Self.start)
        }
        #expect(try await repository.accessData(accountID: account).authorizations.count == seeded.authorizations.count,
                "a policy's deletion alone leaves its authorisations")

        let evaluator = PolicyEvaluator(repository: repository, clock: ManualWallClock(Self.start))
        _ = try await evaluator.expire(accountID: account, at: Self.start)
        #expect(try await repository.accessData(accountID: account).authorizations.isEmpty)
        let view = try #require(await evaluator.view(of: account))
        #expect(view.data.authorizations.isEmpty)
        #expect(seeded.gateways.allSatisfy { view.standing(ofGateway: $0.id).isEmpty })
    }

    /// An account: two sites with a gateway each, three groups, resources, actors with memberships,
    /// client tokens and clients, policies and authorisations, written before the evaluator sees it.
    static func seed(_ repository: SQLitePortalRepository, account: AccountID, admin: ActorRecord, _ random: inout Random) async throws {
        let now = start
        var sites: [SiteID] = []
        for index in 0..<2 {
            let site = try await repository.createSite(accountID: account, name: "site-\(index)", by: admin, now: now)
            sites.append(site.id)
            _ = try await repository.createDevice(
                DeviceRecord(accountID: account, kind: .gateway, externalID: "gw-\(index)", name: "gw-\(index)", publicKey: "k",
                             tunnelIPv4: "100.64.0.\(2 + index)", tunnelIPv6: "fd00::\(2 + index)", siteID: site.id, createdAt: now), by: nil, now: now)
        }
        var groups: [GroupID] = []
        for index in 0..<3 { groups.append(try await repository.createGroup(accountID: account, name: "g\(index)", by: admin, now: now).id) }
        for index in 0..<6 {
            _ = try await repository.createResource(
                ResourceRecord(accountID: account, siteID: sites[index % 2], name: "r\(index)", type: .cidr, address: "10.\(index).0.0/24",
                               filters: random.pick(AccessViewTests.filterChoices)!, createdAt: now), by: admin, now: now)
        }
        for index in 0..<5 {
            let actor = try await repository.createActor(
                ActorRecord(accountID: account, type: index == 4 ? .serviceAccount : .user, name: "a\(index)",
                            email: index == 4 ? nil : "a\(index)@acme.test", createdAt: now),
                by: admin, now: now)
            for group in groups where random.chance(50) {
                _ = try await repository.addMember(accountID: account, group: group, member: actor.id, by: admin, now: now)
            }
            let token = try await repository.createToken(
                TokenRecord(accountID: account, kind: .client, secretHash: String(repeating: "\(index)", count: 64),
                            expiresAt: random.chance(30) ? now.addingTimeInterval(Double(1 + random.below(7200))) : nil, actorID: actor.id,
                            createdAt: now), by: admin, now: now)
            _ = try await repository.createDevice(AccessViewTests.client(actor: actor.id, token: token.id, &random).in(account).unique(), by: nil, now: now)
        }
        var data = try await repository.accessData(accountID: account)
        for _ in 0..<10 {
            if let policy = AccessViewTests.newPolicy(data, &random) { _ = try? await repository.createPolicy(policy.in(account), by: admin, now: now) }
        }
        data = try await repository.accessData(accountID: account)
        for _ in 0..<8 {
            if let authorization = AccessViewTests.newAuthorization(data, &random) {
                _ = try await repository.createAuthorization(authorization.in(account))
            }
        }
    }

    /// Makes `change` through the repository, as the admin API and the realtime API would; false when
    /// there is no such write (a token's new expiry, a device removed) or it changed nothing.
    static func write(_ change: AccessChange, _ repository: SQLitePortalRepository, account: AccountID, admin: ActorRecord, now: Date)
        async throws -> Bool
    {
        switch change {
        case let .resource(nil, after?):
            _ = try await repository.createResource(after.in(account), by: admin, now: now)
        case let .resource(before?, after?):
            return try await repository.updateResource(accountID: account, id: before.id, by: admin, now: now) { $0 = after.in(account) } != nil
        case let .resource(before?, nil):
            return try await repository.deleteResource(accountID: account, id: before.id, by: admin, now: now)
        case let .policy(nil, after?):
            _ = try await repository.createPolicy(after.in(account), by: admin, now: now)
        case let .policy(before?, after?):
            return try await repository.updatePolicy(accountID: account, id: before.id, by: admin, now: now) { $0 = after.in(account) } != nil
        case let .policy(before?, nil):
            return try await repository.deletePolicy(accountID: account, id: before.id, by: admin, now: now)
        case let .group(nil, after?):
            _ = try await repository.createGroup(accountID: account, name: after.name, by: admin, now: now)
        case let .group(before?, after?):
            return try await repository.updateGroup(accountID: account, id: before.id, by: admin, now: now) { $0.name = after.name } != nil
        case let .group(before?, nil):
            return try await repository.deleteGroup(accountID: account, id: before.id, by: admin, now: now)
        case let .membership(actor, group, added):
            return added
                ? try await repository.addMember(accountID: account, group: group, member: actor, by: admin, now: now)
                : try await repository.removeMember(accountID: account, group: group, member: actor, by: admin, now: now)
        case let .actor(before?, after?):
            return try await repository.updateActor(accountID: account, id: before.id, by: admin, now: now) { $0 = after } != nil
        case let .actor(before?, nil):
            return try await repository.deleteActor(accountID: account, id: before.id, by: admin, now: now)
        case let .device(nil, after?):
            _ = try await repository.createDevice(after.in(account).unique(), by: nil, now: now)
        case let .device(before?, after?):
            return try await repository.updateDevice(accountID: account, id: before.id, by: admin, now: now) { $0 = after } != nil
        case let .token(before?, nil):
            return try await repository.deleteToken(accountID: account, id: before.id, by: admin, now: now)
        case let .authorization(nil, after?):
            _ = try await repository.createAuthorization(after.in(account))
        case let .authorization(before?, nil):
            return try await repository.deleteAuthorizations(accountID: account, [before]) == 1
        case let .site(deleted):
            return try await repository.deleteSite(accountID: account, id: deleted, by: admin, now: now)
        default:
            return false
        }
        return true
    }

    /// The rows of an account, in one comparable form (order and empty membership sets aside).
    static func rows(_ data: AccessData) -> [String] {
        var rows: [String] = []
        rows += data.resources.values.map { "resource \($0)" }
        rows += data.policies.map { "policy \($0)" }
        rows += data.groups.values.map { "group \($0)" }
        rows += data.clients.map { "client \($0)" }
        rows += data.gateways.map { "gateway \($0)" }
        rows += data.actors.values.map { "actor \($0)" }
        rows += data.tokens.values.map { "token \($0)" }
        rows += data.memberships.flatMap { actor, groups in groups.map { "membership \(actor) \($0)" } }
        rows += data.authorizations.map { "authorization \($0)" }
        return rows.sorted()
    }
}

/// The generator's rows belong to its own account ID; these move one into the account under test.
protocol AccountOwned {
    var accountID: AccountID { get set }
}

extension AccountOwned {
    func `in`(_ account: AccountID) -> Self {
        var copy = self
        copy.accountID = account
        return copy
    }
}

extension DeviceRecord {
    /// The generator's clients share one external ID and tunnel addresses, which the schema keeps unique.
    func unique() -> Self {
        var copy = self
        let bytes = withUnsafeBytes(of: id.uuid.uuid) { Array($0) }
        copy.externalID = "machine-\(id)"
        copy.tunnelIPv4 = "100.64.\(bytes[0]).\(bytes[1])"
        copy.tunnelIPv6 = "fd00::\(String(bytes[0], radix: 16)):\(String(bytes[1], radix: 16))"
        return copy
    }
}

extension ResourceRecord: AccountOwned {}
extension PolicyRecord: AccountOwned {}
extension DeviceRecord: AccountOwned {}
extension AuthorizationRecord: AccountOwned {}
