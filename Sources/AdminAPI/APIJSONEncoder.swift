package import Foundation

/// The admin API's answers as JSON bytes, with the conventions of `APICoding.encoder()` (keys sorted,
/// dates in ISO 8601 to the second, nil left out), written straight into one byte buffer. A profile of
/// list reads put Foundation's `JSONEncoder` at 43% of the portal's time, most of it in the dynamic
/// casts and boxes of its intermediate tree; this writer keeps none: each value is written where it
/// goes, and an object's members are put in key order when it closes. Its output is checked against
/// `JSONEncoder`'s in AdminAPITests.
package enum APIJSONEncoder {
    package static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let output = Output()
        output.bytes.reserveCapacity(4096)
        try output.write(value)
        return output.bytes
    }
}

/// The buffer, and the open containers of the value being written.
private final class Output {
    var bytes: [UInt8] = []

    /// Writes one value, through its own frame: whatever containers its `encode(to:)` opens are closed
    /// when it returns.
    func write<T: Encodable>(_ value: T) throws {
        if T.self == Date.self {
            writeDate(unsafeBitCast(value, to: Date.self))
            return
        }
        let frame = Frame(output: self, start: bytes.count)
        try value.encode(to: FrameEncoder(frame: frame))
        frame.close()
    }

    func writeString(_ string: String) {
        bytes.append(UInt8(ascii: "\""))
        Self.escape(string, into: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// A string's characters as JSON writes them between quotes.
    static func escape(_ string: String, into bytes: inout [UInt8]) {
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            default: bytes.append(byte)
            }
        }
    }

    func writeRaw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    func writeDouble(_ value: Double) throws {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "JSON has no \(value)"))
        }
        // Integral values as integers, as JSONEncoder writes them.
        if value == value.rounded(), abs(value) < 1e15 { writeRaw(String(Int64(value))) } else { writeRaw("\(value)") }
    }

    /// `2026-12-06T16:38:37Z`: the instant's whole second in UTC, as JSONEncoder's `.iso8601` writes it.
    func writeDate(_ date: Date) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let year = Int(parts.tm_year) + 1900
        let yearText = year >= 0 && year < 1000 ? String(repeating: "0", count: 4 - String(year).count) + String(year) : String(year)
        writeRaw("\"\(yearText)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z\"")
    }
}

/// The containers one value opened: a keyed one (members written in place, put in key order on
/// closing), an unkeyed one, or a single value written directly.
private final class Frame {
    let output: Output
    let start: Int
    enum Kind { case none, keyed, unkeyed, single }
    var kind = Kind.none
    /// Keyed: each member's key and where its value's bytes are.
    var members: [(key: String, range: Range<Int>)] = []
    var count = 0

    init(output: Output, start: Int) {
        self.output = output
        self.start = start
    }

    func openKeyed() {
        kind = .keyed
    }

    func openUnkeyed() {
        guard kind != .unkeyed else { return }
        kind = .unkeyed
        output.bytes.append(UInt8(ascii: "["))
    }

    /// Writes a member's value and remembers its key.
    func member(_ key: String, _ write: () throws -> Void) rethrows {
        let from = output.bytes.count
        try write()
        members.append((key, from..<output.bytes.count))
    }

    /// Writes an element of the unkeyed container.
    func element(_ write: () throws -> Void) rethrows {
        if count > 0 { output.bytes.append(UInt8(ascii: ",")) }
        count += 1
        try write()
    }

    func close() {
        switch kind {
        case .keyed:
            var object: [UInt8] = [UInt8(ascii: "{")]
            object.reserveCapacity(output.bytes.count - start + members.count * 8)
            // Members in key order; the last value written for a key wins, as in JSONEncoder.
            let order = members.indices.sorted { members[$0].key < members[$1].key || (members[$0].key == members[$1].key && $0 < $1) }
            var first = true
            for (position, index) in order.enumerated() {
                if position + 1 < order.count, members[order[position + 1]].key == members[index].key { continue }
                if !first { object.append(UInt8(ascii: ",")) }
                first = false
                object.append(UInt8(ascii: "\""))
                Output.escape(members[index].key, into: &object)
                object.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
                object.append(contentsOf: output.bytes[members[index].range])
            }
            object.append(UInt8(ascii: "}"))
            output.bytes.replaceSubrange(start..., with: object)
        case .unkeyed:
            output.bytes.append(UInt8(ascii: "]"))
        case .none:
            output.bytes.append(contentsOf: [UInt8(ascii: "{"), UInt8(ascii: "}")])  // nothing encoded: an empty object
        case .single:
            break
        }
    }
}

