package import Addresses
import STUN

/// The STUN messages of ICE connectivity checks (RFC 8445 section 7.1, RFC 8489 with short-term
/// credentials): a Binding request with USERNAME (`theirUfrag:ourUfrag`), PRIORITY, ICE-CONTROLLING or
/// ICE-CONTROLLED with the agent's tie-breaker, USE-CANDIDATE when nominating, MESSAGE-INTEGRITY keyed
/// with the receiver's password and FINGERPRINT; answered by a success with XOR-MAPPED-ADDRESS (the
/// source the request came from), or an error (487 role conflict, 400, 401), integrity-protected with
/// the same password. Pure: bytes in, values out.
package enum CheckMessage {
    package enum Role: Equatable, Sendable {
        case controlling(tieBreaker: UInt64)
        case controlled(tieBreaker: UInt64)
    }

    package struct Request: Equatable, Sendable {
        package var transactionID: [UInt8]
        /// `receiverUfrag:senderUfrag`.
        package var username: String
        package var priority: UInt32
        package var role: Role
        package var useCandidate: Bool

        package init(transactionID: [UInt8], username: String, priority: UInt32, role: Role, useCandidate: Bool) {
            self.transactionID = transactionID
            self.username = username
            self.priority = priority
            self.role = role
            self.useCandidate = useCandidate
        }
    }

    package enum Message: Equatable, Sendable {
        case request(Request)
        case success(transactionID: [UInt8], mapped: SocketAddress)
        case error(transactionID: [UInt8], code: Int)
    }

    enum Attribute {
        static let username: UInt16 = 0x0006
        static let messageIntegrity: UInt16 = 0x0008
        static let errorCode: UInt16 = 0x0009
        static let xorMappedAddress: UInt16 = 0x0020
        static let priority: UInt16 = 0x0024
        static let useCandidate: UInt16 = 0x0025
        static let fingerprint: UInt16 = 0x8028
        static let iceControlled: UInt16 = 0x8029
        static let iceControlling: UInt16 = 0x802A
    }

    static let magicCookie: [UInt8] = [0x21, 0x12, 0xA4, 0x42]

    /// A Binding request, integrity-protected with the receiver's `password`.
    package static func request(_ request: Request, password: String) -> [UInt8] {
        var writer = header(type: 0x0001, transactionID: request.transactionID)
        writer.attribute(Attribute.username, Array(request.username.utf8))
        var value = STUNCodec.Writer()
        value.u32(request.priority)
        writer.attribute(Attribute.priority, value.buffer)
        if request.useCandidate { writer.attribute(Attribute.useCandidate, []) }
        value = STUNCodec.Writer()
        switch request.role {
        case let .controlling(tieBreaker):
            value.u64(tieBreaker)
            writer.attribute(Attribute.iceControlling, value.buffer)
        case let .controlled(tieBreaker):
            value.u64(tieBreaker)
            writer.attribute(Attribute.iceControlled, value.buffer)
        }
        return seal(&writer, password: password)
    }

    /// The success answer to `transactionID`, naming the request's source.
    package static func success(transactionID: [UInt8], mapped: SocketAddress, password: String) -> [UInt8] {
        var writer = header(type: 0x0101, transactionID: transactionID)
        writer.attribute(Attribute.xorMappedAddress, STUNCodec.encodeXORAddress(mapped, transactionID: transactionID))
        return seal(&writer, password: password)
    }

    /// An error answer (487 role conflict, 400 bad request, 401 unauthenticated); without integrity when
    /// the request could not be authenticated (`password` nil).
    package static func error(transactionID: [UInt8], code: Int, password: String?) -> [UInt8] {
        var writer = header(type: 0x0111, transactionID: transactionID)
        let reason = switch code {
        case 487: "Role Conflict"
        case 401: "Unauthenticated"
        default: "Bad Request"
        }
        writer.attribute(Attribute.errorCode, [0, 0, UInt8(code / 100), UInt8(code % 100)] + Array(reason.utf8))
        if let password { return seal(&writer, password: password) }
        writer.appendFingerprint()
        return writer.finished()
    }

    /// Whether `bytes` looks like a STUN message (two zero bits, the magic cookie at bytes 4-7): how a
    /// datagram on the shared socket is told from ChannelData and WireGuard.
    package static func isSTUN(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 20 && bytes[0] & 0xC0 == 0 && bytes[4] == 0x21 && bytes[5] == 0x12 && bytes[6] == 0xA4 && bytes[7] == 0x42
    }

    /// Reads a check message. A request is taken only with a valid FINGERPRINT and a MESSAGE-INTEGRITY
    /// made with the password `password(username)` gives (nil: not ours); an answer only with a valid
    /// integrity under `answerPassword` (the other end's password), except an error without integrity.
    /// Nil for anything else (malformed, another method, a failed check).
    package static func parse(_ bytes: [UInt8], password: (String) -> String?, answerPassword: String?) -> Message? {
        guard bytes.count >= 20, bytes.count <= 1500 else { return nil }
        let ok = bytes.withUnsafeBytes { isSTUN($0) }
        guard ok, Int(bytes[2]) << 8 | Int(bytes[3]) == bytes.count - 20 else { return nil }
        let type = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let transactionID = Array(bytes[8..<20])
        var attributes: [(type: UInt16, offset: Int, value: ArraySlice<UInt8>)] = []
        var offset = 20
        while offset + 4 <= bytes.count {
            let attributeType = UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
            let length = Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard offset + 4 + length <= bytes.count else { return nil }
            attributes.append((attributeType, offset, bytes[(offset + 4)..<(offset + 4 + length)]))
            offset += 4 + (length + 3) & ~3
        }
        guard offset == bytes.count else { return nil }
        func first(_ wanted: UInt16) -> (offset: Int, value: ArraySlice<UInt8>)? {
            attributes.first { $0.type == wanted }.map { ($0.offset, $0.value) }
        }
        // FINGERPRINT, when there, must be last and right.
        if let fingerprint = first(Attribute.fingerprint) {
            guard fingerprint.offset + 8 == bytes.count, fingerprint.value.count == 4 else { return nil }
            let expected = fingerprint.value.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let computed = bytes.withUnsafeBytes { STUNCodec.fingerprint(UnsafeRawBufferPointer(rebasing: $0[0..<fingerprint.offset]), length: bytes.count - 20) }
            guard expected == computed else { return nil }
        }
        func integrityHolds(_ password: String) -> Bool {
            guard let integrity = first(Attribute.messageIntegrity), integrity.value.count == 20 else { return false }
            let mac = bytes.withUnsafeBytes {
                STUNCodec.mac(type: Attribute.messageIntegrity, key: Array(password.utf8),
                              message: UnsafeRawBufferPointer(rebasing: $0[0..<integrity.offset]), lengthThrough: integrity.offset - 20 + 24)
            }
            var difference: UInt8 = 0
            for (a, b) in zip(mac, integrity.value) { difference |= a ^ b }
            return difference == 0
        }
        switch type {
        case 0x0001:
            guard first(Attribute.fingerprint) != nil, let name = first(Attribute.username), let username = String(validating: name.value, as: UTF8.self),
                  let secret = password(username), integrityHolds(secret),
                  let priorityValue = first(Attribute.priority)?.value, priorityValue.count == 4
            else { return nil }
            let role: Role
            if let value = first(Attribute.iceControlling)?.value, value.count == 8 {
                role = .controlling(tieBreaker: value.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            } else if let value = first(Attribute.iceControlled)?.value, value.count == 8 {
                role = .controlled(tieBreaker: value.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            } else {
                return nil
            }
            return .request(Request(transactionID: transactionID, username: username,
                                    priority: priorityValue.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }, role: role,
                                    useCandidate: first(Attribute.useCandidate) != nil))
        case 0x0101:
            guard let answerPassword, integrityHolds(answerPassword), let mapped = first(Attribute.xorMappedAddress),
                  let address = Array(mapped.value).withUnsafeBytes({ STUNCodec.decodeXORAddress($0, transactionID: transactionID) })
            else { return nil }
            return .success(transactionID: transactionID, mapped: address)
        case 0x0111:
            guard let code = first(Attribute.errorCode)?.value, code.count >= 4 else { return nil }
            if first(Attribute.messageIntegrity) != nil { guard let answerPassword, integrityHolds(answerPassword) else { return nil } }
            let start = code.startIndex
            return .error(transactionID: transactionID, code: Int(code[start + 2] & 0x07) * 100 + Int(code[start + 3]))
        default:
            return nil
        }
    }

    private static func header(type: UInt16, transactionID: [UInt8]) -> STUNCodec.Writer {
        precondition(transactionID.count == 12)
        var writer = STUNCodec.Writer()
        writer.u16(type)
        writer.u16(0)
        writer.bytes(magicCookie)
        writer.bytes(transactionID)
        return writer
    }

    /// MESSAGE-INTEGRITY (HMAC-SHA1 keyed with the short-term password, RFC 8489 section 9.1), then
    /// FINGERPRINT.
    private static func seal(_ writer: inout STUNCodec.Writer, password: String) -> [UInt8] {
        let through = writer.buffer.count - 20 + 24
        let mac = writer.buffer.withUnsafeBytes {
            STUNCodec.mac(type: Attribute.messageIntegrity, key: Array(password.utf8), message: $0, lengthThrough: through)
        }
        writer.attribute(Attribute.messageIntegrity, mac)
        writer.appendFingerprint()
        return writer.finished()
    }
}
