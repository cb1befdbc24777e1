import AdminAPI
import ArgumentParser
import Foundation
import Identifiers

/// A noun of the admin API as the CLI shows it: its path in the route table, the fields that name an
/// item (so commands take a name or an email where an ID is expected), and its table columns.
protocol AdminNoun {
    associatedtype Item: APIObject
    static var singular: String { get }
    /// The noun's path in the route table (`/sites`); its item is `/sites/{id}`.
    static var path: String { get }
    /// What names an item besides its ID, for help texts ("name", "email").
    static var namingFields: [String] { get }
    static func names(of item: Item) -> [String]
    static func id(of item: Item) -> String
    static var columns: [String] { get }
    static func row(_ item: Item) -> [String]
}

/// Options that make a request body; they may look names up through the API.
protocol BodyOptions: ParsableArguments {
    associatedtype Body: APIObject
    /// More help for the command that takes these options.
    static var discussion: String { get }
    func body(_ client: AdminClient) async throws -> Body
}

extension BodyOptions {
    static var discussion: String { "" }
}

/// A noun the CLI can create.
protocol CreatableNoun: AdminNoun {
    associatedtype CreateOptions: BodyOptions
    /// What `POST` answers (the item, or more: a token's secret).
    associatedtype Created: APIObject
    static func report(_ created: Created)
}

/// A noun the CLI can change.
protocol UpdatableNoun: AdminNoun {
    associatedtype UpdateOptions: BodyOptions
    /// "update", or "rename" when a name is all that changes.
    static var updateVerb: String { get }
}

extension AdminNoun {
    static var namingFields: [String] { ["name"] }
    static var itemPath: String { path + "/{id}" }
    static var help: String { "The \(singular)'s ID\(namingFields.isEmpty ? "" : " or " + namingFields.joined(separator: " or "))." }
}

extension CreatableNoun where Created == Item {
    static func report(_ created: Created) {
        printTable(columns, [row(created)])
    }
}

extension AdminClient {
    /// The ID of the `Noun` that `reference` names: an ID as it is, or the one item whose naming field equals it.
    func resolve<Noun: AdminNoun>(_ reference: String, _ noun: Noun.Type) async throws -> String {
        if Schema.isID(reference) { return reference.lowercased() }
        let matches = Noun.namingFields.isEmpty ? [] : try await list(Noun.path, as: Noun.Item.self).filter { Noun.names(of: $0).contains(reference) }
        guard matches.count == 1 else {
            throw Failure(description: matches.isEmpty ? "\(Noun.singular) \"\(reference)\" not found" : "\(Noun.singular) \"\(reference)\" is ambiguous; use its ID")
        }
        return Noun.id(of: matches[0])
    }
}

/// Sites and groups: things that are only a name.
enum NamedNoun<Noun: IdentifiedNoun>: CreatableNoun, UpdatableNoun {
    typealias Created = Named<Noun>
    static var singular: String { Noun.noun }
    static var path: String { "/\(Noun.noun)s" }
    static var updateVerb: String { "rename" }
    static func names(of item: Named<Noun>) -> [String] { [item.name] }
    static func id(of item: Named<Noun>) -> String { item.id.description }
    static var columns: [String] { ["ID", "NAME", "CREATED"] }
    static func row(_ item: Named<Noun>) -> [String] { [item.id.description, item.name, ISO8601DateFormatter().string(from: item.createdAt)] }

    struct CreateOptions: BodyOptions {
        @Option(help: ArgumentHelp("The \(Noun.noun)'s name, unique in the account.")) var name: String
        func body(_ client: AdminClient) async throws -> Naming { Naming(name: name) }
    }

    struct UpdateOptions: BodyOptions {
        @Option(help: "The new name.") var name: String
        func body(_ client: AdminClient) async throws -> Naming { Naming(name: name) }
    }
}

typealias Sites = NamedNoun<SiteNoun>
typealias Groups = NamedNoun<GroupNoun>

enum Actors: CreatableNoun, UpdatableNoun {
    typealias Created = AdminAPI.Actor
    static let singular = "actor"
    static let path = "/actors"
    static let updateVerb = "update"
    static let namingFields = ["email", "name"]
    static func names(of item: AdminAPI.Actor) -> [String] { [item.email, item.name].compactMap { $0 } }
    static func id(of item: AdminAPI.Actor) -> String { item.id.description }
    static let columns = ["ID", "TYPE", "NAME", "EMAIL", "DISABLED"]
    static func row(_ item: AdminAPI.Actor) -> [String] {
        [item.id.description, item.type.rawValue, item.name, item.email ?? "", "\(item.disabled)"]
    }

    struct CreateOptions: BodyOptions {
        @Option(help: "user, admin or service_account.") var type: String = "user"
        @Option(help: "Display name.") var name: String
        @Option(help: "Email (users and admins; not service accounts).") var email: String?
        func body(_ client: AdminClient) async throws -> CreateActor {
            CreateActor(type: try choice(type, "type"), name: name, email: email)
        }
    }

