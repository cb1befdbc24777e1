import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage a portal from the shell, through its admin API.",
        discussion: """
            The portal URL and admin token come from --portal-url and --token, or GATEHOUSE_PORTAL_URL and \
            GATEHOUSE_TOKEN. Names are accepted wherever IDs are. Output is a table; --json prints the API's JSON.
            """,
        subcommands: [AccountCommand.self, SiteCommand.self, GroupCommand.self, ActorCommand.self, ResourceCommand.self, PolicyCommand.self,
                      AccessCommand.self, TokenCommand.self, AdminClientCommand.self, AdminGatewayCommand.self, AuditCommand.self]
    )
}

/// What every admin command takes.
struct AdminOptions: ParsableArguments {
    @Option(help: "Portal URL, e.g. http://127.0.0.1:8080. [GATEHOUSE_PORTAL_URL]") var portalURL: String?
    @Option(help: "Admin API token. [GATEHOUSE_TOKEN]") var token: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    func client() throws -> AdminClient {
        let environment = Environment()
        guard let url = environment.string(portalURL, "GATEHOUSE_PORTAL_URL"), let base = URL(string: url), base.scheme != nil else {
            throw ValidationError("the portal URL is required: --portal-url or GATEHOUSE_PORTAL_URL")
        }
        guard let token = environment.string(token, "GATEHOUSE_TOKEN") else {
            throw ValidationError("an admin token is required: --token or GATEHOUSE_TOKEN")
        }
        return AdminClient(base: base, token: token)
    }
}

/// The admin API over HTTP. A failed call becomes an error with the API's message.
struct AdminClient {
    let base: URL
    let token: String

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func call(_ method: String, _ path: String, body: [String: Any]? = nil) async throws -> (status: Int, json: Any?) {
        guard let url = URL(string: path, relativeTo: base) else { throw Failure(description: "bad path \(path)") }
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response): (Data, URLResponse)
        do {
            (data, response) = try await URLSession.shared.data(for: request)
        } catch {
            throw Failure(description: "cannot reach the portal at \(base.absoluteString): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        let json = data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data)
        if !(200..<300).contains(status) {
            let error = (json as? [String: Any])?["error"] as? [String: Any]
            throw Failure(description: (error?["message"] as? String) ?? "the portal answered HTTP \(status)")
        }
        return (status, json)
    }

    /// Every item of a paginated list.
    func list(_ path: String) async throws -> [[String: Any]] {
        var items: [[String: Any]] = []
        var cursor: String?
        repeat {
            let query = cursor.map { "?limit=500&cursor=\($0.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? $0)" } ?? "?limit=500"
            let page = try await call("GET", path + query).json as? [String: Any]
            items += page?["data"] as? [[String: Any]] ?? []
            cursor = page?["next_cursor"] as? String
        } while cursor != nil
        return items
    }
}

/// Prints rows under a header, columns padded to their widest cell.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
}

