import Addresses

/// IPv4 and IPv6 packets as a client's tunnel would carry them (layer 3, valid checksums), for tests
/// that write them into a TUN device or run the gateway's program over them.
enum IPPacket {
    /// A packet from `source` to `destination` of `protocolNumber` (6 TCP SYN, 17 UDP, 1/58 ICMP
    /// echo request; anything else gets 8 bytes of payload), to `port` for TCP and UDP.
    static func make(from source: SocketAddress.IP, to destination: SocketAddress.IP, protocolNumber: UInt8, port: UInt16,
                     sourcePort: UInt16 = 40000, payload: [UInt8] = Array("gatehouse".utf8)) -> [UInt8] {
        var transport: [UInt8]
        switch protocolNumber {
        case 6:
            transport = be16(sourcePort) + be16(port) + [0, 0, 0, 1] + [0, 0, 0, 0] + [0x50, 0x02] + be16(64240) + [0, 0, 0, 0]
        case 17:
            transport = be16(sourcePort) + be16(port) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
        case 1, 58:
            let type: UInt8 = isV4(source) ? 8 : 128
            transport = [type, 0, 0, 0, 0x12, 0x34, 0, 1] + payload
        default:
            transport = [UInt8](repeating: 0xAB, count: 8)
        }
        let checksumOffset: Int? = switch protocolNumber {
        case 6: 16
        case 17: 6
        case 1, 58: 2
        default: nil
        }
        if let checksumOffset {
            // ICMPv4's checksum covers its message only; TCP, UDP and ICMPv6 add the pseudo-header.
            let pseudo = protocolNumber == 1 ? [] : pseudoHeader(source, destination, protocolNumber, transport.count)
            var sum = checksum(pseudo + transport)
            if sum == 0 && protocolNumber == 17 { sum = 0xFFFF }
            transport[checksumOffset] = UInt8(sum >> 8)
            transport[checksumOffset + 1] = UInt8(sum & 0xFF)
        }
        switch (source, destination) {
        case let (.v4(s), .v4(d)):
            var header: [UInt8] = [0x45, 0] + be16(UInt16(20 + transport.count)) + [0, 1, 0x40, 0, 64, protocolNumber, 0, 0] + be32(s) + be32(d)
            let sum = checksum(header)
            header[10] = UInt8(sum >> 8)
            header[11] = UInt8(sum & 0xFF)
            return header + transport
        default:
            return [0x60, 0, 0, 0] + be16(UInt16(transport.count)) + [protocolNumber, 64] + bytes(source) + bytes(destination) + transport
        }
    }

    /// `packet` behind an Ethernet header, as BPF_PROG_TEST_RUN expects for TC programs.
    static func ethernet(_ packet: [UInt8]) -> [UInt8] {
        let type: [UInt8] = packet.first.map { $0 >> 4 == 6 } == true ? [0x86, 0xDD] : [0x08, 0x00]
        return [0x02, 0, 0, 0, 0, 1] + [0x02, 0, 0, 0, 0, 2] + type + packet
    }

    static func isV4(_ ip: SocketAddress.IP) -> Bool {
        if case .v4 = ip { return true }
        return false
    }

    static func bytes(_ ip: SocketAddress.IP) -> [UInt8] {
        switch ip {
        case let .v4(value): be32(value)
        case let .v6(high, low): be32(UInt32(high >> 32)) + be32(UInt32(truncatingIfNeeded: high)) + be32(UInt32(low >> 32)) + be32(UInt32(truncatingIfNeeded: low))
        }
    }

    private static func pseudoHeader(_ source: SocketAddress.IP, _ destination: SocketAddress.IP, _ protocolNumber: UInt8, _ length: Int) -> [UInt8] {
        if isV4(source) {
            return bytes(source) + bytes(destination) + [0, protocolNumber] + be16(UInt16(length))
        }
        return bytes(source) + bytes(destination) + be32(UInt32(length)) + [0, 0, 0, protocolNumber]
    }

    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < bytes.count {
            sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
            index += 2
        }
        if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func be32(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
}
