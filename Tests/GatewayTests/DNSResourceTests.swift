import Addresses
import ControlProtocol
import DNS
import Foundation
import Gateway
import Testing
import Tunnel

/// The pure parts of DNS resources (issue #16): DNS messages, the proxy NAT's rewrites, the checks of
/// a `create_flow`'s name and proxy addresses.
@Suite struct DNSResourceTests {
    static let client = SocketAddress.IP.v4(0x6440_0002)  // 100.64.0.2
    static let proxy = SocketAddress.IP.v4(0x6460_0005)  // 100.96.0.5
    static let real = SocketAddress.IP.v4(0xC612_0111)  // 198.18.1.17
    static let client6 = try! SocketAddress("fd00:6761:7465::2", port: 0).ip
    static let proxy6 = try! SocketAddress("fd00:6761:7465:8000::5", port: 0).ip
    static let real6 = try! SocketAddress("fd00:6768:0:1::17", port: 0).ip

    /// A response to query `id` for `name`: `db.corp.test` is a CNAME of `host.corp.test` (names
    /// compressed), which has the given addresses.
    static func response(id: UInt16, type: DNSRecordType, flags: UInt16 = 0x8180, addresses: [[UInt8]]) throws -> [UInt8] {
        var message = try DNSMessage.query(id: id, name: "db.corp.test", type: type)
        message[2] = UInt8(flags >> 8)
        message[3] = UInt8(flags & 0xFF)
        message[7] = UInt8(1 + addresses.count)  // answers
        // db.corp.test (pointer to the question's name at 12) CNAME host + pointer to "corp.test" at 15
        message += [0xC0, 12, 0, 5, 0, 1, 0, 0, 0x0E, 0x10, 0, 7, 4] + Array("host".utf8) + [0xC0, 15]
        let hostOffset = message.count - 7
        for address in addresses {
            message += [0xC0, UInt8(hostOffset), 0, UInt8(type.rawValue), 0, 1, 0, 0, 0, 60, 0, UInt8(address.count)] + address
        }
        return message
    }

