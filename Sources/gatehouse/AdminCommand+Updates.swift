import ArgumentParser
import Foundation

// Admin commands that change existing things, and the account, tokens, clients, gateways and audit log.

/// Prints one object as a two-column table (or JSON).
func printObject(_ object: [String: Any], json: Bool, keys: [String]) throws {
    if json { return try printJSON(object) }
    printTable(["FIELD", "VALUE"], keys.compactMap { key in
        guard let value = object[key] else { return nil }
        let text = (value as? [String])?.joined(separator: ",") ?? "\(value)"
        return [key, text]
    })
}

extension SiteCommand {
    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a site.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The site's name or ID.") var site: String
        @Option(help: "The new name.") var name: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(site, in: "/api/v1/sites", keys: ["name"], what: "site")
            let updated = try await client.call("PATCH", "/api/v1/sites/\(id)", body: ["name": name]).json as? [String: Any] ?? [:]
            try printObject(updated, json: options.json, keys: ["id", "name"])
        }
    }
}

extension GroupCommand {
    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a group.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The group's name or ID.") var group: String
        @Option(help: "The new name.") var name: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(group, in: "/api/v1/groups", keys: ["name"], what: "group")
            let updated = try await client.call("PATCH", "/api/v1/groups/\(id)", body: ["name": name]).json as? [String: Any] ?? [:]
            try printObject(updated, json: options.json, keys: ["id", "name"])
        }
    }
}

extension ActorCommand {
    static let keys = ["id", "type", "name", "email", "disabled"]

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename an actor or change its email.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The actor's email, name or ID.") var actor: String
        @Option(help: "The new display name.") var name: String?
        @Option(help: "The new email (users and admins).") var email: String?
        func run() async throws {
            var body: [String: Any] = [:]
            if let name { body["name"] = name }
            if let email { body["email"] = email }
            guard !body.isEmpty else { throw ValidationError("nothing to change: give --name or --email") }
            let client = try options.client()
            let id = try await client.resolve(actor, in: "/api/v1/actors", keys: ["email", "name"], what: "actor")
            try printObject(try await client.call("PATCH", "/api/v1/actors/\(id)", body: body).json as? [String: Any] ?? [:],
                            json: options.json, keys: ActorCommand.keys)
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an actor: its access ends at once; it keeps its memberships.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The actor's email, name or ID.") var actor: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(actor, in: "/api/v1/actors", keys: ["email", "name"], what: "actor")
            try printObject(try await client.call("PATCH", "/api/v1/actors/\(id)", body: ["disabled": true]).json as? [String: Any] ?? [:],
                            json: options.json, keys: ActorCommand.keys)
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled actor.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The actor's email, name or ID.") var actor: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(actor, in: "/api/v1/actors", keys: ["email", "name"], what: "actor")
            try printObject(try await client.call("PATCH", "/api/v1/actors/\(id)", body: ["disabled": false]).json as? [String: Any] ?? [:],
                            json: options.json, keys: ActorCommand.keys)
        }
    }
}

extension ResourceCommand {
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a resource. Changing its address, type or site revokes access granted for it; changing filters does not.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The resource's name or ID.") var resource: String
        @Option(help: "New name.") var name: String?
        @Option(help: "cidr, ip or dns.") var type: String?
        @Option(help: "A network, an address or a DNS pattern.") var address: String?
        @Option(help: "The site's name or ID.") var site: String?
        @Option(help: "Replace the filters: tcp[:PORTS], udp[:PORTS] or icmp; repeatable.") var filter: [String] = []
        @Flag(help: "Remove every filter (all traffic).") var clearFilters = false
        @Option(help: "Shown to users (often a URL).") var description: String?
        @Option(help: "For dns resources: ipv4, ipv6 or dual.") var ipStack: String?
        func run() async throws {
            let client = try options.client()
            var body: [String: Any] = [:]
            if let name { body["name"] = name }
            if let type { body["type"] = type }
            if let address { body["address"] = address }
            if let site { body["site_id"] = try await client.resolve(site, in: "/api/v1/sites", keys: ["name"], what: "site") }
            if !filter.isEmpty || clearFilters { body["filters"] = filter }
            if let description { body["address_description"] = description }
            if let ipStack { body["ip_stack"] = ipStack }
            guard !body.isEmpty else { throw ValidationError("nothing to change") }
            let id = try await client.resolve(resource, in: "/api/v1/resources", keys: ["name"], what: "resource")
            try printObject(try await client.call("PATCH", "/api/v1/resources/\(id)", body: body).json as? [String: Any] ?? [:],
                            json: options.json, keys: ["id", "name", "type", "address", "site_id", "filters", "ip_stack"])
        }
    }
}