func printJSON(_ value: Any) throws {
    let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

struct SiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site", abstract: "Sites: places where gateways run.",
        subcommands: [List.self, ShowCommand<SiteNoun>.self, Create.self, Rename.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sites.")
        @OptionGroup var options: AdminOptions

        func run() async throws {
            let sites = try await options.client().list("/api/v1/sites")
            if options.json { return try printJSON(sites) }
            printTable(["ID", "NAME", "CREATED"], sites.map { [$0["id"] as? String ?? "", $0["name"] as? String ?? "", $0["created_at"] as? String ?? ""] })
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a site.")
        @OptionGroup var options: AdminOptions
        @Option(help: "The site's name, unique in the account.") var name: String

        func run() async throws {
            let site = try await options.client().call("POST", "/api/v1/sites", body: ["name": name]).json as? [String: Any] ?? [:]
            if options.json { return try printJSON(site) }
            printTable(["ID", "NAME"], [[site["id"] as? String ?? "", site["name"] as? String ?? ""]])
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a site and its resources.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The site's name or ID.") var site: String

        func run() async throws {
            let client = try options.client()
            var id = site
            if UUID(uuidString: site) == nil {
                guard let match = try await client.list("/api/v1/sites").first(where: { $0["name"] as? String == site }),
                      let found = match["id"] as? String else {
                    throw AdminClient.Failure(description: "site \"\(site)\" not found")
                }
                id = found
            }
            _ = try await client.call("DELETE", "/api/v1/sites/\(id)")
            if !options.json { print("deleted site \(site)") }
        }
    }
}

extension AdminClient {
    /// The ID of the item of `path` whose ID, or any of `keys`, equals `reference`.
    func resolve(_ reference: String, in path: String, keys: [String], what: String) async throws -> String {
        if UUID(uuidString: reference) != nil { return reference.lowercased() }
        let matches = try await list(path).filter { item in keys.contains { item[$0] as? String == reference } }
        guard matches.count == 1, let id = matches[0]["id"] as? String else {
            throw Failure(description: matches.isEmpty ? "\(what) \"\(reference)\" not found" : "\(what) \"\(reference)\" is ambiguous; use its ID")
        }
        return id
    }
}

struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "Groups of actors, the subjects of policies.",
        subcommands: [List.self, ShowCommand<GroupNoun>.self, Create.self, Rename.self, Delete.self, Members.self, AddMember.self, RemoveMember.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List groups.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let groups = try await options.client().list("/api/v1/groups")
            if options.json { return try printJSON(groups) }
            printTable(["ID", "NAME"], groups.map { [$0["id"] as? String ?? "", $0["name"] as? String ?? ""] })
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a group.")
        @OptionGroup var options: AdminOptions
        @Option(help: "The group's name, unique in the account.") var name: String
        func run() async throws {
            let group = try await options.client().call("POST", "/api/v1/groups", body: ["name": name]).json as? [String: Any] ?? [:]
            if options.json { return try printJSON(group) }
            printTable(["ID", "NAME"], [[group["id"] as? String ?? "", group["name"] as? String ?? ""]])
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a group (its policies go with it).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The group's name or ID.") var group: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(group, in: "/api/v1/groups", keys: ["name"], what: "group")
            _ = try await client.call("DELETE", "/api/v1/groups/\(id)")
            if !options.json { print("deleted group \(group)") }
        }
    }

    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a group's members.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The group's name or ID.") var group: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(group, in: "/api/v1/groups", keys: ["name"], what: "group")
            let members = (try await client.call("GET", "/api/v1/groups/\(id)/members").json as? [String: Any])?["data"] as? [[String: Any]] ?? []
            if options.json { return try printJSON(members) }
            printTable(["ID", "TYPE", "NAME", "EMAIL"], members.map {
                [$0["id"] as? String ?? "", $0["type"] as? String ?? "", $0["name"] as? String ?? "", $0["email"] as? String ?? ""]
            })
        }
    }

    struct AddMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-member", abstract: "Add an actor to a group.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The group's name or ID.") var group: String
        @Argument(help: "The actor's email, name or ID.") var actor: String
        func run() async throws {
            let client = try options.client()
            let groupID = try await client.resolve(group, in: "/api/v1/groups", keys: ["name"], what: "group")
            let actorID = try await client.resolve(actor, in: "/api/v1/actors", keys: ["email", "name"], what: "actor")
            _ = try await client.call("PUT", "/api/v1/groups/\(groupID)/members/\(actorID)")
            if !options.json { print("\(actor) is a member of \(group)") }
        }
    }

    struct RemoveMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove-member", abstract: "Remove an actor from a group.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The group's name or ID.") var group: String
        @Argument(help: "The actor's email, name or ID.") var actor: String
        func run() async throws {
            let client = try options.client()
            let groupID = try await client.resolve(group, in: "/api/v1/groups", keys: ["name"], what: "group")
            let actorID = try await client.resolve(actor, in: "/api/v1/actors", keys: ["email", "name"], what: "actor")
            _ = try await client.call("DELETE", "/api/v1/groups/\(groupID)/members/\(actorID)")
            if !options.json { print("\(actor) is no longer a member of \(group)") }
        }
    }
}

