import AdminAPI
import ArgumentParser
import Foundation

// The commands every noun shares, one generic type per verb: the noun supplies its path in the route
// table, its table columns and the options of its request bodies.

/// `gatehouse admin NOUN list`.
struct ListCommand<Noun: AdminNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "list", abstract: "List every \(Noun.singular).")
    }

    @OptionGroup var options: AdminOptions

    func run() async throws {
        let items = try await options.client().list(Noun.path, as: Noun.Item.self)
        if options.json { return try printJSON(items) }
        printTable(Noun.columns, items.map(Noun.row))
    }
}

/// `gatehouse admin NOUN show NAME-OR-ID`: one item, every field.
struct ShowCommand<Noun: AdminNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "show", abstract: "Show one \(Noun.singular), every field.")
    }

    @OptionGroup var options: AdminOptions
    @Argument(help: ArgumentHelp(Noun.help, valueName: Noun.singular)) var reference: String

    func run() async throws {
        let client = try options.client()
        let id = try await client.resolve(reference, Noun.self)
        let item = try await client.send(.get, Noun.itemPath, parameters: ["id": id], as: Noun.Item.self)
        if options.json { return try printJSON(item) }
        try printFields(item)
    }
}

/// `gatehouse admin NOUN create --FIELD VALUE...`.
struct CreateCommand<Noun: CreatableNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "create", abstract: "Create a \(Noun.singular).",
                             discussion: Noun.CreateOptions.discussion)
    }

    @OptionGroup var options: AdminOptions
    @OptionGroup var fields: Noun.CreateOptions
    @OptionGroup var write: DryRunOption

    func run() async throws {
        let client = try options.client()
        if write.dryRun { return try await write.preview(client, .post, Noun.path, body: try await fields.body(client), json: options.json) }
        let created = try await client.send(.post, Noun.path, body: try await fields.body(client), as: Noun.Created.self)
        if options.json { return try printJSON(created) }
        Noun.report(created)
    }
}

/// `gatehouse admin NOUN update|rename NAME-OR-ID --FIELD VALUE...`: what is given changes.
struct UpdateCommand<Noun: UpdatableNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Noun.updateVerb, abstract: "\(Noun.updateVerb == "rename" ? "Rename" : "Change") a \(Noun.singular).")
    }

    @OptionGroup var options: AdminOptions
    @Argument(help: ArgumentHelp(Noun.help, valueName: Noun.singular)) var reference: String
    @OptionGroup var fields: Noun.UpdateOptions
    @OptionGroup var write: DryRunOption

    func run() async throws {
        let client = try options.client()
        let body = try await fields.body(client)
        let id = try await client.resolve(reference, Noun.self)
        if write.dryRun { return try await write.preview(client, .patch, Noun.itemPath, parameters: ["id": id], body: body, json: options.json) }
        let updated = try await client.send(.patch, Noun.itemPath, parameters: ["id": id], body: body, as: Noun.Item.self)
        if options.json { return try printJSON(updated) }
        try printFields(updated)
    }
}

/// `gatehouse admin NOUN delete NAME-OR-ID` (`token revoke`).
struct DeleteCommand<Noun: AdminNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Noun.self == Tokens.self ? "revoke" : "delete",
                             abstract: Noun.self == Tokens.self ? "Revoke a token: it stops working at once." : "Delete a \(Noun.singular).")
    }

    @OptionGroup var options: AdminOptions
    @Argument(help: ArgumentHelp(Noun.help, valueName: Noun.singular)) var reference: String
    @OptionGroup var write: DryRunOption

    func run() async throws {
        let client = try options.client()
        let id = try await client.resolve(reference, Noun.self)
        if write.dryRun { return try await write.preview(client, .delete, Noun.itemPath, parameters: ["id": id], json: options.json) }
        try await client.call(.delete, Noun.itemPath, parameters: ["id": id])
        if !options.json { print("\(Noun.self == Tokens.self ? "revoked" : "deleted") \(Noun.singular) \(reference)") }
    }
}
