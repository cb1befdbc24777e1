import Addresses
import Policy
import Testing

@Suite struct ResourceAddressTests {
    @Test(arguments: [
        ("10.0.0.0/24", ResourceAddress.Kind.cidr, "10.0.0.0/24"),
        ("192.168.0.0/16", .cidr, "192.168.0.0/16"),
        ("fd12:3456::/64", .cidr, "fd12:3456::/64"),
        ("10.1.2.3", .ip, "10.1.2.3"),
        ("2001:db8::7", .ip, "2001:db8::7"),
        ("db.corp.example", .dns, "db.corp.example"),
        ("*.Corp.Example.", .dns, "*.corp.example"),
        ("**.corp.example", .dns, "**.corp.example"),
        ("db?.corp.example", .dns, "db?.corp.example"),
    ])
    func validAddressesParse(text: String, kind: ResourceAddress.Kind, canonical: String) throws {
        let address = try ResourceAddress.parse(text, kind: kind)
        #expect(address.kind == kind)
        #expect(address.description == canonical)
    }

    @Test(arguments: [
        ("10.0.0.0/33", ResourceAddress.Kind.cidr, "prefix length must be 0-32"),
        ("fd00::/129", .cidr, "prefix length must be 0-128"),
        ("10.0.0.1/24", .cidr, "bits after the prefix must be zero"),
        ("10.0.0.0", .cidr, "needs a prefix length"),
        ("0.0.0.0/0", .cidr, "a default route cannot be a resource"),
        ("::/0", .cidr, "a default route cannot be a resource"),
        ("127.0.0.0/8", .cidr, "contains loopback"),
        ("0.0.0.0/1", .cidr, "contains loopback"),
        ("::/64", .cidr, "contains loopback"),
        ("100.64.0.0/10", .cidr, "overlaps the tunnel range 100.64.0.0/11"),
        ("100.100.0.0/16", .cidr, "overlaps the tunnel range 100.96.0.0/11"),
        ("fd00:6761:7465:1::/64", .cidr, "overlaps the tunnel range fd00:6761:7465::/48"),
        ("10.0.0.0/24", .ip, "not an IPv4 or IPv6 address"),
        ("db.corp.example", .ip, "not an IPv4 or IPv6 address"),
        ("127.0.0.1", .ip, "a loopback address is not a resource"),
        ("::1", .ip, "a loopback address is not a resource"),
        ("corp.*", .dns, "the top-level label may not be a wildcard"),
        ("db.corp.ex?", .dns, "the top-level label may not be a wildcard"),
        ("localhost", .dns, "localhost is not a resource"),
        ("10.0.0.1", .dns, "an IP address is not a DNS name"),
        ("db..corp.example", .dns, "a label is empty"),
        ("db corp.example", .dns, "has a character a DNS name cannot hold"),
        ("a**.corp.example", .dns, "\"**\" must be a whole label"),
        ("", .dns, "the name is empty"),
    ])
    func invalidAddressesSayWhatIsWrong(text: String, kind: ResourceAddress.Kind, reason: String) {
        #expect {
            _ = try ResourceAddress.parse(text, kind: kind)
        } throws: { error in
            guard case let ResourceAddressError.invalid(quoted, message) = error else { return false }
            return quoted == text && message.contains(reason)
        }
    }

    @Test func errorsReadLikeTheSpec() {
        let error = ResourceAddressError.invalid("10.0.0.0/33", "prefix length must be 0-32")
        #expect(error.description == #"resource address "10.0.0.0/33": prefix length must be 0-32"#)
    }

    @Test func anAccountWithOtherTunnelRangesAllowsTheDefaultOnes() throws {
        let custom = [try AddressRange("10.200.0.0/16")]
        _ = try ResourceAddress.parse("100.64.0.0/10", kind: .cidr, reserved: custom)
        #expect(throws: ResourceAddressError.self) { _ = try ResourceAddress.parse("10.200.1.0/24", kind: .cidr, reserved: custom) }
    }
}

@Suite struct DNSPatternTests {
    @Test(arguments: [
        ("db.corp.example", "db.corp.example", true),
        ("db.corp.example", "DB.Corp.Example.", true),
        ("db.corp.example", "x.db.corp.example", false),
        ("*.corp.example", "db.corp.example", true),
        ("*.corp.example", "corp.example", true),
        ("*.corp.example", "a.b.corp.example", false),
        ("db-*.corp.example", "db-eu.corp.example", true),
        ("db-*.corp.example", "web.corp.example", false),
        ("db?.corp.example", "db1.corp.example", true),
        ("db?.corp.example", "db.corp.example", false),
        ("db?.corp.example", "db12.corp.example", false),
        ("**.corp.example", "corp.example", true),
        ("**.corp.example", "a.b.c.corp.example", true),
        ("**.corp.example", "corp.example.evil", false),
        ("**.corp.example", "notcorp.example", false),
    ])
    func matching(pattern: String, name: String, expected: Bool) throws {
        #expect(try DNSPattern(pattern).matches(name) == expected)
    }

    @Test func theMostSpecificPatternWins() throws {
        let patterns = try ["**.corp.example", "*.corp.example", "db?.corp.example", "db1.corp.example", "**.example"].map(DNSPattern.init)
        #expect(DNSPattern.mostSpecific(patterns, matching: "db1.corp.example")?.text == "db1.corp.example")
        #expect(DNSPattern.mostSpecific(patterns, matching: "db2.corp.example")?.text == "db?.corp.example")
        #expect(DNSPattern.mostSpecific(patterns, matching: "web.corp.example")?.text == "*.corp.example")
        #expect(DNSPattern.mostSpecific(patterns, matching: "a.b.corp.example")?.text == "**.corp.example", "more labels win among equals")
        #expect(DNSPattern.mostSpecific(patterns, matching: "other.example")?.text == "**.example")
        #expect(DNSPattern.mostSpecific(patterns, matching: "example.org") == nil)
    }
}