extension PolicyCommand {
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a policy's group, resource, conditions, description, or enable/disable it.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The policy's ID.") var policy: String
        @Option(help: "The group's name or ID.") var group: String?
        @Option(help: "The resource's name or ID.") var resource: String?
        @Option(help: "Replace the conditions (repeatable; see policy create --help).") var condition: [String] = []
        @Flag(help: "Remove every condition.") var clearConditions = false
        @Option(help: "Why the policy exists.") var description: String?
        @Flag(help: "Disable the policy.") var disable = false
        @Flag(help: "Enable the policy.") var enable = false
        func run() async throws {
            guard !(disable && enable) else { throw ValidationError("--disable and --enable contradict each other") }
            let client = try options.client()
            var body: [String: Any] = [:]
            if let group { body["group_id"] = try await client.resolve(group, in: "/api/v1/groups", keys: ["name"], what: "group") }
            if let resource { body["resource_id"] = try await client.resolve(resource, in: "/api/v1/resources", keys: ["name"], what: "resource") }
            if !condition.isEmpty || clearConditions { body["conditions"] = condition }
            if let description { body["description"] = description }
            if disable || enable { body["disabled"] = disable }
            guard !body.isEmpty else { throw ValidationError("nothing to change") }
            try printObject(try await client.call("PATCH", "/api/v1/policies/\(policy)", body: body).json as? [String: Any] ?? [:],
                            json: options.json, keys: ["id", "group_id", "resource_id", "conditions", "disabled", "description"])
        }
    }
}

struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "The account: its name and tunnel address ranges.", subcommands: [Show.self, Set.self])

    static let keys = ["id", "name", "slug", "tunnel_ipv4_range", "tunnel_ipv6_range"]

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the account.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            try printObject(try await options.client().call("GET", "/api/v1/account").json as? [String: Any] ?? [:],
                            json: options.json, keys: AccountCommand.keys)
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the account's name or tunnel address ranges.",
            discussion: """
                Clients and gateways get tunnel addresses from these ranges (defaults 100.64.0.0/11 and fd00:6761:7465::/48). \
                Choose others when your network already uses them; resources may not overlap them.
                """)
        @OptionGroup var options: AdminOptions
        @Option(help: "The account's display name.") var name: String?
        @Option(help: "IPv4 tunnel range, /8 to /24.") var tunnelIpv4Range: String?
        @Option(help: "IPv6 tunnel range, /32 to /96.") var tunnelIpv6Range: String?
        func run() async throws {
            var body: [String: Any] = [:]
            if let name { body["name"] = name }
            if let tunnelIpv4Range { body["tunnel_ipv4_range"] = tunnelIpv4Range }
            if let tunnelIpv6Range { body["tunnel_ipv6_range"] = tunnelIpv6Range }
            guard !body.isEmpty else { throw ValidationError("nothing to change") }
            try printObject(try await options.client().call("PATCH", "/api/v1/account", body: body).json as? [String: Any] ?? [:],
                            json: options.json, keys: AccountCommand.keys)
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Tokens for the admin API, clients, gateways and relays.",
        subcommands: [List.self, ShowCommand<TokenNoun>.self, Create.self, Revoke.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let tokens = try await options.client().list("/api/v1/tokens")
            if options.json { return try printJSON(tokens) }
            printTable(["ID", "KIND", "OWNER", "EXPIRES", "LAST USED"], tokens.map {
                [$0["id"] as? String ?? "", $0["kind"] as? String ?? "", ($0["actor_id"] ?? $0["site_id"]) as? String ?? "",
                 $0["expires_at"] as? String ?? "never", $0["last_used_at"] as? String ?? ""]
            })
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token and print its secret, this once.",
            discussion: "admin_api and client tokens belong to an actor (--actor), gateway tokens to a site (--site), relay tokens to nobody.")
        @OptionGroup var options: AdminOptions
        @Option(help: "admin_api, client, gateway or relay.") var kind: String
        @Option(help: "The owning actor's email, name or ID.") var actor: String?
        @Option(help: "The owning site's name or ID.") var site: String?
        @Option(help: "Lifetime in seconds (60 to ten years); none means it does not expire.") var expiresIn: Int?
        func run() async throws {
            let client = try options.client()
            var body: [String: Any] = ["kind": kind]
            if let actor { body["actor_id"] = try await client.resolve(actor, in: "/api/v1/actors", keys: ["email", "name"], what: "actor") }
            if let site { body["site_id"] = try await client.resolve(site, in: "/api/v1/sites", keys: ["name"], what: "site") }
            if let expiresIn { body["expires_in_seconds"] = expiresIn }
            let token = try await client.call("POST", "/api/v1/tokens", body: body).json as? [String: Any] ?? [:]
            if options.json { return try printJSON(token) }
            print("token \(token["id"] as? String ?? "") (\(kind)); its secret is shown only now:")
            print(token["secret"] as? String ?? "")
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: it stops working at once.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The token's ID.") var token: String
        func run() async throws {
            _ = try await options.client().call("DELETE", "/api/v1/tokens/\(token)")
            if !options.json { print("revoked token \(token)") }
        }
    }
}

