import Actors
import Foundation
import Identifiers
import Persistence
import Policy
import Portal
import Testing

/// The change feed of the spec's "Live changes", on a real SQLite file: for each kind of change, which
/// authorisations are revoked (gateways get `reject_access`) and which resources each client gains or
/// loses.
@Suite struct PolicyEvaluatorTests {
    /// An account with one site and gateway, two resources, two groups, two users on one laptop each:
    ///
    ///     eng = {alice, bob}, ops = {bob}
    ///     P1: eng → db (10.0.0.0/24, tcp:5432)    P2: ops → db    P3: eng → web (web.corp.example)
    ///     authorisations at the gateway: A1 alice-laptop/db/P1, A2 bob-laptop/db/P1, A3 alice-laptop/web/P3
    struct Fixture {
        let directory: URL
        let repository: SQLitePortalRepository
        let evaluator: PolicyEvaluator
        let account: AccountID
        let admin: ActorRecord
        var ids = Names()
        var authorizations: [String: AuthorizationRecord] = [:]
        let now: Date

        /// `now` and `clock` for tests of time; client tokens last `tokenLifetime`.
        init(now: Date = Date(), clock: (any WallClock)? = nil, tokenLifetime: TimeInterval = 3600) async throws {
            self.now = now
            directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-evaluator-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            repository = SQLitePortalRepository(database: try AppDatabase(path: directory.appending(path: "portal.sqlite").path))
            evaluator = PolicyEvaluator(repository: repository, clock: clock ?? SystemWallClock())
            let boot = try await repository.bootstrap(account: "Acme", slug: "acme", adminName: "Admin", adminEmail: "admin@acme.test",
                                                      tokenHash: String(repeating: "a", count: 64), now: now)
            account = boot.account.id
            admin = boot.admin
            let site = try await repository.createSite(accountID: account, name: "hq", by: admin, now: now)
            ids["hq"] = site.id
            ids["lab"] = try await repository.createSite(accountID: account, name: "lab", by: admin, now: now).id
            ids["db"] = try await repository.createResource(
                ResourceRecord(accountID: account, siteID: site.id, name: "db", type: .cidr, address: "10.0.0.0/24",
                               filters: #"["tcp:5432"]"#, createdAt: now), by: admin, now: now).id
            ids["web"] = try await repository.createResource(
                ResourceRecord(accountID: account, siteID: site.id, name: "web", type: .dns, address: "web.corp.example", ipStack: "dual",
                               createdAt: now), by: admin, now: now).id
            ids["eng"] = try await repository.createGroup(accountID: account, name: "eng", by: admin, now: now).id
            ids["ops"] = try await repository.createGroup(accountID: account, name: "ops", by: admin, now: now).id
            for (index, name) in ["alice", "bob"].enumerated() {
                let actor = try await repository.createActor(
                    ActorRecord(accountID: account, type: .user, name: name, email: "\(name)@acme.test", createdAt: now), by: admin, now: now)
                ids[name] = actor.id
                let token = try await repository.createToken(
                    TokenRecord(accountID: account, kind: .client, secretHash: String(repeating: "\(index + 1)", count: 64),
                                expiresAt: now.addingTimeInterval(tokenLifetime), actorID: actor.id, createdAt: now), by: admin, now: now)
                ids["\(name)-token"] = token.id
                ids["\(name)-laptop"] = try await repository.createDevice(
                    DeviceRecord(accountID: account, kind: .client, externalID: "\(name)-machine", name: "\(name)-laptop", publicKey: "key-\(name)",
                                 tunnelIPv4: "100.64.0.\(index + 10)", tunnelIPv6: "fd00:6761:7465::\(index + 10)", actorID: actor.id,
                                 lastSeenAddress: "192.0.2.\(index + 10)", tokenID: token.id, createdAt: now), by: nil, now: now).id
            }
            ids["gateway"] = try await repository.createDevice(
                DeviceRecord(accountID: account, kind: .gateway, externalID: "gw-1", name: "gw-1", publicKey: "key-gw", tunnelIPv4: "100.64.0.2",
                             tunnelIPv6: "fd00:6761:7465::2", siteID: site.id, createdAt: now), by: nil, now: now).id
            for (actor, group) in [("alice", "eng"), ("bob", "eng"), ("bob", "ops")] {
                _ = try await repository.addMember(accountID: account, group: ids[group]!, member: ids[actor]!, by: admin, now: now)
            }
            for (name, group, resource) in [("P1", "eng", "db"), ("P2", "ops", "db"), ("P3", "eng", "web")] {
                ids[name] = try await repository.createPolicy(
                    PolicyRecord(accountID: account, groupID: ids[group]!, resourceID: ids[resource]!, createdAt: now), by: admin, now: now).id
            }
            for (name, client, resource, policy) in [("A1", "alice-laptop", "db", "P1"), ("A2", "bob-laptop", "db", "P1"),
                                                     ("A3", "alice-laptop", "web", "P3")] {
                authorizations[name] = try await repository.createAuthorization(
                    AuthorizationRecord(accountID: account, clientID: ids[client]!, gatewayID: ids["gateway"]!, resourceID: ids[resource]!,
                                        policyID: ids[policy]!, expiresAt: now.addingTimeInterval(3600), createdAt: now))
            }
        }

        func remove() {
            try? FileManager.default.removeItem(at: directory)
        }

        /// Runs `write` as one change and returns the notifications in readable form, sorted.
        func change(_ write: (Fixture) async throws -> Void) async throws -> [String] {
            let (_, notifications) = try await evaluator.change(accountID: account) { try await write(self) }
            return notifications.map(describe).sorted()
        }

        func describe(_ notification: AccessNotification) -> String {
            switch notification {
            case let .rejectAccess(gateway, client, resource): return "reject \(ids.name(gateway)) \(ids.name(client)) \(ids.name(resource))"
            case let .resourceDeleted(client, resource): return "deleted \(ids.name(client)) \(ids.name(resource))"
            case let .resourceCreatedOrUpdated(client, resource): return "created_or_updated \(ids.name(client)) \(ids.name(resource))"
            case let .resourceUpdated(gateway, resource): return "updated \(ids.name(gateway)) \(ids.name(resource))"
            }
        }

        /// The authorisations still stored, by fixture name.
        func remainingAuthorizations() async throws -> [String] {
            let stored = Set(try await repository.accessData(accountID: account).authorizations.map(\.id))
            return authorizations.filter { stored.contains($0.value.id) }.map(\.key).sorted()
        }
    }

    static func withFixture(_ body: (Fixture) async throws -> Void) async throws {
        let fixture = try await Fixture()
        defer { fixture.remove() }
        try await body(fixture)
    }

    @Test func deletingOrDisablingAPolicyRevokesItsAuthorisationsAndHidesTheResourceWhenNothingElseGrantsIt() async throws {
        for disable in [false, true] {
            try await Self.withFixture { f in
                let notifications = try await f.change { f in
                    if disable {
                        _ = try await f.repository.updatePolicy(accountID: f.account, id: f.ids["P1"]!, by: f.admin, now: f.now) { $0.disabled = true }
                    } else {
                        _ = try await f.repository.deletePolicy(accountID: f.account, id: f.ids["P1"]!, by: f.admin, now: f.now)
                    }
                }
                // bob keeps db through ops (P2): his authorisation under P1 goes, the resource stays.
                #expect(notifications == ["deleted alice-laptop db", "reject gateway alice-laptop db", "reject gateway bob-laptop db"])
                #expect(try await f.remainingAuthorizations() == ["A3"])
            }
        }
    }

    /// The database stays the source of truth: a write that reached it without the evaluator recording
    /// it (here, straight through the repository after the account's view was read) makes the next
    /// change read the account again and tell (and carry out) the difference.
    @Test func aWriteTheEvaluatorDidNotSeeIsToldAtTheNextChange() async throws {
        try await Self.withFixture { f in
            #expect(try await f.evaluator.expire(accountID: f.account, at: f.now) == [], "the view is read")
            _ = try await f.repository.deletePolicy(accountID: f.account, id: f.ids["P1"]!, by: f.admin, now: f.now)
            let notifications = try await f.change { _ in }
            #expect(notifications == [], "a change that writes nothing causes nothing")
            // What the unseen write changed was told and carried out when the change began, as the account was read again.
            let told = try await f.evaluator.expire(accountID: f.account, at: f.now)
            #expect(told == [], "and only once")
            #expect(try await f.remainingAuthorizations() == ["A3"], "its revocations were carried out")
            let view = try #require(await f.evaluator.view(of: f.account))
            #expect(view.visible[f.ids["alice-laptop"]!] == [f.ids["web"]!])
        }
    }

    @Test func changingAPolicysGroupRevokesOnlyWhoIsNoLongerIn() async throws {
        try await Self.withFixture { f in
            let notifications = try await f.change { f in
                _ = try await f.repository.updatePolicy(accountID: f.account, id: f.ids["P3"]!, by: f.admin, now: f.now) { $0.groupID = f.ids["ops"]! }
            }
            // web moves from eng to ops: bob (in both) keeps it, alice loses it.
            #expect(notifications == ["deleted alice-laptop web", "reject gateway alice-laptop web"])
        }
    }

    @Test func changingAPolicysConditionsRevokesWhereTheyNoLongerHold() async throws {
        try await Self.withFixture { f in
            // The laptops are seen from 192.0.2.10 and .11; only alice's passes.
            let notifications = try await f.change { f in
                _ = try await f.repository.updatePolicy(accountID: f.account, id: f.ids["P1"]!, by: f.admin, now: f.now) {
                    $0.conditions = PolicyConditions.encode([try Condition("source_in:192.0.2.10/32")])
                }
            }
            #expect(notifications == ["reject gateway bob-laptop db"], "bob keeps db through P2, without this authorisation")
        }
    }

    @Test func removingAMemberRevokesItsAuthorisations() async throws {
        try await Self.withFixture { f in
            let notifications = try await f.change { f in
                _ = try await f.repository.removeMember(accountID: f.account, group: f.ids["eng"]!, member: f.ids["alice"]!, by: f.admin, now: f.now)
            }
            #expect(notifications == ["deleted alice-laptop db", "deleted alice-laptop web",
                                      "reject gateway alice-laptop db", "reject gateway alice-laptop web"])
            #expect(try await f.remainingAuthorizations() == ["A2"])
        }
    }