    struct UpdateOptions: BodyOptions {
        @Option(help: "The new display name.") var name: String?
        @Option(help: "The new email (users and admins).") var email: String?
        func body(_ client: AdminClient) async throws -> UpdateActor {
            guard name != nil || email != nil else { throw ValidationError("nothing to change: give --name or --email") }
            return UpdateActor(name: name, email: email)
        }
    }
}

enum Resources: CreatableNoun, UpdatableNoun {
    typealias Created = Resource
    static let singular = "resource"
    static let path = "/resources"
    static let updateVerb = "update"
    static func names(of item: Resource) -> [String] { [item.name] }
    static func id(of item: Resource) -> String { item.id.description }
    static let columns = ["ID", "NAME", "TYPE", "ADDRESS", "FILTERS"]
    static func row(_ item: Resource) -> [String] {
        [item.id.description, item.name, item.type.rawValue, item.address, item.filters.joined(separator: ",")]
    }

    struct CreateOptions: BodyOptions {
        static let discussion = "Example: gatehouse admin resource create --name db --type cidr --address 10.0.0.0/24 --site hq --filter tcp:5432"
        @Option(help: "Name, unique in the account.") var name: String
        @Option(help: "cidr, ip or dns.") var type: String
        @Option(help: "A network, an address or a DNS pattern (*, ?, **).") var address: String
        @Option(help: "The site's name or ID.") var site: String
        @Option(help: "tcp[:PORTS], udp[:PORTS] or icmp; repeatable; none means all traffic.") var filter: [String] = []
        @Option(help: "Shown to users (often a URL).") var description: String?
        @Option(help: "For dns resources: ipv4, ipv6 or dual (default dual).") var ipStack: String?
        func body(_ client: AdminClient) async throws -> CreateResource {
            let kind: Resource.Kind = try choice(type, "type")
            let stack: Resource.IPStack? = try ipStack.map { try choice($0, "ip_stack") }
            return CreateResource(name: name, type: kind, address: address, siteID: try await client.resolve(site, Sites.self).id(),
                                  filters: filter, addressDescription: description, ipStack: stack)
        }
    }

    struct UpdateOptions: BodyOptions {
        @Option(help: "New name.") var name: String?
        @Option(help: "cidr, ip or dns.") var type: String?
        @Option(help: "A network, an address or a DNS pattern.") var address: String?
        @Option(help: "The site's name or ID.") var site: String?
        @Option(help: "Replace the filters: tcp[:PORTS], udp[:PORTS] or icmp; repeatable.") var filter: [String] = []
        @Flag(help: "Remove every filter (all traffic).") var clearFilters = false
        @Option(help: "Shown to users (often a URL).") var description: String?
        @Option(help: "For dns resources: ipv4, ipv6 or dual.") var ipStack: String?
        func body(_ client: AdminClient) async throws -> UpdateResource {
            let body = UpdateResource(
                name: name, type: try type.map { try choice($0, "type") }, address: address,
                siteID: try await site.asyncMap { try await client.resolve($0, Sites.self).id() },
                filters: !filter.isEmpty || clearFilters ? filter : nil, addressDescription: description,
                ipStack: try ipStack.map { try choice($0, "ip_stack") })
            guard body != UpdateResource() else { throw ValidationError("nothing to change") }
            return body
        }
    }
}

enum Policies: CreatableNoun, UpdatableNoun {
    typealias Created = AdminAPI.Policy
    static let singular = "policy"
    static let path = "/policies"
    static let updateVerb = "update"
    static let namingFields: [String] = []
    static func names(of item: AdminAPI.Policy) -> [String] { [] }
    static func id(of item: AdminAPI.Policy) -> String { item.id.description }
    static let columns = ["ID", "GROUP", "RESOURCE", "CONDITIONS", "DISABLED"]
    static func row(_ item: AdminAPI.Policy) -> [String] {
        [item.id.description, item.groupID.description, item.resourceID.description, item.conditions.joined(separator: " "), "\(item.disabled)"]
    }

    static let conditionHelp = ArgumentHelp("""
        A condition that must hold; repeatable, all must hold: source_in:CIDR[,CIDR...], source_not_in:CIDR[,...], \
        time:DAYS/HH:MM-HH:MM/ZONE[,...] (days M T W R F S U, e.g. time:MTWRF/09:00-17:00/Europe/Berlin), verified.
        """)

    struct CreateOptions: BodyOptions {
        @Option(help: "The group's name or ID.") var group: String
        @Option(help: "The resource's name or ID.") var resource: String
        @Option(help: "Why the policy exists.") var description: String?
        @Option(help: Policies.conditionHelp) var condition: [String] = []
        @Flag(help: "Create it disabled.") var disabled = false
        func body(_ client: AdminClient) async throws -> CreatePolicy {
            CreatePolicy(groupID: try await client.resolve(group, Groups.self).id(), resourceID: try await client.resolve(resource, Resources.self).id(),
                         description: description, disabled: disabled, conditions: condition)
        }
    }

