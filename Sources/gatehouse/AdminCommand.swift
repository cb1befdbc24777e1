import AdminAPI
import ArgumentParser
import Foundation

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage a portal from the shell, through its admin API.",
        discussion: """
            The portal URL and admin token come from --portal-url and --token, or GATEHOUSE_PORTAL_URL and \
            GATEHOUSE_TOKEN. Names are accepted wherever IDs are. Output is a table; --json prints the API's JSON.
            """,
        subcommands: [AccountCommand.self, SiteCommand.self, GroupCommand.self, ActorCommand.self, ResourceCommand.self, PolicyCommand.self,
                      AccessCommand.self, TokenCommand.self, AdminClientCommand.self, AdminGatewayCommand.self, AdminRelayCommand.self,
                      AuditCommand.self]
    )
}

struct SiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site", abstract: "Sites: places where gateways run.",
        subcommands: [ListCommand<Sites>.self, ShowCommand<Sites>.self, CreateCommand<Sites>.self, UpdateCommand<Sites>.self,
                      DeleteCommand<Sites>.self])
}

struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group", abstract: "Groups of actors, the subjects of policies.",
        subcommands: [ListCommand<Groups>.self, ShowCommand<Groups>.self, CreateCommand<Groups>.self, UpdateCommand<Groups>.self,
                      DeleteCommand<Groups>.self, Members.self, AddMember.self, RemoveMember.self])

    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a group's members.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The group's name or ID.") var group: String
        func run() async throws {
            let client = try options.client()
            let id = try await client.resolve(group, Groups.self)
            let members = try await client.send(.get, "/groups/{id}/members", parameters: ["id": id], as: AdminAPI.Members.self).data
            if options.json { return try printJSON(members) }
            printTable(["ID", "TYPE", "NAME", "EMAIL"], members.map { [$0.id.description, $0.type.rawValue, $0.name, $0.email ?? ""] })
        }
    }

    struct AddMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add-member", abstract: "Add an actor to a group.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The group's name or ID.") var group: String
        @Argument(help: "The actor's email, name or ID.") var actor: String
        @OptionGroup var write: DryRunOption
        func run() async throws {
            let client = try options.client()
            let parameters = ["id": try await client.resolve(group, Groups.self), "actor": try await client.resolve(actor, Actors.self)]
            if write.dryRun { return try await write.preview(client, .put, "/groups/{id}/members/{actor}", parameters: parameters, json: options.json) }
            try await client.call(.put, "/groups/{id}/members/{actor}", parameters: parameters)
            if !options.json { print("\(actor) is a member of \(group)") }
        }
    }

    struct RemoveMember: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "remove-member", abstract: "Remove an actor from a group.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The group's name or ID.") var group: String
        @Argument(help: "The actor's email, name or ID.") var actor: String
        @OptionGroup var write: DryRunOption
        func run() async throws {
            let client = try options.client()
            let parameters = ["id": try await client.resolve(group, Groups.self), "actor": try await client.resolve(actor, Actors.self)]
            if write.dryRun { return try await write.preview(client, .delete, "/groups/{id}/members/{actor}", parameters: parameters, json: options.json) }
            try await client.call(.delete, "/groups/{id}/members/{actor}", parameters: parameters)
            if !options.json { print("\(actor) is no longer a member of \(group)") }
        }
    }
}

struct ActorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "actor", abstract: "Users, admins and service accounts.",
        subcommands: [ListCommand<Actors>.self, ShowCommand<Actors>.self, CreateCommand<Actors>.self, UpdateCommand<Actors>.self,
                      Disable.self, Enable.self, DeleteCommand<Actors>.self])

    /// Sets an actor's disabled flag.
    static func setDisabled(_ disabled: Bool, actor: String, options: AdminOptions, write: DryRunOption) async throws {
        let client = try options.client()
        let id = try await client.resolve(actor, Actors.self)
        if write.dryRun {
            return try await write.preview(client, .patch, Actors.itemPath, parameters: ["id": id], body: UpdateActor(disabled: disabled), json: options.json)
        }
        let updated = try await client.send(.patch, Actors.itemPath, parameters: ["id": id], body: UpdateActor(disabled: disabled),
                                            as: AdminAPI.Actor.self)
        if options.json { return try printJSON(updated) }
        try printFields(updated)
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an actor: its access ends at once; it keeps its memberships.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The actor's email, name or ID.") var actor: String
        @OptionGroup var write: DryRunOption
        func run() async throws { try await ActorCommand.setDisabled(true, actor: actor, options: options, write: write) }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled actor.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The actor's email, name or ID.") var actor: String
        @OptionGroup var write: DryRunOption
        func run() async throws { try await ActorCommand.setDisabled(false, actor: actor, options: options, write: write) }
    }
}

