package import Foundation

/// A request or answer body of the admin API: Codable, with the schema it declares for itself. The
/// OpenAPI document is built from these declarations; the portal checks bodies against them before
/// decoding; `gatehouse admin` encodes and decodes the same types.
package protocol APIObject: Codable, Sendable {
    static var schema: ObjectSchema { get }
}

/// A body's schema under a name, as the route table and the document hold it.
package struct Shape: Sendable {
    package var name: String
    package var schema: ObjectSchema
}

extension APIObject {
    package static var shape: Shape { Shape(name: String(describing: Self.self), schema: schema) }
}

/// One page of a list: `data`, and `next_cursor` when there is more.
package struct Page<Item: APIObject>: APIObject {
    package var data: [Item]
    package var nextCursor: String?

    package init(data: [Item], nextCursor: String? = nil) {
        self.data = data
        self.nextCursor = nextCursor
    }

    enum CodingKeys: String, CodingKey {
        case data
        case nextCursor = "next_cursor"
    }

    package static var schema: ObjectSchema {
        ObjectSchema([
            .init("data", .list(of: .object(Item.schema), maximum: 500), required: true),
            .init("next_cursor", .string, description: "pass as ?cursor= to get the next page; absent on the last page"),
        ])
    }
}

/// Every refusal: `{"error": {"code": ..., "message": ..., "field": ...}}`.
package struct ErrorBody: APIObject, Equatable {
    package struct Detail: APIObject, Equatable {
        package var code: String
        package var message: String
        package var field: String?

        package static let schema = ObjectSchema([
            .init("code", .string, required: true), .init("message", .string, required: true),
            .init("field", .string, description: "the request field at fault, when there is one"),
        ])
    }

    package var error: Detail

    package init(code: String, message: String, field: String? = nil) {
        error = Detail(code: code, message: message, field: field)
    }

    package static let schema = ObjectSchema([.init("error", .object(Detail.schema), required: true)])
}

/// Encoders and decoders with the API's conventions: ISO 8601 times, sorted keys.
package enum APICoding {
    package static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    package static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