struct ActorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actor", abstract: "Users, admins and service accounts.",
        subcommands: [List.self, ShowCommand<ActorNoun>.self, Create.self, Update.self, Disable.self, Enable.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List actors.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let actors = try await options.client().list("/api/v1/actors")
            if options.json { return try printJSON(actors) }
            printTable(["ID", "TYPE", "NAME", "EMAIL", "DISABLED"], actors.map {
                [$0["id"] as? String ?? "", $0["type"] as? String ?? "", $0["name"] as? String ?? "", $0["email"] as? String ?? "",
                 "\($0["disabled"] as? Bool ?? false)"]
            })
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user, admin or service account.")
        @OptionGroup var options: AdminOptions
        @Option(help: "user, admin or service_account.") var type: String = "user"
        @Option(help: "Display name.") var name: String
        @Option(help: "Email (users and admins; not service accounts).") var email: String?
        func run() async throws {
            var body: [String: Any] = ["type": type, "name": name]
            if let email { body["email"] = email }
            let actor = try await options.client().call("POST", "/api/v1/actors", body: body).json as? [String: Any] ?? [:]
            if options.json { return try printJSON(actor) }
            printTable(["ID", "TYPE", "NAME", "EMAIL"], [[actor["id"] as? String ?? "", actor["type"] as? String ?? "",
                                                         actor["name"] as? String ?? "", actor["email"] as? String ?? ""]])
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an actor (memberships and tokens go with it).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The actor's email, name or ID.") var actor: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(actor, in: "/api/v1/actors", keys: ["email", "name"], what: "actor")
            _ = try await client.call("DELETE", "/api/v1/actors/\(id)")
            if !options.json { print("deleted actor \(actor)") }
        }
    }
}

struct ResourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resource", abstract: "Resources: networks, hosts and DNS names behind a site's gateways.",
        subcommands: [List.self, ShowCommand<ResourceNoun>.self, Create.self, Update.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List resources.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let resources = try await options.client().list("/api/v1/resources")
            if options.json { return try printJSON(resources) }
            printTable(["ID", "NAME", "TYPE", "ADDRESS", "FILTERS"], resources.map {
                [$0["id"] as? String ?? "", $0["name"] as? String ?? "", $0["type"] as? String ?? "", $0["address"] as? String ?? "",
                 ($0["filters"] as? [String])?.joined(separator: ",") ?? ""]
            })
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a resource.",
            discussion: "Example: gatehouse admin resource create --name db --type cidr --address 10.0.0.0/24 --site hq --filter tcp:5432")
        @OptionGroup var options: AdminOptions
        @Option(help: "Name, unique in the account.") var name: String
        @Option(help: "cidr, ip or dns.") var type: String
        @Option(help: "A network, an address or a DNS pattern (*, ?, **).") var address: String
        @Option(help: "The site's name or ID.") var site: String
        @Option(help: "tcp[:PORTS], udp[:PORTS] or icmp; repeatable; none means all traffic.") var filter: [String] = []
        @Option(help: "Shown to users (often a URL).") var description: String?
        @Option(help: "For dns resources: ipv4, ipv6 or dual (default dual).") var ipStack: String?
        func run() async throws {
            let client = try options.client()
            let siteID = try await client.resolve(site, in: "/api/v1/sites", keys: ["name"], what: "site")
            var body: [String: Any] = ["name": name, "type": type, "address": address, "site_id": siteID, "filters": filter]
            if let description { body["address_description"] = description }
            if let ipStack { body["ip_stack"] = ipStack }
            let resource = try await client.call("POST", "/api/v1/resources", body: body).json as? [String: Any] ?? [:]
            if options.json { return try printJSON(resource) }
            printTable(["ID", "NAME", "TYPE", "ADDRESS", "FILTERS"], [[
                resource["id"] as? String ?? "", resource["name"] as? String ?? "", resource["type"] as? String ?? "",
                resource["address"] as? String ?? "", (resource["filters"] as? [String])?.joined(separator: ",") ?? "",
            ]])
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a resource.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The resource's name or ID.") var resource: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(resource, in: "/api/v1/resources", keys: ["name"], what: "resource")
            _ = try await client.call("DELETE", "/api/v1/resources/\(id)")
            if !options.json { print("deleted resource \(resource)") }
        }
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Policies: a group may reach a resource. Policies only allow.",
        subcommands: [List.self, ShowCommand<PolicyNoun>.self, Create.self, Update.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List policies.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let policies = try await options.client().list("/api/v1/policies")
            if options.json { return try printJSON(policies) }
            let client = try options.client()
            let groups = Dictionary(try await client.list("/api/v1/groups").map { ($0["id"] as? String ?? "", $0["name"] as? String ?? "") },
                                    uniquingKeysWith: { first, _ in first })
            let resources = Dictionary(try await client.list("/api/v1/resources").map { ($0["id"] as? String ?? "", $0["name"] as? String ?? "") },
                                       uniquingKeysWith: { first, _ in first })
            printTable(["ID", "GROUP", "RESOURCE", "CONDITIONS", "DISABLED"], policies.map {
                let group = $0["group_id"] as? String ?? ""
                let resource = $0["resource_id"] as? String ?? ""
                return [$0["id"] as? String ?? "", groups[group] ?? group, resources[resource] ?? resource,
                        ($0["conditions"] as? [String])?.joined(separator: " ") ?? "", "\($0["disabled"] as? Bool ?? false)"]
            })
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Let a group reach a resource.")
        @OptionGroup var options: AdminOptions
        @Option(help: "The group's name or ID.") var group: String
        @Option(help: "The resource's name or ID.") var resource: String
        @Option(help: "Why the policy exists.") var description: String?
        @Option(help: """
            A condition that must hold; repeatable, all must hold: source_in:CIDR[,CIDR...], source_not_in:CIDR[,...],             time:DAYS/HH:MM-HH:MM/ZONE[,...] (days M T W R F S U, e.g. time:MTWRF/09:00-17:00/Europe/Berlin), verified.
            """) var condition: [String] = []
        @Flag(help: "Create it disabled.") var disabled = false
        func run() async throws {
            let client = try options.client()
            var body: [String: Any] = [
                "group_id": try await client.resolve(group, in: "/api/v1/groups", keys: ["name"], what: "group"),
                "resource_id": try await client.resolve(resource, in: "/api/v1/resources", keys: ["name"], what: "resource"),
                "disabled": disabled, "conditions": condition,
            ]
            if let description { body["description"] = description }
            let policy = try await client.call("POST", "/api/v1/policies", body: body).json as? [String: Any] ?? [:]
            if options.json { return try printJSON(policy) }
            print("policy \(policy["id"] as? String ?? ""): \(group) may reach \(resource)\(disabled ? " (disabled)" : "")")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a policy.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The policy's ID.") var policy: String
        func run() async throws {
            _ = try await options.client().call("DELETE", "/api/v1/policies/\(policy)")
            if !options.json { print("deleted policy \(policy)") }
        }
    }
}

