import Addresses
import Client
import ControlProtocol
import ICE
import Identifiers
import Testing
import Tunnel

/// What the client routes into its tunnel, and how it tells datagrams apart.
@Suite struct ClientRoutesTests {
    func ip(_ text: String) throws -> SocketAddress.IP { try SocketAddress(text, port: 0).ip }

    @Test func aRangeLessAnAddressIsCoveredByTheFewestPrefixes() throws {
        let range = try AddressRange("10.0.0.0/24")
        let rest = range.excluding([try ip("10.0.0.77")])
        #expect(rest.count == 8, "one prefix per bit below /24: \(rest)")
        #expect(!rest.contains { $0.contains(try! ip("10.0.0.77")) })
        for host in 0...255 where host != 77 {
            let address = try ip("10.0.0.\(host)")
            #expect(rest.filter { $0.contains(address) }.count == 1, "10.0.0.\(host) is covered exactly once")
        }
        #expect(range.excluding([try ip("10.0.1.1")]) == [range], "an address outside leaves the range whole")
        #expect(try AddressRange("10.0.0.5/32").excluding([try ip("10.0.0.5")]).isEmpty)
        #expect(range.excluding([try ip("fd00::1")]) == [range], "another family leaves it whole")
        let v6 = try AddressRange("fd00:6768::/64").excluding([try ip("fd00:6768::1"), try ip("fd00:6768::ffff:1")])
        #expect(!v6.contains { $0.contains(try! ip("fd00:6768::1")) || $0.contains(try! ip("fd00:6768::ffff:1")) })
        #expect(v6.contains { $0.contains(try! ip("fd00:6768::2")) } && v6.contains { $0.contains(try! ip("fd00:6768:0:0:8000::")) })
        #expect(v6.count <= 2 * 64)
    }

    @Test func resourcesAreRoutedLessThePortalRelaysAndGateways() throws {
        let covering = ClientResource(id: ResourceID(), name: "everything", type: .cidr, address: "198.18.0.0/16", addressDescription: nil, filters: [])
        let host = ClientResource(id: ResourceID(), name: "web", type: .ip, address: "198.18.1.10", addressDescription: nil, filters: ["tcp:80"])
        let name = ClientResource(id: ResourceID(), name: "wiki", type: .dns, address: "wiki.corp.test", addressDescription: nil, filters: [])
        let routes = ClientRoutes.compute(resources: [covering, host, name], excluding: [try ip("198.18.2.2"), try ip("192.0.2.1")])
        #expect(routes.lookup.count == 2, "a DNS resource has no range of its own")
        #expect(routes.kernel.contains(try AddressRange("198.18.1.10/32")))
        #expect(!routes.kernel.contains { $0.contains(try! ip("198.18.2.2")) }, "the gateway's address stays out of the tunnel")
        #expect(routes.kernel.contains { $0.contains(try! ip("198.18.2.3")) })
        #expect(!routes.kernel.contains { $0.contains(try! ip("192.0.2.1")) })
    }

    @Test func datagramsAreToldApartByMoreThanTheirFirstByte() {
        // A Binding request: type 0x0001, the magic cookie at bytes 4-7.
        let binding: [UInt8] = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42] + [UInt8](repeating: 7, count: 12)
        #expect(DatagramKind(binding) == .stun)
        // A WireGuard initiation also starts with 0x01, then three zero bytes.
        var initiation = [UInt8](repeating: 0, count: 148)
        initiation[0] = 1
        #expect(DatagramKind(initiation) == .wireGuard)
        #expect(DatagramKind([0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]) == .channelData)
        #expect(DatagramKind([0x04, 0x00, 0x00, 0x00] + [UInt8](repeating: 0, count: 28)) == .wireGuard)
        #expect(DatagramKind([0x05, 0x00, 0x00, 0x00, 9]) == .unknown)
        #expect(DatagramKind([0x01, 0x00, 0x01, 0x00]) == .unknown, "type 1 without three zero bytes is not WireGuard")
        #expect(DatagramKind([0x80, 0x01]) == .unknown)
    }

    @Test func unreachableRepliesComeFromTheDestinationWithTheRightCode() {
        // A UDP packet 100.64.0.2:40000 -> 198.18.1.10:7000.
        let packet: [UInt8] = [0x45, 0, 0, 29, 0, 0, 0, 0, 64, 17, 0, 0, 100, 64, 0, 2, 198, 18, 1, 10, 0x9C, 0x40, 0x1B, 0x58, 0, 9, 0, 0, 0x61]
        for (reason, code) in [(ICMPUnreachable.Reason.prohibited, UInt8(13)), (.unreachable, 1)] {
            let reply = packet.withUnsafeBytes { ICMPUnreachable.reply(to: $0, reason: reason) } ?? []
            let header = reply.withUnsafeBytes { PacketHeader($0) }
            #expect(header?.source == .v4(0xC612_010A) && header?.destination == .v4(0x6440_0002))
            #expect(header?.icmp?.type == 3 && header?.icmp?.code == code)
            #expect(reply.withUnsafeBytes(AdministrativelyProhibited.matches) == (reason == .prohibited))
        }
    }
}