    @Test func disablingOrDeletingAnActorTakesAllItsAccess() async throws {
        try await Self.withFixture { f in
            let notifications = try await f.change { f in
                _ = try await f.repository.updateActor(accountID: f.account, id: f.ids["alice"]!, by: f.admin, now: f.now) { $0.disabled = true }
            }
            #expect(notifications == ["deleted alice-laptop db", "deleted alice-laptop web",
                                      "reject gateway alice-laptop db", "reject gateway alice-laptop web"])
        }
        try await Self.withFixture { f in
            let notifications = try await f.change { f in
                _ = try await f.repository.deleteActor(accountID: f.account, id: f.ids["alice"]!, by: f.admin, now: f.now)
            }
            // Her laptop went with her: only the gateway needs telling.
            #expect(notifications == ["reject gateway alice-laptop db", "reject gateway alice-laptop web"])
        }
    }

    @Test func deletingOrExpiringAClientsTokenTakesItsAccess() async throws {
        try await Self.withFixture { f in
            let notifications = try await f.change { f in
                _ = try await f.repository.deleteToken(accountID: f.account, id: f.ids["bob-token"]!, by: f.admin, now: f.now)
            }
            #expect(notifications == ["deleted bob-laptop db", "deleted bob-laptop web", "reject gateway bob-laptop db"])
        }
        try await Self.withFixture { f in
            // The tokens expire in an hour; nothing is written, time passes. The evaluator sees the
            // account first (as the portal's expiry service does at start).
            #expect(try await f.evaluator.expire(accountID: f.account, at: f.now) == [])
            let notifications = try await f.evaluator.expire(accountID: f.account, at: f.now.addingTimeInterval(3601))
            #expect(notifications.map(f.describe).sorted() == [
                "deleted alice-laptop db", "deleted alice-laptop web", "deleted bob-laptop db", "deleted bob-laptop web",
                "reject gateway alice-laptop db", "reject gateway alice-laptop web", "reject gateway bob-laptop db",
            ])
            #expect(try await f.remainingAuthorizations() == [])
        }
    }

    @Test func unverifyingAClientRevokesWhatNeedsAVerifiedClient() async throws {
        try await Self.withFixture { f in
            _ = try await f.change { f in
                _ = try await f.repository.updateDevice(accountID: f.account, id: f.ids["alice-laptop"]!, by: f.admin, now: f.now) { $0.verified = true }
                _ = try await f.repository.updatePolicy(accountID: f.account, id: f.ids["P3"]!, by: f.admin, now: f.now) {
                    $0.conditions = PolicyConditions.encode([.verifiedClient])
                }
            }
            let notifications = try await f.change { f in
                _ = try await f.repository.updateDevice(accountID: f.account, id: f.ids["alice-laptop"]!, by: f.admin, now: f.now) { $0.verified = false }
            }
            #expect(notifications == ["deleted alice-laptop web", "reject gateway alice-laptop web"])
        }
    }

    @Test func changingAResourcesAddressTypeOrSiteRevokesEveryAuthorisationForIt() async throws {
        for change in ["address", "type", "site"] {
            try await Self.withFixture { f in
                let notifications = try await f.change { f in
                    _ = try await f.repository.updateResource(accountID: f.account, id: f.ids["db"]!, by: f.admin, now: f.now) { resource in
                        switch change {
                        case "address": resource.address = "10.0.1.0/24"
                        case "type":
                            resource.type = .ip
                            resource.address = "10.0.0.1"
                        default: resource.siteID = f.ids["lab"]!
                        }
                    }
                }
                #expect(notifications == ["created_or_updated alice-laptop db", "created_or_updated bob-laptop db",
                                          "reject gateway alice-laptop db", "reject gateway bob-laptop db"], "\(change)")
                #expect(try await f.remainingAuthorizations() == ["A3"])
            }
        }
    }

    @Test func changingOnlyFiltersUpdatesTheGatewayAndKeepsTheAuthorisations() async throws {
        try await Self.withFixture { f in
            let notifications = try await f.change { f in
                _ = try await f.repository.updateResource(accountID: f.account, id: f.ids["db"]!, by: f.admin, now: f.now) {
                    $0.filters = #"["tcp:5432","icmp"]"#
                }
            }
            #expect(notifications == ["created_or_updated alice-laptop db", "created_or_updated bob-laptop db", "updated gateway db"])
            #expect(try await f.remainingAuthorizations() == ["A1", "A2", "A3"])
        }
    }

    @Test func creatingPoliciesResourcesAndMembershipsTellsTheClientsThatGainAccess() async throws {
        try await Self.withFixture { f in
            let policy = try await f.change { f in
                _ = try await f.repository.createPolicy(
                    PolicyRecord(accountID: f.account, groupID: f.ids["ops"]!, resourceID: f.ids["web"]!, createdAt: f.now), by: f.admin, now: f.now)
            }
            #expect(policy == [], "everyone in ops had web already")

            var wiki = ResourceID()
            let resource = try await f.change { f in
                wiki = try await f.repository.createResource(
                    ResourceRecord(accountID: f.account, siteID: f.ids["hq"]!, name: "wiki", type: .ip, address: "10.0.0.80", createdAt: f.now),
                    by: f.admin, now: f.now).id
            }
            #expect(resource == [], "a resource no policy names is nobody's")

            var fixture = f
            fixture.ids["wiki"] = wiki
            let granted = try await fixture.change { f in
                _ = try await f.repository.createPolicy(
                    PolicyRecord(accountID: f.account, groupID: f.ids["ops"]!, resourceID: wiki, createdAt: f.now), by: f.admin, now: f.now)
            }
            #expect(granted == ["created_or_updated bob-laptop wiki"])

            let joined = try await fixture.change { f in
                _ = try await f.repository.addMember(accountID: f.account, group: f.ids["ops"]!, member: f.ids["alice"]!, by: f.admin, now: f.now)
            }
            #expect(joined == ["created_or_updated alice-laptop wiki"])
        }
    }

    @Test func theEveryoneGroupGrantsEveryUserButNotServiceAccounts() async throws {
        try await Self.withFixture { f in
            let everyone = try await f.repository.listGroups(accountID: f.account, after: nil, limit: 100).first(where: \.isEveryone)!
            var fixture = f
            let robot = try await f.repository.createActor(
                ActorRecord(accountID: f.account, type: .serviceAccount, name: "robot", email: nil, createdAt: f.now), by: f.admin, now: f.now)
            let token = try await f.repository.createToken(
                TokenRecord(accountID: f.account, kind: .client, secretHash: String(repeating: "9", count: 64), expiresAt: nil, actorID: robot.id,
                            createdAt: f.now), by: f.admin, now: f.now)
            fixture.ids["robot-server"] = try await f.repository.createDevice(
                DeviceRecord(accountID: f.account, kind: .client, externalID: "robot", name: "robot-server", publicKey: "key-robot",
                             tunnelIPv4: "100.64.0.99", tunnelIPv6: "fd00:6761:7465::99", actorID: robot.id, tokenID: token.id, createdAt: f.now),
                by: nil, now: f.now).id
            let wiki = try await f.repository.createResource(
                ResourceRecord(accountID: f.account, siteID: f.ids["hq"]!, name: "wiki", type: .ip, address: "10.0.0.80", createdAt: f.now),
                by: f.admin, now: f.now)
            fixture.ids["wiki"] = wiki.id
            let notifications = try await fixture.change { f in
                _ = try await f.repository.createPolicy(
                    PolicyRecord(accountID: f.account, groupID: everyone.id, resourceID: wiki.id, createdAt: f.now), by: f.admin, now: f.now)
            }
            #expect(notifications == ["created_or_updated alice-laptop wiki", "created_or_updated bob-laptop wiki"])
        }
    }

    @Test func aFailedWriteChangesNothingAndTellsNobody() async throws {
        try await Self.withFixture { f in
            await #expect(throws: RepositoryError.self) {
                _ = try await f.change { f in
                    // A second policy eng → db breaks the (group, resource) uniqueness.
                    _ = try await f.repository.createPolicy(
                        PolicyRecord(accountID: f.account, groupID: f.ids["eng"]!, resourceID: f.ids["db"]!, createdAt: f.now), by: f.admin, now: f.now)
                }
            }
            let notifications = try await f.change { _ in }
            #expect(notifications == [])
            #expect(try await f.remainingAuthorizations() == ["A1", "A2", "A3"])
        }
    }

    @Test func explainNamesTheFailedConditionsAndTheExpiry() async throws {
        try await Self.withFixture { f in
            _ = try await f.repository.updatePolicy(accountID: f.account, id: f.ids["P3"]!, by: f.admin, now: f.now) {
                $0.conditions = PolicyConditions.encode([try Condition("source_in:198.51.100.0/24"), try Condition("time:MTWRFSU/00:00-24:00/UTC")])
            }
            let alice = try await f.repository.actor(accountID: f.account, id: f.ids["alice"]!)!
            let laptop = try await f.repository.listDevices(accountID: f.account, kind: .client, after: nil, limit: 10)
                .first { $0.name == "alice-laptop" }
            let forbidden = try await f.evaluator.evaluate(accountID: f.account, actor: alice, resource: f.ids["web"]!, client: laptop,
                                                           tokenExpiry: f.now.addingTimeInterval(3600), now: f.now)
            #expect(forbidden.decision == .forbidden)
            #expect(forbidden.failedConditions == ["source_in:198.51.100.0/24"])
            let allowed = try await f.evaluator.evaluate(accountID: f.account, actor: alice, resource: f.ids["db"]!, client: laptop,
                                                         tokenExpiry: f.now.addingTimeInterval(3600), now: f.now)
            #expect(allowed.decision == .allowed)
            #expect(allowed.chosenPolicy == f.ids["P1"])
            #expect(allowed.expiresAt == f.now.addingTimeInterval(3600), "the token's expiry bounds it")
        }
    }
}

/// The fixture's IDs by name, each read back as the typed ID its use expects.
struct Names {
    private var storage: [String: UUID] = [:]

    subscript<Noun>(name: String) -> Identifier<Noun>? {
        get { storage[name].map(Identifier.init) }
        set { storage[name] = newValue?.uuid }
    }

    /// The fixture name of an ID.
    func name<Noun>(_ id: Identifier<Noun>) -> String {
        storage.first { $0.value == id.uuid }?.key ?? id.description
    }
}
