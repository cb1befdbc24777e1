import Foundation
import Identifiers
import Persistence
import Portal
import Testing

/// The incremental view against its oracle: thousands of random changes (rows created, changed and
/// deleted, with the schema's cascades, and clock steps) applied to an account; after each, what the
/// view says must be told equals the difference of two full snapshots, before and after.
@Suite struct AccessViewTests {
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
        mutating func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[below(items.count)] }
        /// An ID drawn from the seed, so that a seed replays the same run.
        mutating func id<Noun>() -> Identifier<Noun> {
            let (high, low) = (next(), next())
            let bytes = (0..<8).map { UInt8(truncatingIfNeeded: high >> ($0 * 8)) } + (0..<8).map { UInt8(truncatingIfNeeded: low >> ($0 * 8)) }
            return Identifier(UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                                          bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15])))
        }
    }

    static let account = AccountID(UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)))
    static let start = Date(timeIntervalSince1970: 1_795_946_398)  // Monday 2026-11-23 09:59:58 UTC
    static let conditionChoices = [
        "[]", "[]", #"["verified"]"#, #"["time:MTWRF/09:00-17:00/UTC"]"#, #"["time:MTWRFSU/10:00-10:30/UTC"]"#,
        #"["source_in:192.0.2.0/28"]"#, #"["source_not_in:192.0.2.0/30","verified"]"#, #"["not a condition"]"#,
    ]
    static let filterChoices = [#"[]"#, #"["tcp:443"]"#, #"["tcp:5432","icmp"]"#, #"["udp:53"]"#]

    /// A small account: sites, resources, groups (Everyone among them), actors with memberships, client
    /// tokens and clients, gateways, policies and authorisations.
    static func universe(_ random: inout Random) -> AccessData {
        var data = AccessData()
        let sites: [SiteID] = [random.id(), random.id()]
        let everyone = GroupRecord(id: random.id(), accountID: account, name: GroupRecord.everyone, createdAt: start)
        data.groups[everyone.id] = everyone
        for index in 0..<3 {
            let group = GroupRecord(id: random.id(), accountID: account, name: "g\(index)", createdAt: start)
            data.groups[group.id] = group
        }
        for index in 0..<6 {
            let resource = ResourceRecord(id: random.id(), accountID: account, siteID: sites[index % 2], name: "r\(index)", type: .cidr,
                                          address: "10.\(index).0.0/24", filters: random.pick(filterChoices)!, createdAt: start)
            data.resources[resource.id] = resource
        }
        for index in 0..<5 {
            let actor = ActorRecord(id: random.id(), accountID: account, type: index == 4 ? .serviceAccount : .user, name: "a\(index)",
                                    email: index == 4 ? nil : "a\(index)@x.test", createdAt: start)
            data.actors[actor.id] = actor
            for group in data.groups.values.sorted(by: { $0.id < $1.id }) where !group.isEveryone && random.chance(50) {
                data.memberships[actor.id, default: []].insert(group.id)
            }
            let token = TokenRecord(id: random.id(), accountID: account, kind: .client, secretHash: String(repeating: "\(index)", count: 64),
                                    expiresAt: random.chance(30) ? start.addingTimeInterval(Double(random.below(7200))) : nil,
                                    actorID: actor.id, createdAt: start)
            data.tokens[token.id] = token
            data.clients.append(client(actor: actor.id, token: token.id, &random))
        }
        for site in sites {
            data.gateways.append(DeviceRecord(id: random.id(), accountID: account, kind: .gateway, externalID: "gw-\(site)", name: "gw", publicKey: "k",
                                              tunnelIPv4: "100.64.0.2", tunnelIPv6: "fd00::2", siteID: site, createdAt: start))
        }
        for _ in 0..<10 { if let policy = newPolicy(data, &random) { data.policies.append(policy) } }
        for _ in 0..<8 { if let authorization = newAuthorization(data, &random) { data.authorizations.append(authorization) } }
        return data
    }

    static func client(actor: ActorID, token: TokenID?, _ random: inout Random) -> DeviceRecord {
        DeviceRecord(id: random.id(), accountID: account, kind: .client, externalID: "machine", name: "c", publicKey: "k", tunnelIPv4: "100.64.0.9",
                     tunnelIPv6: "fd00::9", actorID: actor, lastSeenAddress: "192.0.2.\(random.below(20))", verified: random.chance(50),
                     tokenID: token, createdAt: start)
    }

    static func newPolicy(_ data: AccessData, _ random: inout Random) -> PolicyRecord? {
        guard let group = random.pick(Array(data.groups.keys).sorted()), let resource = random.pick(Array(data.resources.keys).sorted()) else { return nil }
        return PolicyRecord(id: random.id(), accountID: account, groupID: group, resourceID: resource, conditions: random.pick(conditionChoices)!,
                            disabled: random.chance(10), createdAt: start)
    }

    static func newAuthorization(_ data: AccessData, _ random: inout Random) -> AuthorizationRecord? {
        guard let policy = random.pick(data.policies), let client = random.pick(data.clients), let gateway = random.pick(data.gateways) else { return nil }
        return AuthorizationRecord(id: random.id(), accountID: account, clientID: client.id, gatewayID: gateway.id, resourceID: policy.resourceID, policyID: policy.id,
                                   expiresAt: start.addingTimeInterval(Double(random.below(10_000))), createdAt: start)
    }

    /// A random change that the schema would accept, as the repository would report it.
    static func change(_ data: AccessData, now: Date, _ random: inout Random) -> AccessChange? {
        switch random.below(20) {
        case 0:
            let site = random.pick(data.gateways)?.siteID ?? random.id()
            return .resource(before: nil, after: ResourceRecord(id: random.id(), accountID: account, siteID: site, name: "new", type: .ip,
                                                                address: "10.9.\(random.below(9)).1", createdAt: now))
        case 1, 2:
            guard let before = random.pick(Array(data.resources.values).sorted { $0.id < $1.id }) else { return nil }
            var after = before
            switch random.below(4) {
            case 0: after.filters = random.pick(filterChoices)!
            case 1: after.address = "10.\(random.below(9)).1.0/24"
            case 2: after.name = "renamed-\(random.below(5))"
            default: after.siteID = random.pick(data.gateways)?.siteID ?? after.siteID
            }
            return .resource(before: before, after: after)
        case 3:
            guard let before = random.pick(Array(data.resources.values).sorted { $0.id < $1.id }) else { return nil }
            return .resource(before: before, after: nil)
        case 4, 5:
            return newPolicy(data, &random).map { .policy(before: nil, after: $0) }
        case 6, 7:
            guard let before = random.pick(data.policies) else { return nil }
            var after = before
            switch random.below(4) {
            case 0: after.disabled.toggle()
            case 1: after.conditions = random.pick(conditionChoices)!
            case 2: after.groupID = random.pick(Array(data.groups.keys).sorted()) ?? after.groupID
            default: after.resourceID = random.pick(Array(data.resources.keys).sorted()) ?? after.resourceID
            }
            return .policy(before: before, after: after)
        case 8:
            return random.pick(data.policies).map { .policy(before: $0, after: nil) }
        case 9:
            if random.chance(50) { return .group(before: nil, after: GroupRecord(id: random.id(), accountID: account, name: "g-new", createdAt: now)) }
            guard let group = random.pick(data.groups.values.filter { !$0.isEveryone }.sorted { $0.id < $1.id }) else { return nil }
            if random.chance(50) {
                var renamed = group
                renamed.name += "!"
                return .group(before: group, after: renamed)
            }
            return .group(before: group, after: nil)
        case 10, 11:
            guard let actor = random.pick(Array(data.actors.keys).sorted()),
                  let group = random.pick(data.groups.values.filter { !$0.isEveryone }.map(\.id).sorted()) else { return nil }
            return .membership(actor: actor, group: group, added: !(data.memberships[actor]?.contains(group) ?? false))
        case 12:
            guard let before = random.pick(Array(data.actors.values).sorted { $0.id < $1.id }) else { return nil }
            if random.chance(15) { return .actor(before: before, after: nil) }
            var after = before
            if random.chance(70) { after.disabled.toggle() } else { after.type = after.type == .serviceAccount ? .user : .serviceAccount }
            return .actor(before: before, after: after)
        case 13, 14:
            // Now and then a gateway's row: updated (a join) or deleted (its authorisations go with it).
            if random.chance(20), let gateway = random.pick(data.gateways) {
                if random.chance(30) { return .device(before: gateway, after: nil) }
                var after = gateway
                after.lastSeenAddress = "203.0.113.\(random.below(20))"
                return .device(before: gateway, after: after)
            }
            guard let before = random.pick(data.clients) else { return nil }
            if random.chance(15) { return .device(before: before, after: nil) }
            var after = before
            if random.chance(50) { after.verified.toggle() } else { after.lastSeenAddress = "192.0.2.\(random.below(20))" }
            return .device(before: before, after: after)
        case 15:
            guard let actor = random.pick(Array(data.actors.keys).sorted()) else { return nil }
            let token = data.tokens.values.first { $0.actorID == actor }?.id
            return .device(before: nil, after: client(actor: actor, token: token, &random))
        case 16:
            guard let before = random.pick(Array(data.tokens.values).sorted { $0.id < $1.id }) else { return nil }
            if random.chance(20) { return .token(before: before, after: nil) }
            var after = before
            after.expiresAt = random.chance(30) ? nil : now.addingTimeInterval(Double(random.below(3600)))
            return .token(before: before, after: after)
        case 17:
            if random.chance(60) { return newAuthorization(data, &random).map { .authorization(before: nil, after: $0) } }
            return random.pick(data.authorizations).map { .authorization(before: $0, after: nil) }
        case 18:
            if random.chance(10), let site = random.pick(data.gateways.compactMap(\.siteID).sorted()) { return .site(deleted: site) }
            return .clock(to: now.addingTimeInterval(Double(random.below(900))))
        default:
            return .clock(to: now.addingTimeInterval(Double(random.below(5400))))
        }
    }

    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func incrementalEventsEqualTheDiffOfFullSnapshots(seed: UInt64) throws {
        var random = Random(state: seed)
        var data = Self.universe(&random)
        var now = Self.start
        var view = AccessView(data, now: now)
        var applied = 0
        for step in 0..<2500 {
            guard let change = Self.change(data, now: now, &random) else { continue }
            let before = AccessSnapshot(data, now: now)
            data.apply(change)
            if case let .clock(to) = change { now = to }
            let after = AccessSnapshot(data, now: now)
            let expected = AccessSnapshot.changes(from: before, to: after)
            let actual = view.apply(change)
            #expect(actual.notifications == expected.notifications, "seed \(seed) step \(step): \(change)")
            #expect(actual.revoked == expected.revoked, "seed \(seed) step \(step): \(change)")
            #expect(view.visible == after.visible, "seed \(seed) step \(step): \(change)")
            if actual.notifications != expected.notifications || view.visible != after.visible { return }
            // The evaluator deletes what was revoked, as one more change (its rows in one batch) that
            // tells nobody anything.
            let revokedRows = expected.revoked.compactMap { id in data.authorizations.first { $0.id == id } }
            for row in revokedRows { data.apply(.authorization(before: row, after: nil)) }
            #expect(view.apply(revokedRows.map { .authorization(before: $0, after: nil) }).notifications == [])
            // Now and then several rows deleted in one batch, standing ones among them (a client deleted
            // by hand): told exactly as one by one.
            if random.chance(10) {
                let rows = data.authorizations.filter { _ in random.chance(50) }.sorted { $0.id < $1.id }
                guard Self.deleteInOneBatch(rows, &data, &view, now: now, "seed \(seed) step \(step)") != nil else { return }
            }
            applied += 1
        }
        #expect(applied > 1000, "the run applied \(applied) changes")
    }

    /// Many standing authorisations deleted in one batch (the rows of a client deleted by hand, or
    /// the bookkeeping after a revocation) tell exactly what deleting them one by one tells.
    @Test(arguments: [7, 8, 9] as [UInt64])
    func rowsDeletedInOneBatchTellWhatOneByOneTells(seed: UInt64) throws {
        var random = Random(state: seed)
        var data = Self.universe(&random)
        let now = Self.start
        // Standing authorisations: for each client, each resource it may reach, through some gateway.
        let granted = AccessView(data, now: now)
        for client in data.clients {
            for (resource, policies) in granted.access(of: client.id).sorted(by: { $0.key < $1.key }) {
                guard let policy = random.pick(policies.sorted()), let gateway = random.pick(data.gateways) else { continue }
                data.authorizations.append(AuthorizationRecord(
                    id: random.id(), accountID: Self.account, clientID: client.id, gatewayID: gateway.id, resourceID: resource, policyID: policy,
                    expiresAt: now.addingTimeInterval(3600), createdAt: now))
            }
        }
        var view = AccessView(data, now: now)
        var told = 0
        for round in 0..<20 {
            let rows = data.authorizations.filter { _ in random.chance(25) }.sorted { $0.id < $1.id }
            guard let count = Self.deleteInOneBatch(rows, &data, &view, now: now, "seed \(seed) round \(round)") else { return }
            told += count
        }
        #expect(told > 5, "the batches told \(told) rejections")
    }

    /// Deletes `rows` from `data` one by one and from `view` in one batch, and checks that the view told
    /// what two snapshots before and after say; returns how many notifications it told (nil when it
    /// told something else).
    static func deleteInOneBatch(_ rows: [AuthorizationRecord], _ data: inout AccessData, _ view: inout AccessView, now: Date,
                                 _ label: String) -> Int? {
        let before = AccessSnapshot(data, now: now)
        for row in rows { data.apply(.authorization(before: row, after: nil)) }
        let after = AccessSnapshot(data, now: now)
        let expected = AccessSnapshot.changes(from: before, to: after)
        let actual = view.apply(rows.map { .authorization(before: $0, after: nil) })
        #expect(actual.notifications == expected.notifications, "\(label): \(rows.count) rows deleted at once")
        #expect(actual.revoked == expected.revoked, "\(label): \(rows.count) rows deleted at once")
        #expect(view.visible == after.visible, "\(label)")
        #expect(view.data.authorizations.map(\.id).sorted() == data.authorizations.map(\.id).sorted(), "\(label)")
        #expect(Set(data.gateways.flatMap { view.standing(ofGateway: $0.id) }) == after.validAuthorizations, "\(label)")
        // The view may look again sooner than needed (it counts every row's expiry), never later.
        if let due = after.nextChange { #expect(view.nextChange.map { $0 <= due } ?? false, "\(label): next change \(String(describing: view.nextChange)), due \(due)") }
        return actual.notifications == expected.notifications ? actual.notifications.count : nil
    }
}
