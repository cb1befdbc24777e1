import Addresses
import STUN
import TURN
import Testing

/// Property tests with a seeded generator (a failure reproduces from its seed): whatever request a
/// client encodes decodes to the same values, with its integrity and fingerprint verified; whatever
/// response the server encodes, a client reads back the same values and verifies it.
@Suite struct STUNRoundTripTests {
    let codec = STUNCodec()

    static func address(_ random: inout SplitMix64) -> SocketAddress {
        let port = UInt16.random(in: 1...65535, using: &random)
        return Bool.random(using: &random)
            ? SocketAddress(ip: .v4(UInt32.random(in: 0...UInt32.max, using: &random)), port: port)
            : SocketAddress(ip: .v6(UInt64.random(in: 0...UInt64.max, using: &random), UInt64.random(in: 0...UInt64.max, using: &random)), port: port)
    }

    static func text(_ random: inout SplitMix64, _ range: ClosedRange<Int>) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789:/+=-マトリックス")
        return String((0..<Int.random(in: range, using: &random)).map { _ in alphabet.randomElement(using: &random) ?? "a" })
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func requestsRoundTrip(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        let methods: [TURNRequest.Method] = [.binding, .allocate, .refresh, .send, .createPermission, .channelBind]
        for _ in 0..<2000 {
            let method = methods.randomElement(using: &random) ?? .allocate
            let transactionID = (0..<12).map { _ in UInt8.random(in: 0...255, using: &random) }
            let lifetime: UInt32? = Bool.random(using: &random) ? UInt32.random(in: 0...UInt32.max, using: &random) : nil
            let transport: UInt8? = Bool.random(using: &random) ? UInt8.random(in: 0...255, using: &random) : nil
            let peers = (0..<Int.random(in: 0...3, using: &random)).map { _ in Self.address(&random) }
            let channel: UInt16? = Bool.random(using: &random) ? UInt16.random(in: 0x4000...0x7FFF, using: &random) : nil
            let data: [UInt8]? = Bool.random(using: &random)
                ? (0..<Int.random(in: 0...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) } : nil
            var attributes: [TURNRequestAttribute] = []
            if let transport { attributes.append(.transport(transport)) }
            if let lifetime { attributes.append(.lifetime(lifetime)) }
            attributes += peers.map { .peer($0) }
            if let channel { attributes.append(.channel(channel)) }
            if let data { attributes.append(.data(data)) }
            let signed = Bool.random(using: &random)
            let credentials = STUNCodec.RequestCredentials(
                username: Self.text(&random, 1...40), realm: Self.text(&random, 1...20), nonce: Self.text(&random, 1...30),
                password: Self.text(&random, 1...20))
            let fingerprint = Bool.random(using: &random)
            let indication = method == .send
            let bytes = codec.encodeRequest(
                method: method, attributes, transactionID: transactionID, credentials: signed ? credentials : nil,
                indication: indication, fingerprint: fingerprint)

            let decoded = try #require(bytes.withUnsafeBytes { try? codec.decode($0).get() }, "decodes: \(bytes)")
            #expect(decoded.method == method && decoded.kind == (indication ? .indication : .request))
            #expect(decoded.transactionID == transactionID)
            #expect(decoded.lifetime == lifetime && decoded.requestedTransport == transport)
            #expect(decoded.peers == peers && decoded.channel == channel && decoded.data == data)
            #expect(decoded.fingerprint == fingerprint)
            if signed {
                #expect(decoded.username == credentials.username && decoded.realm == credentials.realm && decoded.nonce == credentials.nonce)
                #expect(decoded.integrity == .sha1)
                let verified = bytes.withUnsafeBytes {
                    codec.verifyIntegrity($0, username: credentials.username, realm: credentials.realm, password: credentials.password)
                }
                #expect(verified)
            } else {
                #expect(decoded.integrity == nil && decoded.username == nil)
            }
        }
    }

    @Test(arguments: [4, 5] as [UInt64])
    func responsesRoundTrip(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        for _ in 0..<1000 {
            let transactionID = (0..<12).map { _ in UInt8.random(in: 0...255, using: &random) }
            let isError = Bool.random(using: &random)
            var response = TURNResponse(method: .allocate, kind: isError ? .error : .success, transactionID: transactionID)
            if isError { response.errorCode = STUNErrorCode.allCases.randomElement(using: &random) }
            response.xorMappedAddress = Self.address(&random)
            response.xorRelayedAddresses = (0..<Int.random(in: 0...2, using: &random)).map { _ in Self.address(&random) }
            response.lifetime = UInt32.random(in: 0...UInt32.max, using: &random)
            let username = Self.text(&random, 1...30)
            let password = Self.text(&random, 1...20)
            let integrity: TURNRequest.Integrity = Bool.random(using: &random) ? .sha1 : .sha256
            let fingerprint = Bool.random(using: &random)
            let bytes = codec.encode(response, integrity: (integrity, username: username, realm: "gatehouse", password: password), fingerprint: fingerprint)

            let decoded = try #require(bytes.withUnsafeBytes { try? codec.decode($0).get() })
            #expect(decoded.kind == .response && decoded.transactionID == transactionID && decoded.fingerprint == fingerprint)
            #expect(decoded.integrity == integrity)
            let verified = bytes.withUnsafeBytes { codec.verifyIntegrity($0, username: username, realm: "gatehouse", password: password) }
            #expect(verified)
            #expect(STUNCodec.errorCode(in: bytes) == response.errorCode?.rawValue)
            let mapped = try #require(STUNCodec.firstAttribute(STUNCodec.AttributeType.xorMappedAddress, in: bytes))
            #expect(mapped.withUnsafeBytes { STUNCodec.decodeXORAddress($0, transactionID: transactionID) } == response.xorMappedAddress)
            let lifetime = try #require(STUNCodec.firstAttribute(STUNCodec.AttributeType.lifetime, in: bytes))
            #expect(lifetime.reduce(0) { $0 << 8 | UInt32($1) } == response.lifetime)
        }
    }
}