    @Test func aQueryIsWhatTheRFCSays() throws {
        let query = try DNSMessage.query(id: 0xBEEF, name: "Db.Corp.Test.", type: .aaaa)
        #expect(query == [0xBE, 0xEF, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2] + Array("Db".utf8) + [4] + Array("Corp".utf8) + [4] + Array("Test".utf8)
                + [0, 0, 28, 0, 1])
        #expect(throws: DNSError.badName("a..b")) { try DNSMessage.query(id: 1, name: "a..b", type: .a) }
        #expect(throws: DNSError.self) { try DNSMessage.query(id: 1, name: String(repeating: "x", count: 64) + ".test", type: .a) }
    }

    @Test func addressesAreFoundThroughCompressedNamesAndACNAME() throws {
        let v4 = try Self.response(id: 7, type: .a, addresses: [[198, 18, 1, 17], [198, 18, 1, 18]])
        let found = try DNSMessage.addresses(in: v4, id: 7, name: "DB.corp.test", type: .a)
        #expect(found == DNSAddresses(addresses: [Self.real, .v4(0xC612_0112)], ttl: 60), "the smaller TTL of the chain")
        let v6 = try Self.response(id: 8, type: .aaaa, addresses: [IPPacket.bytes(Self.real6)])
        #expect(try DNSMessage.addresses(in: v6, id: 8, name: "db.corp.test", type: .aaaa).addresses == [Self.real6])
        let none = try Self.response(id: 9, type: .a, flags: 0x8183, addresses: [])
        #expect(try DNSMessage.addresses(in: none, id: 9, name: "db.corp.test", type: .a) == DNSAddresses(addresses: [], ttl: 0), "NXDOMAIN: no address")
    }

    @Test func badAnswersAreRefusedNotTrusted() throws {
        let good = try Self.response(id: 7, type: .a, addresses: [[198, 18, 1, 17]])
        #expect(throws: DNSError.malformed("another query's ID")) { try DNSMessage.addresses(in: good, id: 8, name: "db.corp.test", type: .a) }
        #expect(throws: DNSError.malformed("the answer is to another question")) {
            try DNSMessage.addresses(in: good, id: 7, name: "web.corp.test", type: .a)
        }
        #expect(throws: DNSError.serverError(2)) {
            try DNSMessage.addresses(in: try Self.response(id: 7, type: .a, flags: 0x8182, addresses: []), id: 7, name: "db.corp.test", type: .a)
        }
        #expect(throws: DNSError.truncated) {
            try DNSMessage.addresses(in: try Self.response(id: 7, type: .a, flags: 0x8380, addresses: []), id: 7, name: "db.corp.test", type: .a)
        }
        // Every prefix of a good answer is refused (never read past the end), and a pointer to itself loops nowhere.
        for length in 0..<good.count {
            #expect(throws: DNSError.self) { try DNSMessage.addresses(in: Array(good.prefix(length)), id: 7, name: "db.corp.test", type: .a) }
        }
        var looping = good
        looping[12] = 0xC0
        looping[13] = 12
        #expect(throws: DNSError.self) { try DNSMessage.addresses(in: looping, id: 7, name: "db.corp.test", type: .a) }
        // Random bytes never crash it.
        for _ in 0..<2000 {
            var noise = good
            for _ in 0..<4 { noise[Int.random(in: 0..<noise.count)] = UInt8.random(in: 0...255) }
            _ = try? DNSMessage.addresses(in: noise, id: 7, name: "db.corp.test", type: .a)
        }
    }

    @Test func resolvConfNameServersAreRead() throws {
        let servers = NameResolver.servers(inResolvConf: """
            # managed
            search corp.test
            nameserver 192.0.2.53
            nameserver\t2001:db8::53
            nameserver fe80::1%eth0
            options ndots:2
            """)
        #expect(servers == [try SocketAddress("192.0.2.53", port: 53), try SocketAddress("2001:db8::53", port: 53)])
    }

    /// A server that answers A but refuses AAAA (dnsmasq with only an A record and no upstream does)
    /// still resolves the name to its IPv4 addresses; both families failing is a failure.
    @Test func oneFamilyFailingLeavesTheOther() throws {
        let v4 = DNSAddresses(addresses: [try SocketAddress("192.0.2.12", port: 0).ip], ttl: 60)
        let refused = NameResolver.Failure.refused("app.corp.test", .serverError(5))
        let (a, aaaa) = try NameResolver.either(.success(v4), .failure(refused))
        #expect(a == v4 && aaaa.addresses.isEmpty)
        #expect(throws: refused) { try NameResolver.either(.failure(refused), .failure(.noAnswer("app.corp.test"))) }
    }

    /// After the rewrite, a packet is byte for byte the one made to the other address (every checksum
    /// updated), for TCP, UDP and ICMP echo, IPv4 and IPv6.
    @Test(arguments: [UInt8(6), 17, 1]) func theRewriteIsThePacketMadeToTheOtherAddress(protocolNumber: UInt8) {
        for (client, proxy, real) in [(Self.client, Self.proxy, Self.real), (Self.client6, Self.proxy6, Self.real6)] {
            let number: UInt8 = protocolNumber == 1 && !IPPacket.isV4(client) ? 58 : protocolNumber
            var out = IPPacket.make(from: client, to: proxy, protocolNumber: number, port: 7000)
            out.withUnsafeMutableBytes { #expect(AddressTranslation.rewrite($0, source: false, to: real)) }
            #expect(out == IPPacket.make(from: client, to: real, protocolNumber: number, port: 7000), "outbound \(number)")
            var back = IPPacket.make(from: real, to: client, protocolNumber: number, port: 7000)
            back.withUnsafeMutableBytes { #expect(AddressTranslation.rewrite($0, source: true, to: proxy)) }
            #expect(back == IPPacket.make(from: proxy, to: client, protocolNumber: number, port: 7000), "inbound \(number)")
            var other = IPPacket.make(from: client, to: proxy, protocolNumber: number, port: 7000)
            other.withUnsafeMutableBytes { #expect(!AddressTranslation.rewrite($0, source: false, to: IPPacket.isV4(real) ? Self.real6 : Self.real)) }
            #expect(other == IPPacket.make(from: client, to: proxy, protocolNumber: number, port: 7000), "another family: untouched")
        }
        #expect(AddressTranslation.isProxyAddress(Self.proxy) && AddressTranslation.isProxyAddress(Self.proxy6))
        #expect(!AddressTranslation.isProxyAddress(Self.client) && !AddressTranslation.isProxyAddress(Self.real6))
    }

    /// An ICMP error from the real address about a translated packet becomes the error the proxy
    /// address would have sent about the packet as the client sent it.
    @Test func anICMPErrorAboutATranslatedPacketIsTranslatedInside() throws {
        for (client, proxy, real) in [(Self.client, Self.proxy, Self.real), (Self.client6, Self.proxy6, Self.real6)] {
            let sent = IPPacket.make(from: client, to: real, protocolNumber: 17, port: 7001)
            var error = try #require(sent.withUnsafeBytes { AdministrativelyProhibited.reply(to: $0) })
            error.withUnsafeMutableBytes { AddressTranslation.translateError($0, real: real, proxy: proxy) }
            let expected = IPPacket.make(from: client, to: proxy, protocolNumber: 17, port: 7001).withUnsafeBytes { AdministrativelyProhibited.reply(to: $0) }
            #expect(error == expected)
        }
    }

    @Test func aCreateFlowsNameAndProxyAddressesAreChecked() {
        func problem(_ name: String, _ addresses: [String], pattern: String = "*.corp.test") -> String? {
            DNSProxy(name: name, addresses: addresses).problem(forPattern: pattern)
        }
        #expect(problem("db.corp.test", ["100.96.0.5", "fd00:6761:7465:8000::5"]) == nil)
        #expect(problem("corp.test", ["100.96.0.5"]) == nil, "* also matches the name itself")
        #expect(problem("a.db.corp.test", ["100.96.0.5"])?.contains("does not match") == true)
        #expect(problem("*.corp.test", ["100.96.0.5"])?.contains("is not a DNS name") == true)
        #expect(problem("db.corp.test", [])?.contains("1 to 8") == true)
        #expect(problem("db.corp.test", (1...9).map { "100.96.0.\($0)" })?.contains("1 to 8") == true)
        #expect(problem("db.corp.test", ["100.64.0.5"])?.contains("not inside the DNS proxy ranges") == true, "a tunnel address is no proxy")
        #expect(problem("db.corp.test", ["198.18.1.17"])?.contains("not inside") == true)
        #expect(problem("db.corp.test", ["100.96.0.5", "100.96.0.5"])?.contains("twice") == true)
        #expect(problem("db.corp.test", ["not-an-address"])?.contains("not inside") == true)
    }

    @Test func translationsIdleForTheSpecsTimes() {
        #expect(TunnelEngine.natIdleLimit(protocolNumber: 6) == 7200)
        #expect(TunnelEngine.natIdleLimit(protocolNumber: 17) == 120)
        #expect(TunnelEngine.natIdleLimit(protocolNumber: 1) == 120 && TunnelEngine.natIdleLimit(protocolNumber: 58) == 120)
    }
}
