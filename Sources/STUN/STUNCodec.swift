import Crypto
import Foundation
package import Addresses

/// The STUN message codec the TURN server runs on (RFC 8489 section 5 and 14, RFC 8656 section 18):
/// decodes what the server needs from a request in one pass over the bytes, verifies
/// MESSAGE-INTEGRITY(-SHA256), and encodes responses with integrity and FINGERPRINT.
package struct STUNCodec: TURNCodec {
    package static let magicCookie: UInt32 = 0x2112_A442

    package init() {}

    // MARK: Types and methods (RFC 8489 section 5, RFC 8656 section 17)

    package enum AttributeType {
        package static let mappedAddress: UInt16 = 0x0001
        package static let username: UInt16 = 0x0006
        package static let messageIntegrity: UInt16 = 0x0008
        package static let errorCode: UInt16 = 0x0009
        package static let unknownAttributes: UInt16 = 0x000A
        package static let channelNumber: UInt16 = 0x000C
        package static let lifetime: UInt16 = 0x000D
        package static let xorPeerAddress: UInt16 = 0x0012
        package static let data: UInt16 = 0x0013
        package static let realm: UInt16 = 0x0014
        package static let nonce: UInt16 = 0x0015
        package static let xorRelayedAddress: UInt16 = 0x0016
        package static let requestedAddressFamily: UInt16 = 0x0017
        package static let evenPort: UInt16 = 0x0018
        package static let requestedTransport: UInt16 = 0x0019
        package static let dontFragment: UInt16 = 0x001A
        package static let messageIntegritySHA256: UInt16 = 0x001C
        package static let passwordAlgorithm: UInt16 = 0x001D
        package static let userhash: UInt16 = 0x001E
        package static let xorMappedAddress: UInt16 = 0x0020
        package static let reservationToken: UInt16 = 0x0022
        package static let priority: UInt16 = 0x0024
        package static let useCandidate: UInt16 = 0x0025
        package static let additionalAddressFamily: UInt16 = 0x8000
        package static let addressErrorCode: UInt16 = 0x8001
        package static let software: UInt16 = 0x8022
        package static let fingerprint: UInt16 = 0x8028

        /// Comprehension-required attributes (type < 0x8000) this codec understands.
        package static let understood: Set<UInt16> = [
            mappedAddress, username, messageIntegrity, errorCode, unknownAttributes, channelNumber, lifetime,
            xorPeerAddress, data, realm, nonce, xorRelayedAddress, requestedAddressFamily, evenPort,
            requestedTransport, dontFragment, messageIntegritySHA256, passwordAlgorithm, userhash,
            xorMappedAddress, reservationToken, priority, useCandidate,
        ]
    }

    package static func methodCode(_ method: TURNRequest.Method) -> UInt16 {
        switch method {
        case .binding: 0x001
        case .allocate: 0x003
        case .refresh: 0x004
        case .send: 0x006
        case .data: 0x007
        case .createPermission: 0x008
        case .channelBind: 0x009
        case let .other(code): code
        }
    }

    package static func method(_ code: UInt16) -> TURNRequest.Method {
        switch code {
        case 0x001: .binding
        case 0x003: .allocate
        case 0x004: .refresh
        case 0x006: .send
        case 0x007: .data
        case 0x008: .createPermission
        case 0x009: .channelBind
        default: .other(code)
        }
    }

    /// The method and class bits interleaved in the message type (RFC 8489 section 5, figure 3).
    package static func messageType(method: UInt16, classBits: UInt16) -> UInt16 {
        (method & 0x0F80) << 2 | (method & 0x0070) << 1 | (method & 0x000F) | (classBits & 0x2) << 7 | (classBits & 0x1) << 4
    }

    // MARK: Decoding

    package func decode(_ bytes: UnsafeRawBufferPointer) -> Result<TURNRequest, TURNDecodeFailure> {
        // Header (RFC 8489 section 5): the top two bits zero, length a multiple of 4 that matches the
        // datagram, the magic cookie.
        guard bytes.count >= 20, bytes[0] & 0xC0 == 0, read32(bytes, 4) == Self.magicCookie else {
            return .failure(TURNDecodeFailure(requestTransactionID: nil, method: nil))
        }
        let type = read16(bytes, 0)
        let classBits = (type >> 7) & 0x2 | (type >> 4) & 0x1
        let methodBits = (type & 0x3E00) >> 2 | (type & 0x00E0) >> 1 | (type & 0x000F)
        let method = Self.method(methodBits)
        let transactionID = Array(bytes[8..<20])
        let failure = TURNDecodeFailure(requestTransactionID: classBits == 0 ? transactionID : nil, method: method)
        let length = Int(read16(bytes, 2))
        guard length % 4 == 0, 20 + length == bytes.count else { return .failure(failure) }

        let kind: TURNRequest.Kind = switch classBits {
        case 0: .request
        case 1: .indication
        default: .response
        }
        var request = TURNRequest(method: method, kind: kind, transactionID: transactionID)
        var offset = 20
        var afterIntegrity = false
        var seen: Set<UInt16> = []
        while offset < bytes.count {
            guard offset + 4 <= bytes.count else { return .failure(failure) }
            let attribute = read16(bytes, offset)
            let valueLength = Int(read16(bytes, offset + 2))
            let valueStart = offset + 4
            let next = valueStart + (valueLength + 3) & ~3
            guard valueStart + valueLength <= bytes.count, next <= bytes.count else { return .failure(failure) }
            let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<(valueStart + valueLength)])
            defer { offset = next }

            if attribute == AttributeType.fingerprint {
                // FINGERPRINT is last (section 14.7); a wrong one means this is not STUN at all.
                guard valueLength == 4, next == bytes.count,
                      read32(value, 0) == Self.fingerprint(UnsafeRawBufferPointer(rebasing: bytes[0..<offset]), length: length)
                else { return .failure(TURNDecodeFailure(requestTransactionID: nil, method: nil)) }
                request.fingerprint = true
                continue
            }
            // After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count (section 14.5).
            if afterIntegrity && attribute != AttributeType.messageIntegritySHA256 { continue }
            // Only the first of a repeated attribute counts, except peers (CreatePermission lists several).
            if attribute != AttributeType.xorPeerAddress && !seen.insert(attribute).inserted { continue }

            switch attribute {
            case AttributeType.username:
                guard valueLength <= 513, let text = String(validating: value, as: UTF8.self) else { return .failure(failure) }
                request.username = text
            case AttributeType.realm:
                guard valueLength <= 763, let text = String(validating: value, as: UTF8.self) else { return .failure(failure) }
                request.realm = text
            case AttributeType.nonce:
                guard valueLength <= 763, let text = String(validating: value, as: UTF8.self) else { return .failure(failure) }
                request.nonce = text
            case AttributeType.messageIntegrity:
                guard valueLength == 20 else { return .failure(failure) }
                request.integrity = .sha1
                afterIntegrity = true
            case AttributeType.messageIntegritySHA256:
                guard valueLength >= 16, valueLength <= 32, valueLength % 4 == 0 else { return .failure(failure) }
                request.integrity = .sha256
                afterIntegrity = true
            case AttributeType.lifetime:
                guard valueLength == 4 else { return .failure(failure) }
                request.lifetime = read32(value, 0)
            case AttributeType.requestedTransport:
                guard valueLength == 4 else { return .failure(failure) }
                request.requestedTransport = value[0]
            case AttributeType.requestedAddressFamily, AttributeType.additionalAddressFamily:
                guard valueLength == 4 else { return .failure(failure) }
                let family: TURNRequest.Family = switch value[0] {
                case 0x01: .ipv4
                case 0x02: .ipv6
                default: .unsupported(value[0])
                }
                if attribute == AttributeType.requestedAddressFamily {
                    request.requestedFamily = family
                } else {
                    request.additionalFamily = family
                }
            case AttributeType.xorPeerAddress:
                guard let peer = Self.decodeXORAddress(value, transactionID: transactionID) else { return .failure(failure) }
                request.peers.append(peer)
            case AttributeType.channelNumber:
                guard valueLength == 4 else { return .failure(failure) }
                request.channel = read16(value, 0)
            case AttributeType.data:
                request.data = Array(value)
            case AttributeType.evenPort:
                guard valueLength == 1 else { return .failure(failure) }
                request.evenPort = value[0] & 0x80 != 0 ? .evenAndReserveNext : .even
            case AttributeType.reservationToken:
                guard valueLength == 8 else { return .failure(failure) }
                request.reservationToken = Array(value)
            default:
                if attribute < 0x8000 && !AttributeType.understood.contains(attribute) {
                    request.unknownRequired.append(attribute)
                }
            }
        }
        return .success(request)
    }

    /// XOR-MAPPED-ADDRESS and its kin (RFC 8489 section 14.2).
    package static func decodeXORAddress(_ value: UnsafeRawBufferPointer, transactionID: [UInt8]) -> SocketAddress? {
        guard value.count >= 8 else { return nil }
        let port = read16(value, 2) ^ 0x2112
        switch value[1] {
        case 0x01:
            guard value.count == 8 else { return nil }
            return SocketAddress(ip: .v4(read32(value, 4) ^ magicCookie), port: port)
        case 0x02:
            guard value.count == 20 else { return nil }
            let mask = xorMask(transactionID)
            let high = read64(value, 4) ^ mask.high
            let low = read64(value, 12) ^ mask.low
            return SocketAddress(ip: .v6(high, low), port: port)
        default:
            return nil
        }
    }

    private static func xorMask(_ transactionID: [UInt8]) -> (high: UInt64, low: UInt64) {
        var high = UInt64(magicCookie) << 32
        for index in 0..<4 { high |= UInt64(transactionID[index]) << (24 - 8 * index) }
        var low: UInt64 = 0
        for index in 4..<12 { low |= UInt64(transactionID[index]) << (56 - 8 * (index - 4)) }
        return (high, low)
    }

    // MARK: Integrity (RFC 8489 sections 9.2.2, 14.5, 14.6)

    package func verifyIntegrity(_ bytes: UnsafeRawBufferPointer, username: String, realm: String, password: String) -> Bool {
        guard let (offset, type, length) = Self.integrityAttribute(bytes) else { return false }
        let expected = UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + 4 + length)])
        let computed = Self.mac(type: type, key: Self.longTermKey(type: type, username: username, realm: realm, password: password),
                                message: UnsafeRawBufferPointer(rebasing: bytes[0..<offset]), lengthThrough: offset - 20 + 4 + length)
        return Self.constantTimeEqual(expected, computed.prefix(length))
    }

    /// The integrity attribute the server verifies: MESSAGE-INTEGRITY-SHA256 when present (the stronger),
    /// else MESSAGE-INTEGRITY. Returns its offset, type and value length.
    static func integrityAttribute(_ bytes: UnsafeRawBufferPointer) -> (Int, UInt16, Int)? {
        var offset = 20
        var found: (Int, UInt16, Int)?
        while offset + 4 <= bytes.count {
            let type = read16(bytes, offset)
            let length = Int(read16(bytes, offset + 2))
            // An attribute running past the end is no integrity attribute (and must not be read).
            guard offset + 4 + length <= bytes.count else { return found }
            if type == AttributeType.messageIntegrity && found == nil { found = (offset, type, length) }
            if type == AttributeType.messageIntegritySHA256 { return (offset, type, length) }
            offset += 4 + (length + 3) & ~3
        }
        return found
    }

    package static func longTermKey(type: UInt16, username: String, realm: String, password: String) -> [UInt8] {
        let material = Data("\(username):\(realm):\(password)".utf8)
        return type == AttributeType.messageIntegritySHA256 ? Array(SHA256.hash(data: material)) : Array(Insecure.MD5.hash(data: material))
    }

    /// The HMAC over `message` with the header's length field set to `lengthThrough` (the attributes up
    /// to and including the integrity attribute).
    package static func mac(type: UInt16, key: [UInt8], message: UnsafeRawBufferPointer, lengthThrough: Int) -> [UInt8] {
        var copy = Array(message)
        copy[2] = UInt8(lengthThrough >> 8)
        copy[3] = UInt8(lengthThrough & 0xFF)
        let symmetricKey = SymmetricKey(data: key)
        if type == AttributeType.messageIntegritySHA256 {
            return Array(HMAC<SHA256>.authenticationCode(for: copy, using: symmetricKey))
        }
        return Array(HMAC<Insecure.SHA1>.authenticationCode(for: copy, using: symmetricKey))
    }

    static func constantTimeEqual(_ lhs: UnsafeRawBufferPointer, _ rhs: ArraySlice<UInt8>) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(lhs, rhs) { difference |= a ^ b }
        return difference == 0
    }

    // MARK: FINGERPRINT (RFC 8489 section 14.7)

    /// CRC-32 of the message up to the FINGERPRINT attribute, with the length field counting it, XOR
    /// 0x5354554E.
    package static func fingerprint(_ message: UnsafeRawBufferPointer, length: Int) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for (index, byte) in message.enumerated() {
            var value = byte
            if index == 2 { value = UInt8(length >> 8) }
            if index == 3 { value = UInt8(length & 0xFF) }
            crc = crcTable[Int((crc ^ UInt32(value)) & 0xFF)] ^ (crc >> 8)
        }
        return (crc ^ 0xFFFF_FFFF) ^ 0x5354_554E
    }

    static let crcTable: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    // MARK: Encoding

    package func encode(
        _ response: TURNResponse, integrity: (TURNRequest.Integrity, username: String, realm: String, password: String)?, fingerprint: Bool
    ) -> [UInt8] {
        let classBits: UInt16 = switch response.kind {
        case .indication: 1
        case .success: 2
        case .error: 3
        }
        var writer = Writer()
        writer.u16(Self.messageType(method: Self.methodCode(response.method), classBits: classBits))
        writer.u16(0)
        writer.u32(Self.magicCookie)
        writer.bytes(response.transactionID)
        let transactionID = response.transactionID

        if let code = response.errorCode {
            var value = Writer()
            value.u16(0)
            value.u8(UInt8(code.rawValue / 100))
            value.u8(UInt8(code.rawValue % 100))
            value.bytes(Array(code.reasonPhrase.utf8))
            writer.attribute(AttributeType.errorCode, value.buffer)
        }
        if !response.unknownAttributes.isEmpty {
            var value = Writer()
            for type in response.unknownAttributes { value.u16(type) }
            writer.attribute(AttributeType.unknownAttributes, value.buffer)
        }
        for address in response.xorRelayedAddresses {
            writer.attribute(AttributeType.xorRelayedAddress, Self.encodeXORAddress(address, transactionID: transactionID))
        }
        if let token = response.reservationToken { writer.attribute(AttributeType.reservationToken, token) }
        if let address = response.xorMappedAddress {
            writer.attribute(AttributeType.xorMappedAddress, Self.encodeXORAddress(address, transactionID: transactionID))
        }
        if let address = response.xorPeerAddress {
            writer.attribute(AttributeType.xorPeerAddress, Self.encodeXORAddress(address, transactionID: transactionID))
        }
        if let data = response.data { writer.attribute(AttributeType.data, data) }
        if let lifetime = response.lifetime {
            var value = Writer()
            value.u32(lifetime)
            writer.attribute(AttributeType.lifetime, value.buffer)
        }
        if let (family, code) = response.addressError {
            var value = Writer()
            value.u8(family == .ipv6 ? 0x02 : 0x01)
            value.u8(0)
            value.u8(UInt8(code.rawValue / 100))
            value.u8(UInt8(code.rawValue % 100))
            value.bytes(Array(code.reasonPhrase.utf8))
            writer.attribute(AttributeType.addressErrorCode, value.buffer)
        }
        if let realm = response.realm { writer.attribute(AttributeType.realm, Array(realm.utf8)) }
        if let nonce = response.nonce { writer.attribute(AttributeType.nonce, Array(nonce.utf8)) }
        if let software = response.software { writer.attribute(AttributeType.software, Array(software.utf8)) }

        if let (kind, username, realm, password) = integrity {
            let type = kind == .sha256 ? AttributeType.messageIntegritySHA256 : AttributeType.messageIntegrity
            let macLength = kind == .sha256 ? 32 : 20
            let key = Self.longTermKey(type: type, username: username, realm: realm, password: password)
            let mac = writer.buffer.withUnsafeBytes { message in
                Self.mac(type: type, key: key, message: message, lengthThrough: message.count - 20 + 4 + macLength)
            }
            writer.attribute(type, mac)
        }
        if fingerprint { writer.appendFingerprint() }
        return writer.finished()
    }

    package static func encodeXORAddress(_ address: SocketAddress, transactionID: [UInt8]) -> [UInt8] {
        var value = Writer()
        value.u8(0)
        value.u16(address.port ^ 0x2112)
        switch address.ip {
        case let .v4(ip):
            value.buffer.insert(0x01, at: 1)
            value.u32(ip ^ magicCookie)
        case let .v6(high, low):
            value.buffer.insert(0x02, at: 1)
            let mask = xorMask(transactionID)
            value.u64(high ^ mask.high)
            value.u64(low ^ mask.low)
        }
        return value.buffer
    }

    package struct Writer {
        package var buffer: [UInt8] = []

        package init() {}

        package mutating func u8(_ value: UInt8) { buffer.append(value) }
        package mutating func u16(_ value: UInt16) { buffer.append(UInt8(value >> 8)); buffer.append(UInt8(value & 0xFF)) }
        package mutating func u32(_ value: UInt32) { u16(UInt16(value >> 16)); u16(UInt16(value & 0xFFFF)) }
        package mutating func u64(_ value: UInt64) { u32(UInt32(value >> 32)); u32(UInt32(value & 0xFFFF_FFFF)) }
        package mutating func bytes(_ value: [UInt8]) { buffer.append(contentsOf: value) }

        /// FINGERPRINT over everything written so far (RFC 8489 section 14.7); it must come last.
        package mutating func appendFingerprint() {
            let length = buffer.count - 20 + 8
            let crc = buffer.withUnsafeBytes { STUNCodec.fingerprint($0, length: length) }
            var value = Writer()
            value.u32(crc)
            attribute(AttributeType.fingerprint, value.buffer)
        }

        /// The message with its header's length field set.
        package mutating func finished() -> [UInt8] {
            let length = buffer.count - 20
            buffer[2] = UInt8(length >> 8)
            buffer[3] = UInt8(length & 0xFF)
            return buffer
        }

        /// Type, length, value, and zero padding to 4 bytes.
        package mutating func attribute(_ type: UInt16, _ value: [UInt8]) {
            u16(type)
            u16(UInt16(value.count))
            bytes(value)
            buffer.append(contentsOf: repeatElement(0, count: (4 - value.count % 4) % 4))
        }
    }
}

func read16(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt16 {
    UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
}

func read32(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(read16(bytes, offset)) << 16 | UInt32(read16(bytes, offset + 2))
}

func read64(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
    UInt64(read32(bytes, offset)) << 32 | UInt64(read32(bytes, offset + 4))
}
