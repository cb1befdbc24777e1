package import Addresses

/// A query as a stub server receives it (RFC 1035 4.1): one question, opcode QUERY.
package struct DNSQuestion: Equatable, Sendable {
    package var id: UInt16
    /// The name asked, lower case without the trailing dot.
    package var name: String
    /// The record type asked (A 1, AAAA 28, anything else as it came).
    package var type: UInt16
    /// Whether the asker wants recursion (RD), echoed in the answer.
    package var recursionDesired: Bool
    /// Where the question section ends in the query (the answer repeats it as it came).
    package var end: Int

    /// Reads `query`: nil when it is not a standard query with exactly one question of class IN.
    package init?(_ query: [UInt8]) {
        guard query.count >= 12, query.count <= 512 else { return nil }
        let flags = UInt16(query[2]) << 8 | UInt16(query[3])
        guard flags & 0x8000 == 0, (flags >> 11) & 0xF == 0 else { return nil }  // a query, opcode QUERY
        guard query[4] == 0, query[5] == 1 else { return nil }
        var reader = DNSMessage.Reader(bytes: query, offset: 12)
        guard let name = try? reader.name(), let type = try? reader.u16(), let recordClass = try? reader.u16(), recordClass == 1 else { return nil }
        id = UInt16(query[0]) << 8 | UInt16(query[1])
        self.name = name
        self.type = type
        recursionDesired = flags & 0x0100 != 0
        end = reader.offset
    }
}

extension DNSMessage {
    /// Response codes a stub server answers with.
    package enum ResponseCode: UInt8, Sendable {
        case noError = 0
        case formatError = 1
        case serverFailure = 2
        case nameError = 3
        case refused = 5
    }

    /// The answer to `query` (whose question is `question`): its question repeated, then one record of
    /// the asked type per address of the matching family, each with `ttl` seconds. No address of the
    /// asked type: an empty answer (NOERROR, "no data").
    package static func answer(to query: [UInt8], question: DNSQuestion, addresses: [SocketAddress.IP], ttl: UInt32,
                               code: ResponseCode = .noError) -> [UInt8] {
        var records: [[UInt8]] = []
        for address in addresses {
            var data: [UInt8]
            switch (address, question.type) {
            case let (.v4(value), DNSRecordType.a.rawValue):
                data = (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32($0))) }
            case let (.v6(high, low), DNSRecordType.aaaa.rawValue):
                data = (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64($0))) }
                    + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64($0))) }
            default:
                continue
            }
            // The owner is the question's name, by a pointer to offset 12.
            var record: [UInt8] = [0xC0, 0x0C, UInt8(question.type >> 8), UInt8(question.type & 0xFF), 0, 1]
            record += (0..<4).map { UInt8(truncatingIfNeeded: ttl >> (24 - 8 * UInt32($0))) }
            record += [UInt8(data.count >> 8), UInt8(data.count & 0xFF)]
            data = record + data
            records.append(data)
        }
        let flags: UInt16 = 0x8000 | (question.recursionDesired ? 0x0100 : 0) | 0x0080 | UInt16(code.rawValue)
        var message: [UInt8] = [UInt8(question.id >> 8), UInt8(question.id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF),
                                0, 1, UInt8(records.count >> 8), UInt8(records.count & 0xFF), 0, 0, 0, 0]
        message += query[12..<question.end]
        for record in records { message += record }
        return message
    }

    /// An error answer to a query that could not be read past its header (FORMERR), when at least its
    /// ID can be: nil otherwise.
    package static func formatError(to query: [UInt8]) -> [UInt8]? {
        guard query.count >= 12, query[2] & 0x80 == 0 else { return nil }
        return [query[0], query[1], 0x80 | (query[2] & 0x01), 0x80 | ResponseCode.formatError.rawValue, 0, 0, 0, 0, 0, 0, 0, 0]
    }
}
