import AdminAPI
import Foundation
import Hummingbird
import Identifiers

extension Request {
    /// The body as `Body`, after checking it against the schema `Body` declares (the one the OpenAPI
    /// document states): a wrong type, an unknown field, a value out of range or a body over the limit
    /// is a 400 (413) that names the problem. Text fields come trimmed.
    func decode<Body: APIObject>(_ type: Body.Type) async throws -> Body {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: PortalApplication.maximumBody)
        } catch {
            throw APIError(.contentTooLarge, code: "too_large", message: "the request body is over \(PortalApplication.maximumBody) bytes")
        }
        guard let value = try? JSONDecoder().decode(JSONValue.self, from: Data(buffer: buffer)), case let .object(members) = value else {
            throw APIError.validation("the request body must be a JSON object")
        }
        let checked: [String: JSONValue]
        do {
            checked = try Body.schema.check(members)
        } catch {
            throw APIError.validation(error.message, field: error.field)
        }
        do {
            return try APICoding.decoder().decode(Body.self, from: JSONEncoder().encode(JSONValue.object(checked)))
        } catch {
            throw APIError.validation("the request body does not fit: \(error)")
        }
    }
}

/// A JSON answer with the API's conventions (sorted keys, ISO 8601 times).
func answer(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
    let body = try APIJSONEncoder.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
}

extension Parameters {
    /// The path parameter `name` as a typed ID; a malformed one names nothing here, so it is a 404.
    func id<Noun>(_ name: String = "id", noun: String = Noun.noun) throws -> Identifier<Noun> {
        let text = get(name) ?? ""
        guard let id = Identifier<Noun>(text) else { throw APIError.notFound("\(noun) \(text)") }
        return id
    }
}

/// Cursor pagination: `?limit=` (1-500, default 100) and `?cursor=` (the sort key of the last item
/// seen), as the route table documents them.
struct PageRequest {
    /// Longer than any key a page ends on (names are at most 200 characters).
    static let maximumCursor = 200
    let limit: Int
    let cursor: String?

    init(_ request: Request) throws {
        let limitText = request.uri.queryParameters["limit"].map(String.init)
        if let limitText {
            guard let value = Int(limitText), (1...500).contains(value) else {
                throw APIError.validation("limit must be 1-500", field: "limit")
            }
            limit = value
        } else {
            limit = 100
        }
        cursor = request.uri.queryParameters["cursor"].map(String.init)
        if let cursor, cursor.count > Self.maximumCursor {
            throw APIError.validation("cursor must be at most \(Self.maximumCursor) characters (a next_cursor this API gave out)", field: "cursor")
        }
    }

    /// One page from up to `limit + 1` items (the extra one says there is more), each turned into its
    /// answer; the cursor is the key of the last item shown.
    func page<Record, Item: APIObject>(_ records: [Record], key: (Record) -> String, _ item: (Record) throws -> Item) rethrows -> Page<Item> {
        let shown = records.prefix(limit)
        let next = records.count > limit ? shown.last.map(key) : nil
        return Page(data: try shown.map(item), nextCursor: next)
    }
}
