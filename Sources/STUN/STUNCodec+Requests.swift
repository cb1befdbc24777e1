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
        credentials: RequestCredentials? = nil, indication: Bool = false, fingerprint: Bool = false
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
            case let .raw(type, value):
                writer.attribute(type, value)
            }
        }
        if let credentials {
            writer.attribute(AttributeType.username, Array(credentials.username.utf8))
            writer.attribute(AttributeType.realm, Array(credentials.realm.utf8))
            writer.attribute(AttributeType.nonce, Array(credentials.nonce.utf8))
            let key = Self.longTermKey(
                type: AttributeType.messageIntegrity, username: credentials.username, realm: credentials.realm,
                password: credentials.password)
            let mac = writer.buffer.withUnsafeBytes {
                Self.mac(type: AttributeType.messageIntegrity, key: key, message: $0, lengthThrough: $0.count - 20 + 24)
            }
            writer.attribute(AttributeType.messageIntegrity, mac)
        }
        if fingerprint { writer.appendFingerprint() }
        return writer.finished()
    }
}