struct ResourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resource", abstract: "Resources: networks, hosts and DNS names behind a site's gateways.",
        subcommands: [ListCommand<Resources>.self, ShowCommand<Resources>.self, CreateCommand<Resources>.self, UpdateCommand<Resources>.self,
                      DeleteCommand<Resources>.self])
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Policies: a group may reach a resource. Policies only allow.",
        subcommands: [ListCommand<Policies>.self, ShowCommand<Policies>.self, CreateCommand<Policies>.self, UpdateCommand<Policies>.self,
                      DeleteCommand<Policies>.self])
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Tokens for the admin API, clients, gateways and relays.",
        subcommands: [ListCommand<Tokens>.self, ShowCommand<Tokens>.self, CreateCommand<Tokens>.self, DeleteCommand<Tokens>.self])
}

struct AdminClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client", abstract: "Clients that signed in, and whether an admin verified them.",
        subcommands: [ListCommand<Clients>.self, ShowCommand<Clients>.self, Verify.self, Unverify.self])

    /// Marks a client verified or not.
    static func setVerified(_ verified: Bool, client: String, options: AdminOptions) async throws {
        let api = try options.client()
        let id = try await api.resolve(client, Clients.self)
        let answer = try await api.send(verified ? .put : .delete, "/clients/{id}/verified", parameters: ["id": id], as: Device.self)
        if options.json { return try printJSON(answer) }
        printTable(Clients.columns, [Clients.row(answer)])
    }

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mark a client verified (policies with the verified condition then grant it).")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The client's name or ID.") var client: String
        func run() async throws { try await AdminClientCommand.setVerified(true, client: client, options: options) }
    }

    struct Unverify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw a client's verification: access that needed it ends at once.")
        @OptionGroup var options: AdminOptions
        @Argument(help: "The client's name or ID.") var client: String
        func run() async throws { try await AdminClientCommand.setVerified(false, client: client, options: options) }
    }
}

struct AdminRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay", abstract: "Relays online now (they belong to the installation; the operator makes their tokens).",
        subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the relays connected to the portal now.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let relays = try await options.client().send(.get, "/relays", as: Page<Relay>.self).data
            if options.json { return try printJSON(relays) }
            let dates = ISO8601DateFormatter()
            printTable(["ID", "NAME", "IPV4", "IPV6", "PORT", "CONNECTED"], relays.map {
                [$0.id.description, $0.name, $0.ipv4 ?? "", $0.ipv6 ?? "", String($0.port), dates.string(from: $0.connectedAt)]
            })
        }
    }
}

struct AdminGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gateway", abstract: "Gateways and whether they are online.",
                                                    subcommands: [ListCommand<Gateways>.self, ShowCommand<Gateways>.self])
}

struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "The account: its name and tunnel address ranges.", subcommands: [Show.self, Set.self])

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the account.")
        @OptionGroup var options: AdminOptions
        func run() async throws {
            let account = try await options.client().send(.get, "/account", as: Account.self)
            if options.json { return try printJSON(account) }
            try printFields(account)
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
            let body = UpdateAccount(name: name, tunnelIPv4Range: tunnelIpv4Range, tunnelIPv6Range: tunnelIpv6Range)
            guard body != UpdateAccount() else { throw ValidationError("nothing to change") }
            let account = try await options.client().send(.patch, "/account", body: body, as: Account.self)
            if options.json { return try printJSON(account) }
            try printFields(account)
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
            let events = try await options.client().send(.get, "/audit", query: "?limit=\(limit)", as: Page<AuditEvent>.self).data
            if options.json { return try printJSON(events) }
            let dates = ISO8601DateFormatter()
            printTable(["AT", "WHO", "ACTION", "SUBJECT", "ID"], events.map {
                [dates.string(from: $0.at), $0.actorName ?? "", $0.action, $0.subjectType, $0.subjectID]
            })
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
            var query = "?actor=\(try await api.resolve(actor, Actors.self))&resource=\(try await api.resolve(resource, Resources.self))"
            if let client { query += "&client=\(client.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? client)" }
            if let at { query += "&at=\(at.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? at)" }
            let answer = try await api.send(.get, "/access/explain", query: query, as: AccessExplanation.self)
            if options.json { return try printJSON(answer) }
            let dates = ISO8601DateFormatter()
            var headline = "\(actor) → \(resource): \(answer.decision)"
            if let expiry = answer.expiresAt { headline += " until \(dates.string(from: expiry))" }
            if !answer.failedConditions.isEmpty { headline += " (failed: \(answer.failedConditions.joined(separator: ", ")))" }
            print(headline)
            if answer.policies.isEmpty { print("  no policy names this resource") }
            for policy in answer.policies {
                print("  policy \(policy.policyID): group \(policy.group) \(policy.groupContainsActor ? "contains" : "does not contain") \(actor)"
                    + (policy.disabled ? "; the policy is disabled" : ""))
                for condition in policy.conditions {
                    print("    \(condition.holds ? "holds" : "fails"): \(condition.condition)")
                }
                if let until = policy.conditionsHoldUntil { print("    conditions hold until \(dates.string(from: until))") }
            }
        }
    }
}
