// portal-bench: seeds a portal database with a large account and measures policy evaluations per
// second through the portal's PolicyEvaluator. bench/portal.sh runs it, then measures the admin API
// with wrk against `gatehouse portal` serving the same file.
//
//   portal-bench seed --db PATH [--resources 10000] [--groups 1000] [--users 10000] [--memberships 100000]
//   portal-bench evaluate --db PATH [--evaluations 20000] [--concurrency 1] [--from-view]
//   portal-bench seed-clients --db PATH [--clients 100]
//   portal-bench change --db PATH [--changes 200]
//   portal-bench seed-realtime --db PATH --out FILE [--gateways 1000] [--clients 1000] [--flows-per-client 10]
import Foundation
import Persistence
import Portal
import Identifiers
import GRDB

func option(_ name: String, _ fallback: Int) -> Int {
    guard let index = CommandLine.arguments.firstIndex(of: "--" + name), index + 1 < CommandLine.arguments.count,
          let value = Int(CommandLine.arguments[index + 1]) else { return fallback }
    return value
}

func path() -> String {
    guard let index = CommandLine.arguments.firstIndex(of: "--db"), index + 1 < CommandLine.arguments.count else {
        FileHandle.standardError.write(Data("portal-bench: --db PATH is required\n".utf8))
        exit(2)
    }
    return CommandLine.arguments[index + 1]
}

/// A seeded generator, so that runs are comparable.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

let database = try AppDatabase(path: path())
let repository = SQLitePortalRepository(database: database)
guard let account = try await database.read({ db in try AccountRecord.fetchOne(db) }) else {
    FileHandle.standardError.write(Data("portal-bench: no account; run gatehouse portal init first\n".utf8))
    exit(2)
}

