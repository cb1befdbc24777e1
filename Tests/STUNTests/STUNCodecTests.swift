import Addresses
import Foundation
import STUN
import TestSupport
import Testing

/// The codec against aioice's STUN implementation, which nobody here wrote: messages aioice encodes are
/// decoded and verified here, and messages encoded here are parsed and verified by aioice.
@Suite struct STUNCodecTests {
    let codec = STUNCodec()
    let username = "1700003600:vector"
    let realm = "gatehouse"
    let password = "vector-password"

    func aioice(_ arguments: [String]) throws -> String {
        let script = Binaries.packageRoot.appending(path: "Tests/Interop/aioice_stun_vectors.py").path
        return try Command.runBlocking([Binaries.python, script] + arguments).standardOutput
    }

    func vectors() throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for line in try aioice(["make"]).split(separator: "\n") {
            let parts = line.split(separator: " ")
            result[String(parts[0])] = hexBytes(String(parts[1]))
        }
        return result
    }

    func hexBytes(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }

    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func decode(_ bytes: [UInt8]) throws -> TURNRequest {
        try bytes.withUnsafeBytes { try codec.decode($0).get() }
    }

    @Test func decodesAndVerifiesAnAllocateFromAioice() throws {
        let bytes = try #require(try vectors()["allocate"])
        let request = try decode(bytes)
        #expect(request.method == .allocate)
        #expect(request.kind == .request)
        #expect(request.transactionID == Array(1...12))
        #expect(request.requestedTransport == 17)
        #expect(request.lifetime == 1200)
        #expect(request.username == username)
        #expect(request.realm == realm)
        #expect(request.nonce == "0123456789abcdef")
        #expect(request.integrity == .sha1)
        #expect(request.fingerprint)
        let verified = bytes.withUnsafeBytes { codec.verifyIntegrity($0, username: username, realm: realm, password: password) }
        #expect(verified)
        let wrong = bytes.withUnsafeBytes { codec.verifyIntegrity($0, username: username, realm: realm, password: "nope") }
        #expect(!wrong)
    }

    @Test func aCorruptedMessageFailsItsFingerprintOrIntegrity() throws {
        var bytes = try #require(try vectors()["allocate"])
        bytes[30] ^= 0x01  // inside USERNAME
        #expect(throws: TURNDecodeFailure.self) { _ = try decode(bytes) }
    }

    @Test func decodesXORPeerAddressesOfBothFamilies() throws {
        let vectors = try vectors()
        let permission = try decode(try #require(vectors["permission"]))
        #expect(permission.peers == [try SocketAddress("2001:db8::1234", port: 40000)], "IPv6 is XORed with cookie and transaction ID")
        let send = try decode(try #require(vectors["send"]))
        #expect(send.kind == .indication)
        #expect(send.peers == [try SocketAddress("192.0.2.44", port: 5000)])
        #expect(send.data == Array("hello peer".utf8))
    }

    @Test func aioiceVerifiesASuccessResponseEncodedHere() throws {
        var response = TURNResponse(method: .allocate, kind: .success, transactionID: Array(1...12))
        response.xorMappedAddress = try SocketAddress("198.51.100.7", port: 50000)
        response.xorRelayedAddresses = [try SocketAddress("2001:db8::5", port: 49999)]
        response.lifetime = 600
        response.software = "gatehouse"
        let bytes = codec.encode(response, integrity: (.sha1, username: username, realm: realm, password: password), fingerprint: true)
        let parsed = try aioice(["check", hex(bytes)])
        #expect(parsed.contains("method=ALLOCATE class=RESPONSE"), "\(parsed)")
        #expect(parsed.contains("XOR-MAPPED-ADDRESS=('198.51.100.7', 50000)"), "\(parsed)")
        #expect(parsed.contains("XOR-RELAYED-ADDRESS=('2001:db8::5', 49999)"), "\(parsed)")
        #expect(parsed.contains("LIFETIME=600"), "\(parsed)")
        // The check is not vacuous: the same response signed with another password fails it.
        let forged = codec.encode(response, integrity: (.sha1, username: username, realm: realm, password: "other"), fingerprint: true)
        let script = Binaries.packageRoot.appending(path: "Tests/Interop/aioice_stun_vectors.py").path
        let refused = try Command.runBlocking([Binaries.python, script, "check", hex(forged)], check: false)
        #expect(refused.status != 0)
        #expect(refused.standardError.contains("MESSAGE-INTEGRITY does not verify"))
    }

    @Test func aioiceReadsAnErrorResponseEncodedHere() throws {
        var response = TURNResponse(method: .allocate, kind: .error, transactionID: Array(1...12))
        response.errorCode = .staleNonce
        response.realm = realm
        response.nonce = "fresh-nonce"
        let bytes = codec.encode(response, integrity: (.sha1, username: username, realm: realm, password: password), fingerprint: true)
        let parsed = try aioice(["check", hex(bytes)])
        #expect(parsed.contains("ERROR-CODE=(438, 'Stale Nonce')"), "\(parsed)")
        #expect(parsed.contains("class=ERROR"), "\(parsed)")
    }

    @Test func aioiceVerifiesARequestEncodedHere() throws {
        let credentials = STUNCodec.RequestCredentials(username: username, realm: realm, nonce: "n0nce", password: password)
        let bytes = codec.encodeRequest(
            method: .channelBind, [.channel(0x4001), .peer(try SocketAddress("10.9.8.7", port: 1234))],
            transactionID: Array(1...12), credentials: credentials, fingerprint: true)
        let parsed = try aioice(["check", hex(bytes)])
        #expect(parsed.contains("method=CHANNEL_BIND class=REQUEST"), "\(parsed)")
        #expect(parsed.contains("XOR-PEER-ADDRESS=('10.9.8.7', 1234)"), "\(parsed)")
        // And it decodes here to the same values.
        let request = try decode(bytes)
        #expect(request.channel == 0x4001)
        #expect(request.fingerprint)
    }

    @Test(arguments: [
        ("a valid header with a length that does not match", [0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42] + Array(repeating: UInt8(0), count: 12)),
        ("an attribute running past the end", [0x00, 0x01, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42] + Array(repeating: UInt8(0), count: 12) + [0x00, 0x06, 0x00, 0x10]),
        ("a LIFETIME of the wrong size", [0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xA4, 0x42] + Array(repeating: UInt8(0), count: 12) + [0x00, 0x0D, 0x00, 0x02, 0, 1, 0, 0]),
    ] as [(String, [UInt8])])
    func malformedRequestsKeepTheirTransactionIDForA400(description: String, bytes: [UInt8]) {
        let result = bytes.withUnsafeBytes { codec.decode($0) }
        guard case let .failure(failure) = result else {
            Issue.record("\(description) decoded")
            return
        }
        #expect(failure.requestTransactionID == Array(repeating: 0, count: 12), "\(description)")
    }

    @Test(arguments: [
        [UInt8](), [0x00], Array(repeating: UInt8(0), count: 19),
        [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x43] + Array(repeating: UInt8(0), count: 12),  // wrong cookie
        [0xC0, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42] + Array(repeating: UInt8(0), count: 12),  // top bits set
    ])
    func notSTUNAtAllHasNoTransactionID(bytes: [UInt8]) {
        let result = bytes.withUnsafeBytes { codec.decode($0) }
        guard case let .failure(failure) = result else {
            Issue.record("decoded")
            return
        }
        #expect(failure.requestTransactionID == nil)
    }
}

@Suite struct ChannelDataTests {
    @Test func paddingIsAcceptedAndNotCounted() throws {
        let padded: [UInt8] = [0x40, 0x01, 0x00, 0x03, 9, 8, 7, 0]
        try padded.withUnsafeBytes { bytes in
            let frame = try #require(ChannelData(bytes))
            #expect(frame.channel == 0x4001)
            #expect(Array(frame.payload) == [9, 8, 7])
        }
    }

    @Test(arguments: [
        [0x40, 0x01, 0x00, 0x05, 1, 2, 3] as [UInt8],  // shorter than its length
        [0x40, 0x01, 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8],  // longer than length plus padding
        [0x3F, 0xFF, 0x00, 0x00],  // not a channel number
        [0x40, 0x01, 0x00],  // no complete header
    ])
    func malformedFramesAreRefused(bytes: [UInt8]) {
        bytes.withUnsafeBytes { #expect(ChannelData($0) == nil) }
    }

    @Test func framingRoundTrips() throws {
        let payload: [UInt8] = Array(0..<37)
        let framed = payload.withUnsafeBytes { ChannelData.frame(channel: 0x7ABC, payload: $0) }
        #expect(Array(framed.prefix(4)) == [0x7A, 0xBC, 0x00, 37])
        try framed.withUnsafeBytes { bytes in
            let frame = try #require(ChannelData(bytes))
            #expect(Array(frame.payload) == payload)
        }
    }
}

@Suite struct RESTCredentialsTests {
    @Test func passwordIsBase64OfHMACSHA1OfTheUsername() {
        // python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"secret",b"1700000000:alice",hashlib.sha1).digest()).decode())'
        #expect(RESTCredentials.password(secret: "secret", username: "1700000000:alice") == "d8soP47RbdIKLDUOpnJPVQyq5Ts=")
    }

    @Test(arguments: [("1700000000:alice", Int64(1_700_000_000)), ("42", 42), ("x:1", nil), ("", nil), (":alice", nil)] as [(String, Int64?)])
    func expiryIsTheLeadingUnixTime(username: String, expiry: Int64?) {
        #expect(RESTCredentials.expiry(of: username) == expiry)
    }
}