    struct UpdateOptions: BodyOptions {
        @Option(help: "The group's name or ID.") var group: String?
        @Option(help: "The resource's name or ID.") var resource: String?
        @Option(help: "Replace the conditions (repeatable; see policy create --help).") var condition: [String] = []
        @Flag(help: "Remove every condition.") var clearConditions = false
        @Option(help: "Why the policy exists.") var description: String?
        @Flag(help: "Disable the policy.") var disable = false
        @Flag(help: "Enable the policy.") var enable = false
        func body(_ client: AdminClient) async throws -> UpdatePolicy {
            guard !(disable && enable) else { throw ValidationError("--disable and --enable contradict each other") }
            let body = UpdatePolicy(
                groupID: try await group.asyncMap { try await client.resolve($0, Groups.self).id() },
                resourceID: try await resource.asyncMap { try await client.resolve($0, Resources.self).id() },
                description: description, disabled: disable || enable ? disable : nil,
                conditions: !condition.isEmpty || clearConditions ? condition : nil)
            guard body != UpdatePolicy() else { throw ValidationError("nothing to change") }
            return body
        }
    }
}

enum Tokens: CreatableNoun {
    typealias Created = CreatedToken
    static let singular = "token"
    static let path = "/tokens"
    static let namingFields: [String] = []
    static func names(of item: Token) -> [String] { [] }
    static func id(of item: Token) -> String { item.id.description }
    static let columns = ["ID", "KIND", "OWNER", "EXPIRES", "LAST USED"]
    static func row(_ item: Token) -> [String] {
        let dates = ISO8601DateFormatter()
        return [item.id.description, item.kind.rawValue, item.actorID?.description ?? item.siteID?.description ?? "",
                item.expiresAt.map(dates.string) ?? "never", item.lastUsedAt.map(dates.string) ?? ""]
    }

    static func report(_ created: CreatedToken) {
        print("token \(created.token.id) (\(created.token.kind.rawValue)); its secret is shown only now:")
        print(created.secret)
    }

    struct CreateOptions: BodyOptions {
        static let discussion = "admin_api and client tokens belong to an actor (--actor), gateway tokens to a site (--site). Relay tokens belong to the installation: the operator makes them on the portal host with gatehouse portal relay-token create."
        @Option(help: "admin_api, client or gateway.") var kind: String
        @Option(help: "The owning actor's email, name or ID.") var actor: String?
        @Option(help: "The owning site's name or ID.") var site: String?
        @Option(help: "Lifetime in seconds (60 to ten years); none means it does not expire.") var expiresIn: Int?
        func body(_ client: AdminClient) async throws -> CreateToken {
            if kind == "relay" {
                throw ValidationError("relay tokens belong to the installation: make one on the portal host with gatehouse portal relay-token create")
            }
            return CreateToken(kind: try choice(kind, "kind"), actorID: try await actor.asyncMap { try await client.resolve($0, Actors.self).id() },
                        siteID: try await site.asyncMap { try await client.resolve($0, Sites.self).id() }, expiresInSeconds: expiresIn)
        }
    }
}

enum Clients: AdminNoun {
    static let singular = "client"
    static let path = "/clients"
    static let namingFields = ["name", "external_id"]
    static func names(of item: Device) -> [String] { [item.name, item.externalID] }
    static func id(of item: Device) -> String { item.id.description }
    static let columns = ["ID", "NAME", "ACTOR", "VERIFIED", "ONLINE", "LAST SEEN"]
    static func row(_ item: Device) -> [String] {
        [item.id.description, item.name, item.actorID?.description ?? "", "\(item.verified ?? false)", "\(item.online)",
         item.lastSeenAt.map(ISO8601DateFormatter().string) ?? ""]
    }
}

enum Gateways: AdminNoun {
    static let singular = "gateway"
    static let path = "/gateways"
    static func names(of item: Device) -> [String] { [item.name] }
    static func id(of item: Device) -> String { item.id.description }
    static let columns = ["ID", "NAME", "SITE", "ONLINE", "VERSION", "LAST SEEN"]
    static func row(_ item: Device) -> [String] {
        [item.id.description, item.name, item.siteID?.description ?? "", "\(item.online)", item.version ?? "",
         item.lastSeenAt.map(ISO8601DateFormatter().string) ?? ""]
    }
}

extension String {
    /// This text as a typed ID (it came from `resolve`, which gives only IDs).
    func id<Noun>() throws -> Identifier<Noun> {
        guard let id = Identifier<Noun>(self) else { throw AdminClient.Failure(description: "\"\(self)\" is not an ID") }
        return id
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
