package import Addresses

// The message model between the codec and the TURN server: requests decoded once into plain values,
// responses described as values and encoded by the codec. The TURN state machine never touches bytes.

/// What the server needs to know of a STUN message from a client, decoded once by `STUNCodec`.
package struct TURNRequest: Sendable {
    package enum Method: Equatable, Sendable {
        case binding, allocate, refresh, send, data, createPermission, channelBind
        case other(UInt16)
    }

    package enum Kind: Equatable, Sendable {
        case request, indication, response
    }

    /// Which MESSAGE-INTEGRITY the client used (and the response uses).
    package enum Integrity: Equatable, Sendable {
        case sha1, sha256
    }

    /// The address families of REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY.
    package enum Family: Equatable, Sendable {
        case ipv4, ipv6
        case unsupported(UInt8)
    }

    package var method: Method
    package var kind: Kind
    package var transactionID: [UInt8]
    package var username: String?
    package var realm: String?
    package var nonce: String?
    package var integrity: Integrity?
    package var lifetime: UInt32?
    package var requestedTransport: UInt8?
    package var requestedFamily: Family?
    package var additionalFamily: Family?
    package var peers: [SocketAddress] = []
    package var channel: UInt16?
    package var data: [UInt8]?
    /// EVEN-PORT (RFC 8656 section 18.8): nil when absent.
    package var evenPort: EvenPort?
    /// RESERVATION-TOKEN (RFC 8656 section 18.9): the 8-byte token of a reserved relayed address.
    package var reservationToken: [UInt8]?
    /// Comprehension-required attributes (type < 0x8000) the codec does not know.
    package var unknownRequired: [UInt16] = []
    /// Whether the message carried a FINGERPRINT (responses then carry one too).
    package var fingerprint = false

    package init(method: Method, kind: Kind, transactionID: [UInt8]) {
        self.method = method
        self.kind = kind
        self.transactionID = transactionID
    }
}

/// What an EVEN-PORT attribute asks for (RFC 8656 section 18.8).
package enum EvenPort: Equatable, Sendable {
    /// An even relayed port.
    case even
    /// An even relayed port, and the next-higher port held for a later Allocate (the R bit), as RTP and
    /// RTCP pairs want.
    case evenAndReserveNext
}

/// A response or indication the server sends; the codec encodes it, adding integrity and FINGERPRINT.
package struct TURNResponse: Equatable, Sendable {
    package enum Kind: Equatable, Sendable {
        case success, error, indication
    }

    package var method: TURNRequest.Method
    package var kind: Kind
    package var transactionID: [UInt8]
    package var errorCode: STUNErrorCode?
    package var realm: String?
    package var nonce: String?
    package var xorMappedAddress: SocketAddress?
    package var xorRelayedAddresses: [SocketAddress] = []
    package var xorPeerAddress: SocketAddress?
    package var lifetime: UInt32?
    package var unknownAttributes: [UInt16] = []
    /// ADDRESS-ERROR-CODE: the family that could not be allocated and why (RFC 8656 section 18.12).
    package var addressError: (family: TURNRequest.Family, code: STUNErrorCode)?
    /// RESERVATION-TOKEN: the token under which the next-higher port is held (RFC 8656 section 18.9).
    package var reservationToken: [UInt8]?
    package var data: [UInt8]?
    package var software: String?

    package init(method: TURNRequest.Method, kind: Kind, transactionID: [UInt8]) {
        self.method = method
        self.kind = kind
        self.transactionID = transactionID
    }

    package static func == (lhs: TURNResponse, rhs: TURNResponse) -> Bool {
        lhs.method == rhs.method && lhs.kind == rhs.kind && lhs.transactionID == rhs.transactionID
            && lhs.errorCode == rhs.errorCode && lhs.realm == rhs.realm && lhs.nonce == rhs.nonce
            && lhs.xorMappedAddress == rhs.xorMappedAddress && lhs.xorRelayedAddresses == rhs.xorRelayedAddresses
            && lhs.xorPeerAddress == rhs.xorPeerAddress && lhs.lifetime == rhs.lifetime
            && lhs.unknownAttributes == rhs.unknownAttributes && lhs.addressError?.family == rhs.addressError?.family
            && lhs.addressError?.code == rhs.addressError?.code && lhs.data == rhs.data && lhs.software == rhs.software
            && lhs.reservationToken == rhs.reservationToken
    }
}

/// The message codec the server is built on: decodes requests, verifies integrity, encodes responses.
/// `STUNCodec` (in this module, over the `STUN` module) is the real one.
package protocol TURNCodec: Sendable {
    /// Decodes a STUN message; nil if it is not one. `transactionID` is set when the header could be read
    /// even though the rest could not (the server answers those with 400).
    func decode(_ bytes: UnsafeRawBufferPointer) -> Result<TURNRequest, TURNDecodeFailure>
    /// Verifies the message's MESSAGE-INTEGRITY (or -SHA256) with the long-term key material.
    func verifyIntegrity(_ bytes: UnsafeRawBufferPointer, username: String, realm: String, password: String) -> Bool
    /// Encodes a response; with `credentials`, adds MESSAGE-INTEGRITY of the given kind.
    func encode(_ response: TURNResponse, integrity: (TURNRequest.Integrity, username: String, realm: String, password: String)?, fingerprint: Bool) -> [UInt8]
}

/// Why a datagram that looked like STUN could not be decoded.
package struct TURNDecodeFailure: Error, Sendable {
    /// The transaction ID, if the header was readable and the message is a request.
    package var requestTransactionID: [UInt8]?
    package var method: TURNRequest.Method?

    package init(requestTransactionID: [UInt8]?, method: TURNRequest.Method?) {
        self.requestTransactionID = requestTransactionID
        self.method = method
    }
}
