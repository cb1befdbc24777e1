import Addresses
import Testing

@Suite struct AddressRangeTests {
    @Test(arguments: [
        ("10.0.0.0/8", "10.255.1.2", true),
        ("10.0.0.0/8", "11.0.0.1", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("192.0.2.7", "192.0.2.7", true),
        ("192.0.2.7", "192.0.2.8", false),
        ("fd00::/8", "fd12:3456::1", true),
        ("fd00::/8", "fe80::1", false),
        ("2001:db8::/96", "2001:db8::ffff:1", true),
        ("2001:db8::/96", "2001:db8:0:0:1::1", false),
        ("::/0", "::1", true),
        ("10.0.0.0/8", "::ffff:10.0.0.1", false),
    ])
    func containment(range: String, address: String, expected: Bool) throws {
        let parsed = try AddressRange(range)
        #expect(parsed.contains(try SocketAddress(address, port: 0).ip) == expected)
    }

    @Test(arguments: [
        ("10.0.0.0/33", AddressRangeError.prefixLength("10.0.0.0/33", maximum: 32)),
        ("fd00::/129", .prefixLength("fd00::/129", maximum: 128)),
        ("10.0.0.1/8", .hostBitsSet("10.0.0.1/8")),
        ("10.0.0.0/x", .prefixLength("10.0.0.0/x", maximum: 32)),
        ("example.com/8", .malformed("example.com/8")),
        ("", .malformed("")),
        ("1.2.3.4/8/9", .malformed("1.2.3.4/8/9")),
    ])
    func badRangesSayWhatIsWrong(text: String, error: AddressRangeError) {
        #expect(throws: error) { _ = try AddressRange(text) }
    }

    @Test func printsInCanonicalForm() throws {
        #expect(try AddressRange("fd00:0::/8").description == "fd00::/8")
        #expect(try AddressRange("192.0.2.7").description == "192.0.2.7/32")
    }

    @Test(arguments: [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::ffff:169.254.169.254", "169.254.169.254"),
        ("::127.0.0.1", "127.0.0.1"),
    ])
    func embeddedIPv4IsFound(text: String, inner: String) throws {
        #expect(try SocketAddress(text, port: 0).ip.embeddedIPv4 == SocketAddress(inner, port: 0).ip)
    }

    @Test(arguments: ["::1", "::", "2001:db8::1", "192.0.2.1"])
    func noEmbeddedIPv4Elsewhere(text: String) throws {
        #expect(try SocketAddress(text, port: 0).ip.embeddedIPv4 == nil)
    }
}