struct AdminClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client", abstract: "Clients that signed in, and whether an admin verified them.",
        subcommands: [List.self, ShowCommand<ClientNoun>.self, Verify.self, Unverify.self])

    static func table(_ clients: [[String: Any]]) {
        printTable(["ID", "NAME", "ACTOR", "VERIFIED", "ONLINE", "LAST SEEN"], clients.map {
            [$0["id"] as? String ?? "", $0["name"] as? String ?? "", $0["actor_id"] as? String ?? "", "\($0["verified"] as? Bool ?? false)",
             "\($0["online"] as? Bool ?? false)", $0["last_seen_at"] as? String ?? ""]
        })
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List clients.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let clients = try await options.client().list("/api/v1/clients")
            if options.json { return try printJSON(clients) }
            AdminClientCommand.table(clients)
        }
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark a client verified (policies with the verified condition then grant it).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The client's name or ID.") var client: String
        func run() async throws {
            let api = try options.client()
            let id = try await api.resolve(client, in: "/api/v1/clients", keys: ["name", "external_id"], what: "client")
            let answer = try await api.call("PUT", "/api/v1/clients/\(id)/verified").json as? [String: Any] ?? [:]
            if options.json { return try printJSON(answer) }
            AdminClientCommand.table([answer])
        }
    }

    struct Unverify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw a client's verification: access that needed it ends at once.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The client's name or ID.") var client: String
        func run() async throws {
            let api = try options.client()
            let id = try await api.resolve(client, in: "/api/v1/clients", keys: ["name", "external_id"], what: "client")
            let answer = try await api.call("DELETE", "/api/v1/clients/\(id)/verified").json as? [String: Any] ?? [:]
            if options.json { return try printJSON(answer) }
            AdminClientCommand.table([answer])
        }
    }
}

struct AdminGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gateway", abstract: "Gateways and whether they are online.",
                                                    subcommands: [List.self, ShowCommand<GatewayNoun>.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List gateways.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let gateways = try await options.client().list("/api/v1/gateways")
            if options.json { return try printJSON(gateways) }
            printTable(["ID", "NAME", "SITE", "ONLINE", "VERSION", "LAST SEEN"], gateways.map {
                [$0["id"] as? String ?? "", $0["name"] as? String ?? "", $0["site_id"] as? String ?? "", "\($0["online"] as? Bool ?? false)",
                 $0["version"] as? String ?? "", $0["last_seen_at"] as? String ?? ""]
            })
        }
    }
}

struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "The audit log: who changed what, when.",
                                                    subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the newest audit events.")
        @OptionGroup var options: AdminOptions
        @Option(help: "How many events, 1-500.") var limit = 50
        func run() async throws {
            let answer = try await options.client().call("GET", "/api/v1/audit?limit=\(limit)").json as? [String: Any] ?? [:]
            let events = answer["data"] as? [[String: Any]] ?? []
            if options.json { return try printJSON(events) }
            printTable(["AT", "WHO", "ACTION", "SUBJECT", "ID"], events.map {
                [$0["at"] as? String ?? "", $0["actor_name"] as? String ?? "", $0["action"] as? String ?? "", $0["subject_type"] as? String ?? "",
                 $0["subject_id"] as? String ?? ""]
            })
        }
    }
}
