/// The shape of one JSON value, stated once: the OpenAPI document prints it and the portal checks
/// request bodies against it, so what the document promises is what the server enforces.
package indirect enum Schema: Sendable {
    /// Text that is not blank once surrounding white space is trimmed (the server trims it), at most
    /// `maximum` characters.
    case text(maximum: Int)
    /// An email address, at most 254 characters.
    case email
    /// The ID of a `noun` ("site", "group").
    case id(noun: String)
    /// One of a fixed set of words.
    case choice([String])
    case integer(ClosedRange<Int>)
    case boolean
    /// A list of at most `maximum` items.
    case list(of: Schema, maximum: Int?)
    /// An ISO 8601 time (`2026-11-23T10:00:00Z`).
    case dateTime
    /// Any string (answers only: what the server wrote).
    case string
    case object(ObjectSchema)
    /// Any JSON value (the audit log's before and after).
    case anyValue

    /// JSON Schema (2020-12, as OpenAPI 3.1 uses it).
    package var jsonSchema: JSONValue {
        switch self {
        case let .text(maximum):
            // The pattern states "not blank": some character that is not white space (U+0085 counts).
            return ["type": "string", "minLength": 1, "maxLength": .integer(maximum), "pattern": "[^\\s\\u0085]"]
        case .email:
            return ["type": "string", "maxLength": 254, "pattern": "^[^@\\s\\u0085]+@[^@\\s\\u0085]+$"]
        case .id:
            return ["type": "string", "format": "uuid"]
        case let .choice(values):
            return ["type": "string", "enum": .array(values.map(JSONValue.string))]
        case let .integer(range):
            return ["type": "integer", "minimum": .integer(range.lowerBound), "maximum": .integer(range.upperBound)]
        case .boolean:
            return ["type": "boolean"]
        case let .list(item, maximum):
            var schema: [String: JSONValue] = ["type": "array", "items": item.jsonSchema]
            if let maximum { schema["maxItems"] = .integer(maximum) }
            return .object(schema)
        case .dateTime:
            return ["type": "string", "format": "date-time"]
        case .string:
            return ["type": "string"]
        case let .object(object):
            return object.jsonSchema
        case .anyValue:
            return [:]
        }
    }

    /// `value` as the server reads it (text trimmed), or why it does not fit; `field` names it in messages.
    func check(_ value: JSONValue, field: String) throws(SchemaViolation) -> JSONValue {
        func refuse(_ message: String) -> SchemaViolation { SchemaViolation(message: message, field: field) }
        switch self {
        case let .text(maximum):
            guard case let .string(text) = value else { throw refuse("\"\(field)\" must be a string") }
            let trimmed = text.trimmed
            guard !trimmed.isEmpty, trimmed.count <= maximum else { throw refuse("\"\(field)\" must be 1-\(maximum) characters") }
            return .string(trimmed)
        case .email:
            guard case let .string(text) = value else { throw refuse("\"\(field)\" must be a string") }
            let trimmed = text.trimmed
            let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
            guard trimmed.count <= 254, parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
                  !trimmed.contains(where: { $0.isWhitespace }) else {
                throw refuse("\(field) \"\(text)\" is not an email address")
            }
            return .string(trimmed)
        case let .id(noun):
            guard case let .string(text) = value, Self.isID(text) else { throw refuse("\"\(field)\" must be the ID of a \(noun)") }
            return .string(text.lowercased())
        case let .choice(values):
            guard case let .string(text) = value else { throw refuse("\"\(field)\" must be a string") }
            guard values.contains(text) else { throw refuse("\(field) \"\(text)\" must be \(Self.alternatives(values))") }
            return value
        case let .integer(range):
            guard case let .integer(number) = value, range.contains(number) else {
                throw refuse("\(field) must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return value
        case .boolean:
            guard case .bool = value else { throw refuse("\"\(field)\" must be true or false") }
            return value
        case let .list(item, maximum):
            guard case let .array(items) = value else { throw refuse("\"\(field)\" must be a list") }
            if let maximum, items.count > maximum { throw refuse("\"\(field)\" may hold at most \(maximum) items") }
            var checked: [JSONValue] = []
            for element in items { checked.append(try item.check(element, field: field)) }
            return .array(checked)
        case .dateTime, .string:
            guard case .string = value else { throw refuse("\"\(field)\" must be a string") }
            return value
        case let .object(object):
            guard case let .object(members) = value else { throw refuse("\"\(field)\" must be an object") }
            return .object(try object.check(members))
        case .anyValue:
            return value
        }
    }

    /// "a, b or c".
    package static func alternatives(_ values: [String]) -> String {
        values.count < 2 ? values.joined() : values.dropLast().joined(separator: ", ") + " or " + (values.last ?? "")
    }

    /// Whether `text` has the form of an ID (a UUID, either case).
    package static func isID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        return groups.map(\.count) == [8, 4, 4, 4, 12] && groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }
}

/// A JSON object's fields. Fields not listed are refused.
package struct ObjectSchema: Sendable {
    package struct Field: Sendable {
        package var name: String
        package var schema: Schema
        package var required: Bool
        package var description: String?

        package init(_ name: String, _ schema: Schema, required: Bool = false, description: String? = nil) {
            self.name = name
            self.schema = schema
            self.required = required
            self.description = description
        }
    }

    package var fields: [Field]

    package init(_ fields: [Field]) {
        self.fields = fields
    }

    package var jsonSchema: JSONValue {
        var properties: [String: JSONValue] = [:]
        for field in fields {
            var schema = field.schema.jsonSchema
            if let description = field.description, case var .object(members) = schema {
                members["description"] = .string(description)
                schema = .object(members)
            }
            properties[field.name] = schema
        }
        var schema: JSONValue = ["type": "object", "properties": .object(properties), "additionalProperties": false]
        let required = fields.filter(\.required).map { JSONValue.string($0.name) }
        if !required.isEmpty, case var .object(members) = schema {
            members["required"] = .array(required)
            schema = .object(members)
        }
        return schema
    }

    /// The members as the server reads them, or the first problem (unknown fields first, then in field order).
    package func check(_ members: [String: JSONValue]) throws(SchemaViolation) -> [String: JSONValue] {
        let known = Set(fields.map(\.name))
        if let unknown = members.keys.sorted().first(where: { !known.contains($0) }) {
            throw SchemaViolation(message: "unknown field \"\(unknown)\"", field: unknown)
        }
        var checked: [String: JSONValue] = [:]
        for field in fields {
            guard let value = members[field.name] else {
                if field.required { throw SchemaViolation(message: "\"\(field.name)\" is required", field: field.name) }
                continue
            }
            checked[field.name] = try field.schema.check(value, field: field.name)
        }
        return checked
    }
}

/// Why a value does not fit its schema, naming the field.
package struct SchemaViolation: Error, Equatable, Sendable {
    package var message: String
    package var field: String?

    package init(message: String, field: String?) {
        self.message = message
        self.field = field
    }
}

extension String {
    /// Without surrounding white space (U+0085 included, as JSON Schema's `\s` counts it).
    var trimmed: String {
        var text = Substring(self)
        while let first = text.first, first.isWhitespace { text.removeFirst() }
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return String(text)
    }
}
