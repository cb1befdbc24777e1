package import Addresses

/// What a TURN client puts in a request (the client side of the codec: the headless client allocates
/// on relays with it, and the tests drive the relay with it).
package enum TURNRequestAttribute: Sendable {
    case transport(UInt8)
    case lifetime(UInt32)
    case requestedFamily(UInt8)
    case additionalFamily(UInt8)
    case peer(SocketAddress)
    case channel(UInt16)
    case data([UInt8])
    /// EVEN-PORT, with the R bit when `reserveNext` (RFC 8656 section 18.8).
    case evenPort(reserveNext: Bool)
    /// RESERVATION-TOKEN (RFC 8656 section 18.9).
    case reservationToken([UInt8])
    /// Any attribute, as type and value.
    case raw(UInt16, [UInt8])
}

extension STUNCodec {
    /// Long-term credentials a request is signed with.
    package struct RequestCredentials: Sendable {
        package var username: String
        package var realm: String
        package var nonce: String
        package var password: String

        package init(username: String, realm: String, nonce: String, password: String) {
            self.username = username
            self.realm = realm
            self.nonce = nonce
            self.password = password
        }
    }

    /// Encodes a request (or with `indication`, an indication) with `attributes` in order, then
    /// USERNAME, REALM, NONCE and MESSAGE-INTEGRITY when `credentials` are given, then FINGERPRINT when
    /// asked for.
    package func encodeRequest(
        method: TURNRequest.Method, _ attributes: [TURNRequestAttribute], transactionID: [UInt8],
        credentials: RequestCredentials? = nil, integrity: TURNRequest.Integrity = .sha1, indication: Bool = false,
        fingerprint: Bool = false
    ) -> [UInt8] {
        var writer = Writer()
        writer.u16(Self.messageType(method: Self.methodCode(method), classBits: indication ? 1 : 0))
        writer.u16(0)
        writer.u32(Self.magicCookie)
        writer.bytes(transactionID)
        for attribute in attributes {
            switch attribute {
            case let .transport(protocolNumber):
                writer.attribute(AttributeType.requestedTransport, [protocolNumber, 0, 0, 0])
            case let .lifetime(seconds):
                var value = Writer()
                value.u32(seconds)
                writer.attribute(AttributeType.lifetime, value.buffer)
            case let .requestedFamily(family):
                writer.attribute(AttributeType.requestedAddressFamily, [family, 0, 0, 0])
            case let .additionalFamily(family):
                writer.attribute(AttributeType.additionalAddressFamily, [family, 0, 0, 0])
            case let .peer(address):
                writer.attribute(AttributeType.xorPeerAddress, Self.encodeXORAddress(address, transactionID: transactionID))
            case let .channel(number):
                writer.attribute(AttributeType.channelNumber, [UInt8(number >> 8), UInt8(number & 0xFF), 0, 0])
            case let .data(bytes):
                writer.attribute(AttributeType.data, bytes)
            case let .evenPort(reserveNext):
                writer.attribute(AttributeType.evenPort, [reserveNext ? 0x80 : 0x00])
            case let .reservationToken(token):
                writer.attribute(AttributeType.reservationToken, token)
            case let .raw(type, value):
                writer.attribute(type, value)
            }
        }
        if let credentials {
            writer.attribute(AttributeType.username, Array(credentials.username.utf8))
            writer.attribute(AttributeType.realm, Array(credentials.realm.utf8))
            writer.attribute(AttributeType.nonce, Array(credentials.nonce.utf8))
            // MESSAGE-INTEGRITY (HMAC-SHA1, 20 bytes) or MESSAGE-INTEGRITY-SHA256 (32 bytes), RFC 8489 section 14.5-14.6.
            let type = integrity == .sha256 ? AttributeType.messageIntegritySHA256 : AttributeType.messageIntegrity
            let macLength = integrity == .sha256 ? 32 : 20
            let key = Self.longTermKey(type: type, username: credentials.username, realm: credentials.realm, password: credentials.password)
            let mac = writer.buffer.withUnsafeBytes {
                Self.mac(type: type, key: key, message: $0, lengthThrough: $0.count - 20 + 4 + macLength)
            }
            writer.attribute(type, mac)
        }
        if fingerprint { writer.appendFingerprint() }
        return writer.finished()
    }
}

extension STUNCodec {
    /// The value of the first attribute of `type` in a STUN message, or nil (absent, or the message is
    /// malformed before it): what a client reads from a response, e.g. NONCE from a 401.
    package static func firstAttribute(_ type: UInt16, in bytes: [UInt8]) -> [UInt8]? {
        var offset = 20
        while offset + 4 <= bytes.count {
            let attribute = UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
            let length = Int(UInt16(bytes[offset + 2]) << 8 | UInt16(bytes[offset + 3]))
            guard offset + 4 + length <= bytes.count else { return nil }
            if attribute == type { return Array(bytes[(offset + 4)..<(offset + 4 + length)]) }
            offset += 4 + (length + 3) & ~3
        }
        return nil
    }

    /// NONCE of a response, as text.
    package static func nonce(in bytes: [UInt8]) -> String? {
        firstAttribute(AttributeType.nonce, in: bytes).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether `bytes` is a Data indication (relayed data, for the relay's counters).
    package static func isDataIndication(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 20 && messageType(method: methodCode(.data), classBits: 1) == UInt16(bytes[0]) << 8 | UInt16(bytes[1])
    }

    /// ERROR-CODE of a response as a number (401, 437, ...).
    package static func errorCode(in bytes: [UInt8]) -> Int? {
        firstAttribute(AttributeType.errorCode, in: bytes).flatMap { $0.count >= 4 ? Int($0[2] & 0x07) * 100 + Int($0[3]) : nil }
    }
}
