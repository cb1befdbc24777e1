package import Addresses

/// The record types a gateway asks for.
package enum DNSRecordType: UInt16, Sendable {
    case a = 1
    case cname = 5
    case aaaa = 28
}

/// Why a DNS answer gave no addresses.
package enum DNSError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The name cannot be put in a query (empty label, label over 63 bytes, name over 253).
    case badName(String)
    /// The message is cut short, points outside itself, loops, or is not the answer to our question.
    case malformed(String)
    /// The server answered with an error code (RFC 1035 4.1.1: 2 server failure, 5 refused, ...).
    case serverError(UInt8)
    /// The answer was truncated (TC): it does not fit a UDP message.
    case truncated

    package var description: String {
        switch self {
        case let .badName(name): "\"\(name)\" is not a DNS name"
        case let .malformed(problem): "malformed answer: \(problem)"
        case let .serverError(code): "the server answered with error code \(code)"
        case .truncated: "the answer was truncated"
        }
    }
}

/// The addresses of a name, with the time they may be kept.
package struct DNSAddresses: Equatable, Sendable {
    package var addresses: [SocketAddress.IP]
    /// The smallest TTL along the answer's chain, in seconds (0 when there is no answer).
    package var ttl: UInt32

    package init(addresses: [SocketAddress.IP], ttl: UInt32) {
        self.addresses = addresses
        self.ttl = ttl
    }
}

/// DNS messages (RFC 1035 section 4) as far as a stub resolver needs them: one question out, the
/// A/AAAA addresses of its name in, following CNAMEs the server put in the same answer. Pure: bytes in,
/// values out.
package enum DNSMessage {
    /// A recursive query (RD set) for `name`'s records of `type`.
    package static func query(id: UInt16, name: String, type: DNSRecordType) throws(DNSError) -> [UInt8] {
        var message: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        message += try encode(name)
        message += [UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return message
    }

    /// A name in wire form (length-prefixed labels, then the root's zero).
    static func encode(_ name: String) throws(DNSError) -> [UInt8] {
        var text = name
        if text.hasSuffix(".") { text.removeLast() }
        guard !text.isEmpty, text.utf8.count <= 253 else { throw .badName(name) }
        var bytes: [UInt8] = []
        for label in text.split(separator: ".", omittingEmptySubsequences: false) {
            let utf8 = Array(label.utf8)
            guard !utf8.isEmpty, utf8.count <= 63 else { throw .badName(name) }
            bytes.append(UInt8(utf8.count))
            bytes += utf8
        }
        return bytes + [0]
    }

    /// The addresses of type `type` that `response` gives for `name`, the answer to query `id`. A name
    /// that does not exist (NXDOMAIN) or has no such records gives none.
    package static func addresses(in response: [UInt8], id: UInt16, name: String, type: DNSRecordType) throws(DNSError) -> DNSAddresses {
        var reader = Reader(bytes: response)
        guard response.count >= 12 else { throw .malformed("shorter than a header") }
        guard try reader.u16() == id else { throw .malformed("another query's ID") }
        let flags = try reader.u16()
        guard flags & 0x8000 != 0 else { throw .malformed("a query, not a response") }
        if flags & 0x0200 != 0 { throw .truncated }
        let code = UInt8(flags & 0x000F)
        let questions = try reader.u16()
        let answers = try reader.u16()
        _ = try reader.u16()
        _ = try reader.u16()
        var asked = [String]()
        for _ in 0..<questions {
            asked.append(try reader.name())
            _ = try reader.u16()
            _ = try reader.u16()
        }
        let wanted = normalised(name)
        guard questions == 1, asked.first == wanted else { throw .malformed("the answer is to another question") }
        if code == 3 { return DNSAddresses(addresses: [], ttl: 0) }
        guard code == 0 else { throw .serverError(code) }
        var records: [(owner: String, type: UInt16, ttl: UInt32, data: ArraySlice<UInt8>, target: String?)] = []
        for _ in 0..<answers {
            let owner = try reader.name()
            let recordType = try reader.u16()
            _ = try reader.u16()
            let ttl = try reader.u32()
            let length = Int(try reader.u16())
            let start = reader.offset
            guard start + length <= response.count else { throw .malformed("a record runs past the end") }
            var target: String?
            if recordType == DNSRecordType.cname.rawValue {
                var inner = Reader(bytes: response, offset: start)
                target = try inner.name()
            }
            records.append((owner, recordType, ttl, response[start..<start + length], target))
            reader.offset = start + length
        }
        // Follow the CNAME chain from the name asked (a few hops at most).
        var current = wanted
        var ttl = UInt32.max
        var hops = 0
        while let alias = records.first(where: { $0.owner == current && $0.type == DNSRecordType.cname.rawValue }), let target = alias.target {
            hops += 1
            guard hops <= 8 else { throw .malformed("a CNAME chain over 8 names long") }
            ttl = min(ttl, alias.ttl)
            current = target
        }
        var found: [SocketAddress.IP] = []
        for record in records where record.owner == current && record.type == type.rawValue {
            switch type {
            case .a where record.data.count == 4:
                found.append(.v4(record.data.reduce(0) { $0 << 8 | UInt32($1) }))
            case .aaaa where record.data.count == 16:
                let high = record.data.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                let low = record.data.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                found.append(.v6(high, low))
            default:
                throw .malformed("an address record of \(record.data.count) bytes")
            }
            ttl = min(ttl, record.ttl)
        }
        return DNSAddresses(addresses: found, ttl: found.isEmpty ? 0 : ttl)
    }

    static func normalised(_ name: String) -> String {
        var text = name.lowercased()
        if text.hasSuffix(".") { text.removeLast() }
        return text
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 12

        init(bytes: [UInt8], offset: Int = 0) {
            self.bytes = bytes
            self.offset = offset
        }

        mutating func u16() throws(DNSError) -> UInt16 {
            guard offset + 2 <= bytes.count else { throw .malformed("cut short") }
            defer { offset += 2 }
            return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
        }

        mutating func u32() throws(DNSError) -> UInt32 {
            UInt32(try u16()) << 16 | UInt32(try u16())
        }

        /// A name, lower case without the trailing dot, following compression pointers (RFC 1035
        /// 4.1.4) only backwards, so that a loop cannot be made.
        mutating func name() throws(DNSError) -> String {
            var labels: [String] = []
            var position = offset
            var jumped = false
            var length = 0
            while true {
                guard position < bytes.count else { throw .malformed("a name runs past the end") }
                let byte = bytes[position]
                if byte & 0xC0 == 0xC0 {
                    guard position + 1 < bytes.count else { throw .malformed("a name runs past the end") }
                    let target = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                    guard target < position else { throw .malformed("a compression pointer that does not point back") }
                    if !jumped { offset = position + 2 }
                    jumped = true
                    position = target
                } else if byte == 0 {
                    if !jumped { offset = position + 1 }
                    return labels.joined(separator: ".")
                } else {
                    guard byte <= 63, position + 1 + Int(byte) <= bytes.count else { throw .malformed("a label runs past the end") }
                    length += Int(byte) + 1
                    guard length <= 255 else { throw .malformed("a name over 255 bytes") }
                    labels.append(String(decoding: bytes[position + 1...position + Int(byte)], as: UTF8.self).lowercased())
                    position += 1 + Int(byte)
                }
            }
        }
    }
}
