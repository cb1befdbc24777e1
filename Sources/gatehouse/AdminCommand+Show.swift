import ArgumentParser
import Foundation

/// A noun of the admin API that can be read by ID: where its list lives and which fields name an item
/// (so that `show` takes a name, an email or an ID).
protocol ShowableNoun {
    static var name: String { get }
    static var path: String { get }
    static var namingFields: [String] { get }
}

enum SiteNoun: ShowableNoun {
    static var name: String { "site" }
    static var path: String { "/api/v1/sites" }
    static var namingFields: [String] { ["name"] }
}

enum GroupNoun: ShowableNoun {
    static var name: String { "group" }
    static var path: String { "/api/v1/groups" }
    static var namingFields: [String] { ["name"] }
}

enum ActorNoun: ShowableNoun {
    static var name: String { "actor" }
    static var path: String { "/api/v1/actors" }
    static var namingFields: [String] { ["email", "name"] }
}

enum ResourceNoun: ShowableNoun {
    static var name: String { "resource" }
    static var path: String { "/api/v1/resources" }
    static var namingFields: [String] { ["name"] }
}

enum PolicyNoun: ShowableNoun {
    static var name: String { "policy" }
    static var path: String { "/api/v1/policies" }
    static var namingFields: [String] { [] }
}

enum TokenNoun: ShowableNoun {
    static var name: String { "token" }
    static var path: String { "/api/v1/tokens" }
    static var namingFields: [String] { [] }
}

enum ClientNoun: ShowableNoun {
    static var name: String { "client" }
    static var path: String { "/api/v1/clients" }
    static var namingFields: [String] { ["name"] }
}

enum GatewayNoun: ShowableNoun {
    static var name: String { "gateway" }
    static var path: String { "/api/v1/gateways" }
    static var namingFields: [String] { ["name"] }
}

/// `gatehouse admin NOUN show NAME-OR-ID`: one item, every field (the API's `GET /NOUN/{id}`). One
/// generic command serves every noun.
struct ShowCommand<Noun: ShowableNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "show", abstract: "Show one \(Noun.name), every field.")
    }

    @OptionGroup var options: AdminOptions
    @Argument(help: ArgumentHelp("The \(Noun.name)'s ID\(Noun.namingFields.isEmpty ? "" : " or " + Noun.namingFields.joined(separator: " or ")).",
                                 valueName: Noun.name))
    var reference: String

    func run() async throws {
        let client = try options.client()
        let id = try await client.resolve(reference, in: Noun.path, keys: Noun.namingFields, what: Noun.name)
        let item = try await client.call("GET", "\(Noun.path)/\(id)").json as? [String: Any] ?? [:]
        if options.json { return try printJSON(item) }
        printTable(["FIELD", "VALUE"], try item.keys.sorted().map { key in
            let value = item[key] ?? ""
            if value is String || value is NSNumber { return [key, "\(value)"] }
            return [key, String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)]
        })
    }
}