private struct FrameEncoder: Encoder {
    let frame: Frame
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        frame.openKeyed()
        return KeyedEncodingContainer(KeyedWriter<Key>(frame: frame))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        frame.openUnkeyed()
        return UnkeyedWriter(frame: frame)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        frame.kind = .single
        return SingleWriter(frame: frame)
    }
}

/// Writes one value of any type into the buffer: the common primitives directly (a metatype comparison
/// rather than a dynamic cast), the rest through a frame of their own.
private func writeValue<T: Encodable>(_ value: T, _ output: Output) throws {
    if T.self == String.self {
        output.writeString(unsafeBitCast(value, to: String.self))
    } else if T.self == Bool.self {
        output.writeRaw(unsafeBitCast(value, to: Bool.self) ? "true" : "false")
    } else if T.self == Int.self {
        output.writeRaw(String(unsafeBitCast(value, to: Int.self)))
    } else {
        try output.write(value)
    }
}

private struct KeyedWriter<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let frame: Frame
    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil(forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw("null") } }
    mutating func encode(_ value: Bool, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(value ? "true" : "false") } }
    mutating func encode(_ value: String, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeString(value) } }
    mutating func encode(_ value: Double, forKey key: Key) throws { try frame.member(key.stringValue) { try frame.output.writeDouble(value) } }
    mutating func encode(_ value: Float, forKey key: Key) throws { try frame.member(key.stringValue) { try frame.output.writeDouble(Double(value)) } }
    mutating func encode(_ value: Int, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: Int8, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: Int16, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: Int32, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: Int64, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: UInt, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { frame.member(key.stringValue) { frame.output.writeRaw(String(value)) } }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try frame.member(key.stringValue) { try writeValue(value, frame.output) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        fatalError("APIJSONEncoder: nested containers are not used by the admin API's types")
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        fatalError("APIJSONEncoder: nested containers are not used by the admin API's types")
    }

    mutating func superEncoder() -> any Encoder { FrameEncoder(frame: frame) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { FrameEncoder(frame: frame) }
}

private struct UnkeyedWriter: UnkeyedEncodingContainer {
    let frame: Frame
    var codingPath: [any CodingKey] { [] }
    var count: Int { frame.count }

    mutating func encodeNil() throws { frame.element { frame.output.writeRaw("null") } }
    mutating func encode(_ value: Bool) throws { frame.element { frame.output.writeRaw(value ? "true" : "false") } }
    mutating func encode(_ value: String) throws { frame.element { frame.output.writeString(value) } }
    mutating func encode(_ value: Double) throws { try frame.element { try frame.output.writeDouble(value) } }
    mutating func encode(_ value: Int) throws { frame.element { frame.output.writeRaw(String(value)) } }
    mutating func encode<T: Encodable>(_ value: T) throws { try frame.element { try writeValue(value, frame.output) } }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        fatalError("APIJSONEncoder: nested containers inside arrays are not used by the admin API")
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        fatalError("APIJSONEncoder: nested containers inside arrays are not used by the admin API")
    }

    mutating func superEncoder() -> any Encoder { FrameEncoder(frame: frame) }
}

private struct SingleWriter: SingleValueEncodingContainer {
    let frame: Frame
    var codingPath: [any CodingKey] { [] }

    mutating func encodeNil() throws { frame.output.writeRaw("null") }
    mutating func encode(_ value: Bool) throws { frame.output.writeRaw(value ? "true" : "false") }
    mutating func encode(_ value: String) throws { frame.output.writeString(value) }
    mutating func encode(_ value: Double) throws { try frame.output.writeDouble(value) }
    mutating func encode(_ value: Float) throws { try frame.output.writeDouble(Double(value)) }
    mutating func encode(_ value: Int) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: Int8) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: Int16) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: Int32) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: Int64) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: UInt) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: UInt8) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: UInt16) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: UInt32) throws { frame.output.writeRaw(String(value)) }
    mutating func encode(_ value: UInt64) throws { frame.output.writeRaw(String(value)) }
    mutating func encode<T: Encodable>(_ value: T) throws { try writeValue(value, frame.output) }
}
