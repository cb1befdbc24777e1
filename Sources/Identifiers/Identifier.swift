package import Foundation

/// What an `Identifier` names: its noun ("site", "group"), used in messages such as `site 5f0c… not found`.
package protocol IdentifiedNoun: Sendable {
    static var noun: String { get }
}

/// The ID of one kind of thing (a site, a group, a policy...): a UUID that the compiler keeps apart
/// from every other kind, so a `GroupID` cannot be passed where a `ResourceID` is expected. Its text
/// form, on the wire and in the database, is the lower-case UUID.
package struct Identifier<Noun: IdentifiedNoun>: Hashable, Comparable, Sendable, Codable, LosslessStringConvertible {
    package let uuid: UUID

    /// A new, random ID.
    package init() {
        uuid = UUID()
    }

    package init(_ uuid: UUID) {
        self.uuid = uuid
    }

    /// Parses a UUID in either case; nil for anything else.
    package init?(_ description: String) {
        guard let uuid = UUID(uuidString: description) else { return nil }
        self.uuid = uuid
    }

    package var description: String { uuid.uuidString.lowercased() }

    /// The noun this ID names, for messages.
    package static var noun: String { Noun.noun }

    package static func < (lhs: Self, rhs: Self) -> Bool {
        lhs.description < rhs.description
    }

    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let id = Self(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(Noun.noun) ID \"\(text)\" is not a UUID")
        }
        self = id
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