switch CommandLine.arguments.dropFirst().first {
case "seed":
    let resources = option("resources", 10_000)
    let groups = option("groups", 1_000)
    let users = option("users", 10_000)
    let memberships = option("memberships", 100_000)
    let start = Date()
    try await database.write { db in
        var random = SplitMix(state: 42)
        let now = Date()
        let site = SiteRecord(accountID: account.id, name: "bench-site", createdAt: now)
        try site.insert(db)
        var groupIDs: [GroupID] = []
        for index in 0..<groups {
            let group = GroupRecord(accountID: account.id, name: "group-\(index)", createdAt: now)
            try group.insert(db)
            groupIDs.append(group.id)
        }
        var userIDs: [ActorID] = []
        for index in 0..<users {
            let user = ActorRecord(accountID: account.id, type: .user, name: "user-\(index)", email: "user-\(index)@bench.test", createdAt: now)
            try user.insert(db)
            userIDs.append(user.id)
        }
        var pairs = Set<MembershipRecord>()
        while pairs.count < memberships {
            pairs.insert(MembershipRecord(accountID: account.id, actorID: userIDs[Int(random.next() % UInt64(users))],
                                          groupID: groupIDs[Int(random.next() % UInt64(groups))]))
        }
        for membership in pairs { try membership.insert(db) }
        for index in 0..<resources {
            let resource = ResourceRecord(accountID: account.id, siteID: site.id, name: "resource-\(index)", type: .cidr,
                                          address: "10.\(index / 256).\(index % 256).0/24", filters: #"["tcp:443"]"#, createdAt: now)
            try resource.insert(db)
            // Two policies per resource, to random groups; every tenth with a time window.
            var chosen = Set<GroupID>()
            while chosen.count < 2 { chosen.insert(groupIDs[Int(random.next() % UInt64(groups))]) }
            for (offset, group) in chosen.enumerated() {
                let conditions = (index + offset) % 10 == 0 ? #"["time:MTWRFSU/00:00-24:00/Europe/Berlin"]"# : "[]"
                try PolicyRecord(accountID: account.id, groupID: group, resourceID: resource.id, conditions: conditions, createdAt: now).insert(db)
            }
        }
    }
    print(String(format: "seeded %d resources, %d groups, %d users, %d memberships, %d policies in %.1f s",
                 resources, groups, users, memberships, resources * 2, Date().timeIntervalSince(start)))

case "seed-clients":
    // Connected clients make every admin write compute the change feed (who must be told what).
    let clients = option("clients", 100)
    try await database.write { db in
        let users = try ActorRecord.filter(Column("type") == "user").limit(clients).fetchAll(db)
        let now = Date()
        for (index, user) in users.enumerated() {
            let hash = String(repeating: "0", count: 48) + String(format: "%016x", index)  // unique: the index in hex
            let token = TokenRecord(accountID: account.id, kind: .client, secretHash: hash, expiresAt: nil, actorID: user.id, createdAt: now)
            try token.insert(db)
            try DeviceRecord(accountID: account.id, kind: .client, externalID: "bench-\(index)", name: "laptop-\(index)", publicKey: "key-\(index)",
                             tunnelIPv4: "100.64.\(index / 256).\(index % 256)", tunnelIPv6: "fd00:6761:7465::\(String(index, radix: 16))",
                             actorID: user.id, lastSeenAddress: "192.0.2.1", tokenID: token.id, createdAt: now).insert(db)
        }
    }
    print("seeded \(clients) connected clients")

case "change":
    // One admin change with the account's clients registered: the evaluator's in-memory view takes the
    // rows the write committed and re-evaluates the clients they can affect. Real writes, cycling through
    // a membership added and removed, a policy disabled and enabled, and a resource's filters changed,
    // each touching a client's actor or resources. The write's own time (SQLite) is measured apart.
    let changes = option("changes", 200)
    let evaluator = PolicyEvaluator(repository: repository)
    var clock = Date()
    let data = try await repository.accessData(accountID: account.id)
    let loaded = Date().timeIntervalSince(clock)
    clock = Date()
    _ = AccessSnapshot(data, now: Date())
    let snapshot = Date().timeIntervalSince(clock)
    print(String(format: "the whole account (%d clients): read %.1f ms, one full snapshot %.1f ms (the old path took two of each per change)",
                 data.clients.count, loaded * 1000, snapshot * 1000))
    clock = Date()
    _ = try await evaluator.expire(accountID: account.id, at: Date())
    print(String(format: "the evaluator's view, read and built once: %.1f ms", Date().timeIntervalSince(clock) * 1000))
    guard let admin = try await database.read({ db in try ActorRecord.filter(Column("type") == "admin").fetchOne(db) }),
          let client = data.clients.first, let actor = client.actorID else {
        print("portal-bench: seed and seed-clients first")
        exit(2)
    }
    let groups = Array(data.groups.keys.sorted().prefix(50))
    let policies = Array(data.policies.filter { data.memberships[actor]?.contains($0.groupID) == true }.prefix(10))
    let held = Array(Set(policies.map(\.resourceID)))
    var writeTime: TimeInterval = 0
    var told = 0
    let start = Date()
    for index in 0..<changes {
        let (_, notifications) = try await evaluator.change(accountID: account.id) {
            let began = Date()
            defer { writeTime += Date().timeIntervalSince(began) }
            switch index % 3 {
            case 0:
                let group = groups[(index / 6) % groups.count]
                if index % 6 == 0 {
                    _ = try await repository.addMember(accountID: account.id, group: group, member: actor, by: admin, now: Date())
                } else {
                    _ = try await repository.removeMember(accountID: account.id, group: group, member: actor, by: admin, now: Date())
                }
            case 1:
                guard !policies.isEmpty else { return }
                let policy = policies[(index / 3) % policies.count]
                _ = try await repository.updatePolicy(accountID: account.id, id: policy.id, by: admin, now: Date()) { $0.disabled.toggle() }
            default:
                guard !held.isEmpty else { return }
                let resource = held[(index / 3) % held.count]
                _ = try await repository.updateResource(accountID: account.id, id: resource, by: admin, now: Date()) {
                    $0.filters = $0.filters == #"["tcp:443"]"# ? #"["tcp:443","tcp:8443"]"# : #"["tcp:443"]"#
                }
            }
        }
        told += notifications.count
    }
    let elapsed = Date().timeIntervalSince(start)
    print(String(format: "changes: %d in %.2f s = %.2f ms per change, of which the write (SQLite) %.2f ms and the evaluator %.2f ms; %d notifications",
                 changes, elapsed, elapsed * 1000 / Double(changes), writeTime * 1000 / Double(changes),
                 (elapsed - writeTime) * 1000 / Double(changes), told))

case "evaluate":
    let evaluations = option("evaluations", 20_000)
    let concurrency = max(1, option("concurrency", 1))
    let (users, resources) = try await database.read { db in
        (try ActorRecord.filter(Column("type") == "user").fetchAll(db), try ResourceRecord.fetchAll(db).map(\.id))
    }
    guard !users.isEmpty, !resources.isEmpty else {
        print("portal-bench: seed first")
        exit(2)
    }
    let evaluator = PolicyEvaluator(repository: repository)
    // --from-view: the evaluator reads the account once and answers from memory; otherwise each
    // evaluation reads its inputs from SQLite (what an evaluator without the account's view does).
    let fromView = CommandLine.arguments.contains("--from-view")
    if fromView { _ = try await evaluator.expire(accountID: account.id, at: Date()) }
    let start = Date()
    let decisions = try await withThrowingTaskGroup(of: [String: Int].self) { group in
        for worker in 0..<concurrency {
            group.addTask {
                var random = SplitMix(state: UInt64(worker + 1))
                var counts: [String: Int] = [:]
                for _ in 0..<(evaluations / concurrency) {
                    let user = users[Int(random.next() % UInt64(users.count))]
                    let resource = resources[Int(random.next() % UInt64(resources.count))]
                    let result = try await evaluator.evaluate(accountID: account.id, actor: user, resource: resource, client: nil,
                                                              tokenExpiry: nil, now: Date())
                    counts[result.decision.rawValue, default: 0] += 1
                }
                return counts
            }
        }
        var total: [String: Int] = [:]
        for try await counts in group { total.merge(counts, uniquingKeysWith: +) }
        return total
    }
    let elapsed = Date().timeIntervalSince(start)
    let done = decisions.values.reduce(0, +)
    print(String(format: "evaluations %@: %d in %.2f s = %.0f per second (concurrency %d; decisions %@)",
                 fromView ? "from the in-memory view" : "from SQLite", done, elapsed, Double(done) / elapsed, concurrency,
                 decisions.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")))

case "seed-realtime":
    // The realtime benchmark's account (on top of `seed`'s 10k resources): one site with one resource
    // granted by one policy to one group of `clients` users; `gateways` gateways of that site and one
    // client device per user, registered as the load tool will join them; every client holding a flow
    // to the resource through `flows-per-client` different gateways. Tokens' secrets go to --out (JSON)
    // for the load tool; the database holds only their hashes.
    let gateways = option("gateways", 1_000)
    let clients = option("clients", 1_000)
    let perClient = option("flows-per-client", 10)
    guard let index = CommandLine.arguments.firstIndex(of: "--out"), index + 1 < CommandLine.arguments.count else {
        print("portal-bench: --out FILE is required")
        exit(2)
    }
    let out = CommandLine.arguments[index + 1]
    @Sendable func key(_ seed: Int) -> String {
        var random = SplitMix(state: UInt64(seed) &+ 7)
        return Data((0..<32).map { _ in UInt8(truncatingIfNeeded: random.next()) }).base64EncodedString()
    }
    let plan = try await database.write { db -> [String: Any] in
        let now = Date()
        let site = SiteRecord(accountID: account.id, name: "realtime-site", createdAt: now)
        try site.insert(db)
        let resource = ResourceRecord(accountID: account.id, siteID: site.id, name: "realtime-target", type: .ip, address: "10.250.0.1", createdAt: now)
        try resource.insert(db)
        let group = GroupRecord(accountID: account.id, name: "realtime-users", createdAt: now)
        try group.insert(db)
        let policy = PolicyRecord(accountID: account.id, groupID: group.id, resourceID: resource.id, createdAt: now)
        try policy.insert(db)
        let gatewaySecret = TokenSecret.generate(prefix: "gh_gateway")
        let gatewayToken = TokenRecord(accountID: account.id, kind: .gateway, secretHash: TokenSecret.hash(gatewaySecret), expiresAt: nil,
                                       siteID: site.id, createdAt: now)
        try gatewayToken.insert(db)
        var gatewayIDs: [DeviceID] = []
        for index in 0..<gateways {
            let device = DeviceRecord(accountID: account.id, kind: .gateway, externalID: "bench-gateway-\(index)", name: "gateway-\(index)",
                                      publicKey: key(index), tunnelIPv4: "100.80.\(index / 256).\(index % 256)",
                                      tunnelIPv6: "fd00:6761:7465:1::\(String(index + 1, radix: 16))", siteID: site.id, tokenID: gatewayToken.id,
                                      createdAt: now)
            try device.insert(db)
            gatewayIDs.append(device.id)
        }
        let users = try ActorRecord.filter(Column("type") == "user").order(Column("id")).limit(clients).fetchAll(db)
        var clientSecrets: [String] = []
        for (index, user) in users.enumerated() {
            try MembershipRecord(accountID: account.id, actorID: user.id, groupID: group.id).insert(db)
            let secret = TokenSecret.generate(prefix: "gh_client")
            let token = TokenRecord(accountID: account.id, kind: .client, secretHash: TokenSecret.hash(secret), expiresAt: nil, actorID: user.id,
                                    createdAt: now)
            try token.insert(db)
            clientSecrets.append(secret)
            let device = DeviceRecord(accountID: account.id, kind: .client, externalID: "bench-client-\(index)", name: "client-\(index)",
                                      publicKey: key(100_000 + index), tunnelIPv4: "100.90.\(index / 256).\(index % 256)",
                                      tunnelIPv6: "fd00:6761:7465:2::\(String(index + 1, radix: 16))", actorID: user.id, lastSeenAddress: "127.0.0.1",
                                      tokenID: token.id, createdAt: now)
            try device.insert(db)
            for flow in 0..<perClient {
                try AuthorizationRecord(accountID: account.id, clientID: device.id, gatewayID: gatewayIDs[(index * perClient + flow) % gateways],
                                        resourceID: resource.id, policyID: policy.id, expiresAt: now.addingTimeInterval(86_400), createdAt: now)
                    .insert(db)
            }
        }
        return ["gateway_token": gatewaySecret, "client_tokens": clientSecrets, "policy_id": policy.id.description,
                "resource_id": resource.id.description, "gateways": gateways, "flows_per_client": perClient,
                "gateway_keys": (0..<gateways).map { key($0) }, "client_keys": (0..<users.count).map { key(100_000 + $0) }]
    }
    try JSONSerialization.data(withJSONObject: plan).write(to: URL(fileURLWithPath: out))
    print("seeded \(gateways) gateways, \(clients) clients, \(clients * perClient) flows to one resource under one policy")

default:
    print("usage: portal-bench seed|evaluate --db PATH [options]")
    exit(2)
}
