import Actors
import AdminAPI
import ArgumentParser
import Foundation

/// What every admin command takes.
struct AdminOptions: ParsableArguments {
    @Option(help: "Portal URL, e.g. http://127.0.0.1:8080. [GATEHOUSE_PORTAL_URL]") var portalURL: String?
    @Option(help: "Admin API token. [GATEHOUSE_TOKEN]") var token: String?
    @Option(help: "PEM file of the CAs the portal's certificate is checked against (default: the system's). [GATEHOUSE_PORTAL_CA_FILE]")
    var caFile: String?
    @Flag(help: "Allow plain HTTP to a portal that is not on loopback (the token then crosses the network in the clear).")
    var insecure = false
    @Flag(help: "Print JSON instead of a table.") var json = false

    func client() throws -> AdminClient {
        let environment = Environment()
        guard let url = environment.string(portalURL, "GATEHOUSE_PORTAL_URL") else {
            throw ValidationError("the portal URL is required: --portal-url or GATEHOUSE_PORTAL_URL")
        }
        guard let token = environment.string(token, "GATEHOUSE_TOKEN") else {
            throw ValidationError("an admin token is required: --token or GATEHOUSE_TOKEN")
        }
        do {
            return AdminClient(endpoint: try PortalEndpoint(url: url, token: Secret(token), caFile: environment.string(caFile, "GATEHOUSE_PORTAL_CA_FILE"),
                                                            insecure: insecure))
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// The admin API over HTTP, in the contract's types. A failed call becomes an error with the API's
/// message.
struct AdminClient {
    let endpoint: PortalEndpoint

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The operation of the route table with this method and path: the CLI only calls what the API documents.
    static func route(_ method: Route.Method, _ path: String) throws -> Route {
        guard let route = AdminRoutes.route(method, path) else {
            throw Failure(description: "the admin API has no \(method.rawValue.uppercased()) \(path)")
        }
        return route
    }

    // Parameters are IDs (`resolve` gives only UUIDs), so they go into the path as they are.

    /// Calls `method path` (parameters filled in) with a JSON body; the answer's bytes.
    @discardableResult
    func call(_ method: Route.Method, _ path: String, parameters: [String: String] = [:], query: String = "",
              body: some Encodable) async throws -> Data {
        try await perform(method, path, parameters: parameters, query: query, body: try APICoding.encoder().encode(body))
    }

    /// Calls `method path` (parameters filled in) without a body; the answer's bytes.
    @discardableResult
    func call(_ method: Route.Method, _ path: String, parameters: [String: String] = [:], query: String = "") async throws -> Data {
        try await perform(method, path, parameters: parameters, query: query, body: nil)
    }

    /// Calls with a JSON body and decodes the answer as `Answer`.
    func send<Answer: Decodable>(_ method: Route.Method, _ path: String, parameters: [String: String] = [:], query: String = "",
                                 body: some Encodable, as type: Answer.Type = Answer.self) async throws -> Answer {
        try decode(Answer.self, try await call(method, path, parameters: parameters, query: query, body: body))
    }

    /// Calls without a body and decodes the answer as `Answer`.
    func send<Answer: Decodable>(_ method: Route.Method, _ path: String, parameters: [String: String] = [:], query: String = "",
                                 as type: Answer.Type = Answer.self) async throws -> Answer {
        try decode(Answer.self, try await call(method, path, parameters: parameters, query: query))
    }

    private func decode<Answer: Decodable>(_ type: Answer.Type, _ data: Data) throws -> Answer {
        do {
            return try APICoding.decoder().decode(Answer.self, from: data)
        } catch {
            throw Failure(description: "the portal's answer does not fit the API's contract: \(error)")
        }
    }

    private func perform(_ method: Route.Method, _ path: String, parameters: [String: String], query: String, body: Data?) async throws -> Data {
        let route = try Self.route(method, path)
        var concrete = "/api/v1" + route.path
        for (name, value) in parameters {
            concrete = concrete.replacingOccurrences(of: "{\(name)}", with: value)
        }
        let status: Int, data: Data
        do {
            (status, data) = try await endpoint.request(method.rawValue.uppercased(), path: concrete + query, body: body)
        } catch {
            throw Failure(description: "cannot reach the portal at \(endpoint.url.absoluteString): \(error)")
        }
        if !(200..<300).contains(status) {
            let error = try? APICoding.decoder().decode(ErrorBody.self, from: data)
            throw Failure(description: error?.error.message ?? "the portal answered HTTP \(status)")
        }
        return data
    }

    /// Every item of a paginated list.
    func list<Item: APIObject>(_ path: String, as type: Item.Type = Item.self) async throws -> [Item] {
        var items: [Item] = []
        var cursor: String?
        repeat {
            let query = "?limit=500" + (cursor.map { "&cursor=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? "")
            let page = try await send(.get, path, query: query, as: Page<Item>.self)
            items += page.data
            cursor = page.nextCursor
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

/// Prints a value as the API's JSON, indented.
func printJSON(_ value: some Encodable) throws {
    let encoder = APICoding.encoder()
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints one item as FIELD/VALUE rows, every field it has.
func printFields(_ value: some Encodable) throws {
    let object = try APICoding.decoder().decode(JSONValue.self, from: APICoding.encoder().encode(value))
    guard case let .object(fields) = object else { return try printJSON(value) }
    printTable(["FIELD", "VALUE"], try fields.keys.sorted().map { key in
        switch fields[key] ?? .null {
        case let .string(text): return [key, text]
        case let .bool(flag): return [key, "\(flag)"]
        case let .integer(number): return [key, "\(number)"]
        case let .number(number): return [key, "\(number)"]
        case let .array(items) where items.allSatisfy({ if case .string = $0 { true } else { false } }):
            return [key, items.compactMap { if case let .string(text) = $0 { text } else { nil } }.joined(separator: ",")]
        case let other: return [key, String(decoding: try APICoding.encoder().encode(other), as: UTF8.self)]
        }
    })
}

/// One of a fixed set of words given on the command line, or an error that lists them.
func choice<Value: RawRepresentable & CaseIterable>(_ text: String, _ field: String, as type: Value.Type = Value.self) throws -> Value
    where Value.RawValue == String {
    guard let value = Value(rawValue: text) else {
        throw AdminClient.Failure(description: "\(field) \"\(text)\" must be \(Schema.alternatives(Value.allCases.map(\.rawValue)))")
    }
    return value
}