struct AccessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "access", abstract: "Why may an actor reach a resource, or not?", subcommands: [Explain.self])

    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Explain an actor's access to a resource, policy by policy.")
        @OptionGroup var options: AdminOptions
        @Option(help: "The actor's email, name or ID.") var actor: String
        @Option(help: "The resource's name or ID.") var resource: String
        @Option(help: "One of the actor's clients (name or ID): its address and verified flag feed the conditions.") var client: String?
        @Option(help: "Evaluate at this time (ISO 8601, e.g. 2026-11-23T10:00:00Z) instead of now.") var at: String?
        func run() async throws {
            let api = try options.client()
            let actorID = try await api.resolve(actor, in: "/api/v1/actors", keys: ["email", "name"], what: "actor")
            let resourceID = try await api.resolve(resource, in: "/api/v1/resources", keys: ["name"], what: "resource")
            var query = "actor=\(actorID)&resource=\(resourceID)"
            if let client { query += "&client=\(client.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? client)" }
            if let at { query += "&at=\(at.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? at)" }
            let answer = try await api.call("GET", "/api/v1/access/explain?\(query)").json as? [String: Any] ?? [:]
            if options.json { return try printJSON(answer) }
            var headline = "\(actor) → \(resource): \(answer["decision"] as? String ?? "?")"
            if let expiry = answer["expires_at"] as? String { headline += " until \(expiry)" }
            if let failed = answer["failed_conditions"] as? [String], !failed.isEmpty { headline += " (failed: \(failed.joined(separator: ", ")))" }
            print(headline)
            let policies = answer["policies"] as? [[String: Any]] ?? []
            if policies.isEmpty { print("  no policy names this resource") }
            for policy in policies {
                let group = policy["group"] as? String ?? ""
                let contains = policy["group_contains_actor"] as? Bool ?? false
                let disabled = policy["disabled"] as? Bool ?? false
                print("  policy \(policy["policy_id"] as? String ?? ""): group \(group) \(contains ? "contains" : "does not contain") \(actor)\(disabled ? "; the policy is disabled" : "")")
                for condition in policy["conditions"] as? [[String: Any]] ?? [] {
                    print("    \(condition["holds"] as? Bool == true ? "holds" : "fails"): \(condition["condition"] as? String ?? "")")
                }
                if let until = policy["conditions_hold_until"] as? String { print("    conditions hold until \(until)") }
            }
        }
    }
}
