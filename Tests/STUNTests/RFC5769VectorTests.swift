import Addresses
import STUN
import Testing

/// The test vectors of RFC 5769 ("Test Vectors for STUN"), byte for byte as published: the codec reads
/// them, their FINGERPRINT and MESSAGE-INTEGRITY check out with its CRC and HMAC code, the XOR addresses
/// decode, and one changed byte is caught.
@Suite struct RFC5769VectorTests {
    /// Section 2.1: Binding request, short-term credentials, SOFTWARE, PRIORITY, ICE-CONTROLLED, FINGERPRINT.
    static let request = bytes("""
        000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff\
        80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249\
        c1b571a280280004e57a3bcf
        """)
    /// Section 2.2: Binding success response with XOR-MAPPED-ADDRESS 192.0.2.1:32853.
    static let ipv4Response = bytes("""
        0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a643\
        000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96
        """)
    /// Section 2.3: the same with XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    static let ipv6Response = bytes("""
        010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000140002a1470113a9fa\
        a5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c
        """)
    /// Section 2.4: request with long-term credentials (user "マトリックス", realm example.org).
    static let longTermRequest = bytes("""
        000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b900000015001c\
        662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f72670000080014\
        f67024656dd64a3e02b8e0712e85c9a28ca89666
        """)
    static let shortTermPassword = "VOkJxbRl1RmTxUk/WvJxBt"

    static func bytes(_ hex: String) -> [UInt8] {
        let digits = Array(hex.utf8.filter { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16) ?? 0 }
    }

    let codec = STUNCodec()

    func decode(_ bytes: [UInt8]) -> TURNRequest? {
        bytes.withUnsafeBytes { try? codec.decode($0).get() }
    }

    /// MESSAGE-INTEGRITY at `offset` checks out with the short-term key (the password itself).
    func shortTermIntegrityHolds(_ bytes: [UInt8], at offset: Int) -> Bool {
        let mac = bytes.withUnsafeBytes {
            STUNCodec.mac(type: STUNCodec.AttributeType.messageIntegrity, key: Array(Self.shortTermPassword.utf8),
                          message: UnsafeRawBufferPointer(rebasing: $0[0..<offset]), lengthThrough: offset - 20 + 24)
        }
        return mac == Array(bytes[(offset + 4)..<(offset + 24)])
    }

    func xorAddress(_ bytes: [UInt8], valueAt range: Range<Int>) -> SocketAddress? {
        Array(bytes[range]).withUnsafeBytes { STUNCodec.decodeXORAddress($0, transactionID: Array(bytes[8..<20])) }
    }

    @Test func sampleRequest() throws {
        let request = try #require(decode(Self.request), "FINGERPRINT verified by the decoder")
        #expect(request.method == .binding && request.kind == .request)
        #expect(request.username == "evtj:h6vY")
        #expect(request.fingerprint)
        #expect(request.integrity == .sha1)
        #expect(request.unknownRequired == [], "PRIORITY and ICE-CONTROLLED (ICE's) are tolerated, not 420")
        #expect(shortTermIntegrityHolds(Self.request, at: 76))
    }

    @Test func sampleIPv4Response() throws {
        let response = try #require(decode(Self.ipv4Response))
        #expect(response.kind == .response && response.fingerprint)
        #expect(xorAddress(Self.ipv4Response, valueAt: 40..<48) == (try SocketAddress("192.0.2.1", port: 32853)))
        #expect(shortTermIntegrityHolds(Self.ipv4Response, at: 48))
    }

    @Test func sampleIPv6Response() throws {
        let response = try #require(decode(Self.ipv6Response))
        #expect(response.kind == .response && response.fingerprint)
        #expect(xorAddress(Self.ipv6Response, valueAt: 40..<60) == (try SocketAddress("2001:db8:1234:5678:11:2233:4455:6677", port: 32853)))
        #expect(shortTermIntegrityHolds(Self.ipv6Response, at: 60))
    }

    @Test func sampleRequestWithLongTermCredentials() throws {
        let request = try #require(decode(Self.longTermRequest))
        #expect(request.username == "マトリックス")
        #expect(request.realm == "example.org")
        #expect(request.nonce == "f//499k954d6OL34oL9FSTvy64sA")
        #expect(!request.fingerprint)
        let verified = Self.longTermRequest.withUnsafeBytes {
            codec.verifyIntegrity($0, username: "マトリックス", realm: "example.org", password: "TheMatrIX")
        }
        #expect(verified, "MD5(username:realm:password) key, HMAC-SHA1")
        let wrongPassword = Self.longTermRequest.withUnsafeBytes {
            codec.verifyIntegrity($0, username: "マトリックス", realm: "example.org", password: "TheMatrix")
        }
        #expect(!wrongPassword)
    }

    /// One changed byte anywhere after the header: the FINGERPRINT or the MESSAGE-INTEGRITY catches it,
    /// except in the FINGERPRINT attribute's type: changed, it is an unknown optional attribute after
    /// MESSAGE-INTEGRITY, which RFC 8489 section 14.5 says to ignore (the integrity still holds).
    @Test(arguments: [("request", 0), ("ipv4", 1), ("ipv6", 2), ("long-term", 3)])
    func anyChangedByteIsCaught(name: String, index: Int) {
        let original = [Self.request, Self.ipv4Response, Self.ipv6Response, Self.longTermRequest][index]
        let fingerprintType: Set<Int> = index == 3 ? [] : [original.count - 8, original.count - 7]
        var uncaught: Set<Int> = []
        for position in 20..<original.count {
            var changed = original
            changed[position] ^= 0x01
            let decoded = decode(changed)
            let integrity: Bool
            if index == 3 {
                integrity = changed.withUnsafeBytes {
                    codec.verifyIntegrity($0, username: "マトリックス", realm: "example.org", password: "TheMatrIX")
                }
            } else {
                integrity = shortTermIntegrityHolds(changed, at: [76, 48, 60][index])
            }
            if decoded != nil && integrity { uncaught.insert(position) }
        }
        #expect(uncaught == fingerprintType, "\(name): changed bytes not caught at \(uncaught.sorted())")
    }
}
