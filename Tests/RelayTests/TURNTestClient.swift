import Actors
import Foundation
import STUN

/// A small TURN client for driving the relay into each of its error branches over real UDP. It builds
/// requests with the codec's primitives; what the relay answers is checked by reading raw attributes.
/// (Interop with clients nobody here wrote is proven by the turnutils and aioice tests.)
final class TURNTestClient {
    typealias Attribute = TURNRequestAttribute

    struct Reply {
        var bytes: [UInt8]
        var messageType: UInt16
        var transactionID: [UInt8]
        var attributes: [(type: UInt16, value: [UInt8])]

        var isSuccess: Bool { messageType & 0x0110 == 0x0100 }
        var errorCode: Int? {
            guard let value = attribute(STUNCodec.AttributeType.errorCode), value.count >= 4 else { return nil }
            return Int(value[2]) * 100 + Int(value[3])
        }
        var nonce: String? { attribute(STUNCodec.AttributeType.nonce).map { String(decoding: $0, as: UTF8.self) } }
        var realm: String? { attribute(STUNCodec.AttributeType.realm).map { String(decoding: $0, as: UTF8.self) } }
        var relayedAddresses: [SocketAddress] {
            attributes.filter { $0.type == STUNCodec.AttributeType.xorRelayedAddress }.compactMap { attribute in
                attribute.value.withUnsafeBytes { STUNCodec.decodeXORAddress($0, transactionID: transactionID) }
            }
        }
        var unknownAttributes: [UInt16] {
            guard let value = attribute(STUNCodec.AttributeType.unknownAttributes) else { return [] }
            return stride(from: 0, to: value.count - 1, by: 2).map { UInt16(value[$0]) << 8 | UInt16(value[$0 + 1]) }
        }
        var hasIntegrity: Bool { attribute(STUNCodec.AttributeType.messageIntegrity) != nil }
        var hasSHA256Integrity: Bool { attribute(STUNCodec.AttributeType.messageIntegritySHA256) != nil }
        var software: String? { attribute(STUNCodec.AttributeType.software).map { String(decoding: $0, as: UTF8.self) } }

        func attribute(_ type: UInt16) -> [UInt8]? { attributes.first { $0.type == type }?.value }
    }

    static let allocate: UInt16 = 0x003
    static let refresh: UInt16 = 0x004
    static let send: UInt16 = 0x006
    static let createPermission: UInt16 = 0x008
    static let channelBind: UInt16 = 0x009

    let socket: UDPSocket
    let server: SocketAddress
    var username: String
    var password: String
    var nonce: String?
    let realm = "gatehouse"
    /// Which MESSAGE-INTEGRITY authenticated requests carry (RFC 8489 section 14.5-14.6).
    var integrity: TURNRequest.Integrity = .sha1

    init(server: SocketAddress, secret: String, id: String = "tester", expiry: Int64? = nil, bindTo host: String = "127.0.0.1") throws {
        socket = try UDPSocket(bindTo: host)
        self.server = server
        username = RESTCredentials.username(expiry: expiry ?? Int64(Date().timeIntervalSince1970) + 3600, id: id)
        password = RESTCredentials.password(secret: secret, username: username)
    }

    /// Encodes a request; with `authenticated`, adds USERNAME, REALM, NONCE and MESSAGE-INTEGRITY.
    func encode(method: UInt16, _ attributes: [Attribute], authenticated: Bool, transactionID: [UInt8], indication: Bool = false) -> [UInt8] {
        let credentials = authenticated
            ? STUNCodec.RequestCredentials(username: username, realm: realm, nonce: nonce ?? "", password: password) : nil
        return STUNCodec().encodeRequest(
            method: STUNCodec.method(method), attributes, transactionID: transactionID, credentials: credentials, integrity: integrity,
            indication: indication)
    }

    /// Sends a request and waits for the answer with the same transaction ID.
    func request(
        _ method: UInt16, _ attributes: [Attribute] = [], authenticated: Bool = true, transactionID: [UInt8]? = nil
    ) throws -> Reply? {
        let id = transactionID ?? (0..<12).map { _ in UInt8.random(in: 0...255) }
        try sendRaw(encode(method: method, attributes, authenticated: authenticated, transactionID: id))
        return try receiveReply(transactionID: id)
    }

    /// Allocates, first learning the nonce from the 401 as every client does.
    func allocate(_ attributes: [Attribute] = [.transport(17)]) throws -> Reply? {
        if nonce == nil {
            let challenge = try request(Self.allocate, attributes, authenticated: false)
            nonce = challenge?.nonce
        }
        return try request(Self.allocate, attributes)
    }

    func sendRaw(_ bytes: [UInt8]) throws {
        try socket.send(bytes, to: server)
    }

    /// The next reply (with `transactionID`, if given). The default wait is generous: a relay started
    /// among many other tests on a loaded machine may take seconds with its first answer, and this
    /// client does not retransmit; tests that expect silence pass a short `timeout` of their own.
    func receiveReply(transactionID: [UInt8]? = nil, timeout: Duration = .seconds(10)) throws -> Reply? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let (bytes, _) = try socket.receive(timeout: deadline - ContinuousClock.now) else { return nil }
            guard let reply = Self.parse(bytes), transactionID == nil || reply.transactionID == transactionID else { continue }
            return reply
        }
        return nil
    }

    static func parse(_ bytes: [UInt8]) -> Reply? {
        guard bytes.count >= 20, bytes[0] & 0xC0 == 0 else { return nil }
        var attributes: [(UInt16, [UInt8])] = []
        var offset = 20
        while offset + 4 <= bytes.count {
            let type = UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
            let length = Int(UInt16(bytes[offset + 2]) << 8 | UInt16(bytes[offset + 3]))
            guard offset + 4 + length <= bytes.count else { return nil }
            attributes.append((type, Array(bytes[(offset + 4)..<(offset + 4 + length)])))
            offset += 4 + (length + 3) & ~3
        }
        return Reply(bytes: bytes, messageType: UInt16(bytes[0]) << 8 | UInt16(bytes[1]),
                     transactionID: Array(bytes[8..<20]), attributes: attributes)
    }
}
