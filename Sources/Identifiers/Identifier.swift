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

    /// Parses a UUID (`8-4-4-4-12` hexadecimal digits) in either case; nil for anything else.
    package init?(_ description: String) {
        var bytes: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var text = description
        guard text.withUTF8({ Self.parse($0, into: &bytes) }) else { return nil }
        uuid = UUID(uuid: bytes)
    }

    /// The lower-case text form, written here rather than through `uuidString` (which formats with
    /// sprintf and then needs lower-casing): IDs are written for every row of every answer.
    package var description: String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            let digits: StaticString = "0123456789abcdef"
            withUnsafeBytes(of: uuid.uuid) { bytes in
                var out = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        buffer[out] = UInt8(ascii: "-")
                        out += 1
                    }
                    buffer[out] = digits.utf8Start[Int(byte >> 4)]
                    buffer[out + 1] = digits.utf8Start[Int(byte & 0x0F)]
                    out += 2
                }
            }
            return 36
        }
    }

    /// The noun this ID names, for messages.
    package static var noun: String { Noun.noun }

    /// The order of the text forms (lower-case hexadecimal, fixed width, is the order of the bytes).
    /// Compared as two big-endian 64-bit halves, which is the bytes' order.
    package static func < (lhs: Self, rhs: Self) -> Bool {
        let (leftHigh, leftLow) = halves(lhs.uuid)
        let (rightHigh, rightLow) = halves(rhs.uuid)
        return leftHigh != rightHigh ? leftHigh < rightHigh : leftLow < rightLow
    }

    private static func halves(_ uuid: UUID) -> (UInt64, UInt64) {
        withUnsafeBytes(of: uuid.uuid) { bytes in
            (UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self)), UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }

    private static func parse(_ text: UnsafeBufferPointer<UInt8>, into bytes: inout uuid_t) -> Bool {
        guard text.count == 36 else { return false }
        return withUnsafeMutableBytes(of: &bytes) { output in
            var position = 0
            for index in 0..<16 {
                if index == 4 || index == 6 || index == 8 || index == 10 {
                    guard text[position] == UInt8(ascii: "-") else { return false }
                    position += 1
                }
                guard let high = hexValue(text[position]), let low = hexValue(text[position + 1]) else { return false }
                output[index] = high << 4 | low
                position += 2
            }
            return true
        }
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
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
