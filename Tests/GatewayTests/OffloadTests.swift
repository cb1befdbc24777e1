import Addresses
import Testing
import Tunnel

/// The TUN offloads' user-space half: a TCP super-packet as the kernel hands it (one header, a
/// partial checksum, a segment size) comes out as the segments the kernel's TSO would have made, each
/// with valid checksums; segments of one flow written one after another are joined into one
/// super-packet that cuts back into the same segments; anything else passes as it is.
@Suite struct OffloadTests {
    static let payload = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    /// A TCP packet (ACK, `flags` added) with a timestamps option, its checksum valid.
    static func tcp(v6: Bool, sequence: UInt32, payload: [UInt8], flags: UInt8 = 0x10) -> [UInt8] {
        let options: [UInt8] = [1, 1, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78]
        var segment = IPPacket.be16(40000) + IPPacket.be16(5201) + IPPacket.be32(sequence) + IPPacket.be32(0xA0B0_C0D0) + [UInt8((20 + options.count) / 4) << 4, flags]
            + IPPacket.be16(502) + [0, 0, 0, 0] + options + payload
        var header: [UInt8]
        if v6 {
            header = [0x60, 0, 0, 0] + IPPacket.be16(UInt16(segment.count)) + [6, 64] + [0xFD, 0, 0x67, 0x68] + [UInt8](repeating: 0, count: 11) + [2]
                + [0xFD, 0, 0x64] + [UInt8](repeating: 0, count: 12) + [7]
        } else {
            header = [0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 1, 2, 100, 64, 0, 7]
            header.replaceSubrange(2..<4, with: IPPacket.be16(UInt16(20 + segment.count)))
            let sum = ~fold(header)
            header.replaceSubrange(10..<12, with: IPPacket.be16(sum))
        }
        let sum = ~fold(pseudo(header, length: segment.count) + segment)
        segment.replaceSubrange(16..<18, with: IPPacket.be16(sum))
        return header + segment
    }

    /// What the kernel gives a reader for `packet` cut at `size`: the header, and the TCP checksum
    /// left as the pseudo-header's sum.
    static func superPacket(_ packet: [UInt8], size: Int) -> [UInt8] {
        var packet = packet
        let ip = packet[0] >> 4 == 4 ? 20 : 40
        let partial = fold(pseudo(Array(packet[..<ip]), length: packet.count - ip))
        packet.replaceSubrange((ip + 16)..<(ip + 18), with: IPPacket.be16(partial))
        var header = VirtioNetHeader()
        header.flags = VirtioNetHeader.needsChecksum
        header.gsoType = ip == 20 ? VirtioNetHeader.gsoTCPv4 : VirtioNetHeader.gsoTCPv6
        header.headerLength = UInt16(ip + 32)
        header.gsoSize = UInt16(size)
        header.checksumStart = UInt16(ip)
        header.checksumOffset = 16
        var framed = [UInt8](repeating: 0, count: VirtioNetHeader.size)
        framed.withUnsafeMutableBytes { header.write(to: $0.baseAddress!) }
        return framed + packet
    }

    static func cut(_ framed: [UInt8]) -> [[UInt8]]? {
        var framed = framed
        var segments: [[UInt8]] = []
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
        defer { scratch.deallocate() }
        let done = framed.withUnsafeMutableBytes { Offload.forEachPacket(in: $0, scratch: scratch) { segments.append(Array($0)) } }
        return done ? segments : nil
    }

    @Test(arguments: [false, true]) func aSuperPacketIsCutIntoValidSegments(v6: Bool) throws {
        let whole = Self.tcp(v6: v6, sequence: 0xFFFF_F000, payload: Self.payload, flags: 0x18)  // ACK PSH, the sequence wraps
        let segments = try #require(Self.cut(Self.superPacket(whole, size: 1400)))
        #expect(segments.count == 4)
        let ip = v6 ? 40 : 20
        var joined: [UInt8] = []
        for (index, segment) in segments.enumerated() {
            #expect(Self.checksumsAreValid(segment), "segment \(index)")
            #expect(Array(segment[(ip + 4)..<(ip + 8)]) == IPPacket.be32(0xFFFF_F000 &+ UInt32(index * 1400)))
            #expect(segment[ip + 13] == (index == 3 ? 0x18 : 0x10), "PSH only on the last")
            if !v6 { #expect(Array(segment[4..<6]) == IPPacket.be16(0x1234 &+ UInt16(index)), "IPv4 identification counts up") }
            joined += segment[(ip + 32)...]
        }
        #expect(joined == Self.payload)
        #expect(segments.map(\.count) == [1400, 1400, 1400, 800].map { $0 + ip + 32 })
    }

    @Test func aPacketWhoseChecksumWasLeftGetsItFinished() throws {
        let packet = Self.tcp(v6: false, sequence: 1, payload: Array(Self.payload.prefix(300)))
        var framed = Self.superPacket(packet, size: 1400)
        framed[VirtioNetHeader.size - 9] = VirtioNetHeader.gsoNone  // gso_type: one packet, checksum left to us
        let out = try #require(Self.cut(framed))
        #expect(out.count == 1 && Self.checksumsAreValid(out[0]) && out[0] == packet)
    }

    @Test(arguments: [false, true]) func segmentsOfOneFlowAreJoinedAndCutBackTheSame(v6: Bool) throws {
        let segments = try #require(Self.cut(Self.superPacket(Self.tcp(v6: v6, sequence: 77, payload: Self.payload, flags: 0x18), size: 1400)))
        var written: [[UInt8]] = []
        let writer = TUNWriter(offload: true) { written.append(Array($0)); return true }
        let room = VirtioNetHeader.size
        // Each packet with room in front of it, as it lies in a received datagram.
        for segment in segments {
            var buffer = [UInt8](repeating: 0xEE, count: room) + segment
            buffer.withUnsafeMutableBytes { writer.write(UnsafeRawBufferPointer(rebasing: $0[room...])) }
        }
        writer.flush()
        #expect(written.count == 1, "one super-packet")
        let header = written[0].withUnsafeBytes { VirtioNetHeader($0) }
        #expect(header.gsoType == (v6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4) && header.gsoSize == 1400)
        #expect(try #require(Self.cut(written[0])) == segments, "cut again, the same segments")

        // Another flow, a gap in the sequence, a SYN: each breaks the run and passes as it is.
        written = []
        let other = Self.tcp(v6: v6, sequence: 5, payload: [1, 2, 3])
        let gap = Self.tcp(v6: v6, sequence: 77 + 5000 + 10, payload: [4, 5, 6])
        let syn = Self.tcp(v6: v6, sequence: 9, payload: [], flags: 0x02)
        for packet in [segments[0], other, gap, syn] {
            var buffer = [UInt8](repeating: 0, count: room) + packet
            buffer.withUnsafeMutableBytes { writer.write(UnsafeRawBufferPointer(rebasing: $0[room...])) }
        }
        writer.flush()
        #expect(written.map { Array($0.dropFirst(room)) } == [segments[0], other, gap, syn])
        #expect(written.allSatisfy { $0.prefix(room).allSatisfy { $0 == 0 } }, "plain headers")
    }

    @Test(arguments: [false, true]) func datagramsOfOneFlowAreJoinedWhereTheDeviceTakesThemAndCutBackTheSame(v6: Bool) throws {
        let room = VirtioNetHeader.size
        let sizes = [1300, 1300, 1300, 700]
        let datagrams = sizes.enumerated().map { index, size in
            Self.udp(v6: v6, identification: UInt16(index), payload: (0..<size).map { UInt8(truncatingIfNeeded: $0 &+ index) })
        }
        for udpOffload in [true, false] {
            var written: [[UInt8]] = []
            let writer = TUNWriter(offload: true, udpOffload: udpOffload) { written.append(Array($0)); return true }
            for datagram in datagrams {
                var buffer = [UInt8](repeating: 0xEE, count: room) + datagram
                buffer.withUnsafeMutableBytes { writer.write(UnsafeRawBufferPointer(rebasing: $0[room...])) }
            }
            writer.flush()
            if udpOffload {
                #expect(written.count == 1, "one super-packet")
                let header = written[0].withUnsafeBytes { VirtioNetHeader($0) }
                #expect(header.gsoType == VirtioNetHeader.gsoUDP && header.gsoSize == 1300 && header.checksumOffset == 6)
                let cut = try #require(Self.cut(written[0]))
                #expect(cut.count == 4 && cut.allSatisfy(Self.checksumsAreValid))
                let ip = v6 ? 40 : 20
                #expect(cut.map { Array($0[(ip + 8)...]) } == datagrams.map { Array($0[(ip + 8)...]) }, "the same payloads")
            } else {
                #expect(written.map { Array($0.dropFirst(room)) } == datagrams, "without USO each goes as it is")
            }
        }
    }

    @Test func packetsWithWrongChecksumsAreNeverJoined() {
        let room = VirtioNetHeader.size
        var first = Self.tcp(v6: false, sequence: 100, payload: Array(repeating: 1, count: 1000))
        let second = Self.tcp(v6: false, sequence: 1100, payload: Array(repeating: 2, count: 1000))
        first[40] ^= 0xFF  // the payload changed under its checksum
        var noChecksum = Self.udp(v6: false, identification: 1, payload: [1, 2, 3])
        noChecksum[26] = 0
        noChecksum[27] = 0  // IPv4 UDP without a checksum
        var written: [[UInt8]] = []
        let writer = TUNWriter(offload: true, udpOffload: true) { written.append(Array($0)); return true }
        for packet in [first, second, noChecksum, noChecksum] {
            var buffer = [UInt8](repeating: 0, count: room) + packet
            buffer.withUnsafeMutableBytes { writer.write(UnsafeRawBufferPointer(rebasing: $0[room...])) }
        }
        writer.flush()
        #expect(written.map { Array($0.dropFirst(room)) } == [first, second, noChecksum, noChecksum], "each as it is, the kernel judges them")
    }

    @Test func theFastChecksumAgreesWithTheTextbookOne() {
        var generator = SystemRandomNumberGenerator()
        for length in Array(0...40) + [1279, 1280, 1500, 9000] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let fast = bytes.withUnsafeBytes { InternetChecksum.fold(InternetChecksum.sum($0, initial: 0x1_2345)) }
            #expect(fast == InternetChecksum.fold(UInt64(Self.fold(bytes)) + 0x1_2345), "length \(length)")
        }
    }

    // MARK: Helpers

    /// A UDP datagram from 100.64.0.7:40000 to a resource's port 7000, its checksum valid.
    static func udp(v6: Bool, identification: UInt16, payload: [UInt8]) -> [UInt8] {
        var datagram = IPPacket.be16(40000) + IPPacket.be16(7000) + IPPacket.be16(UInt16(8 + payload.count)) + [0, 0] + payload
        var header: [UInt8]
        if v6 {
            header = [0x60, 0, 0, 0] + IPPacket.be16(UInt16(datagram.count)) + [17, 64] + [0xFD, 0, 0x64] + [UInt8](repeating: 0, count: 12) + [7]
                + [0xFD, 0, 0x67, 0x68] + [UInt8](repeating: 0, count: 11) + [2]
        } else {
            header = [0x45, 0] + IPPacket.be16(UInt16(20 + datagram.count)) + IPPacket.be16(identification) + [0x40, 0, 64, 17, 0, 0, 100, 64, 0, 7, 198, 18, 1, 2]
            header.replaceSubrange(10..<12, with: IPPacket.be16(~fold(header)))
        }
        let addresses = v6 ? Array(header[8..<40]) : Array(header[12..<20])
        datagram.replaceSubrange(6..<8, with: IPPacket.be16(~fold(addresses + [0, 17] + IPPacket.be16(UInt16(datagram.count)) + datagram)))
        return header + datagram
    }

    static func checksumsAreValid(_ packet: [UInt8]) -> Bool {
        let ip = packet[0] >> 4 == 4 ? 20 : 40
        let ipValid = ip == 40 || fold(Array(packet[..<20])) == 0xFFFF
        return ipValid && fold(pseudo(Array(packet[..<ip]), length: packet.count - ip) + Array(packet[ip...])) == 0xFFFF
    }

    static func pseudo(_ header: [UInt8], length: Int) -> [UInt8] {
        let addresses = header[0] >> 4 == 4 ? Array(header[12..<20]) : Array(header[8..<40])
        let protocolNumber = header[0] >> 4 == 4 ? header[9] : header[6]
        return addresses + [0, protocolNumber] + IPPacket.be16(UInt16(length))
    }

    static func fold(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        for index in stride(from: 0, to: bytes.count, by: 2) {
            sum += UInt32(bytes[index]) << 8 | (index + 1 < bytes.count ? UInt32(bytes[index + 1]) : 0)
        }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return UInt16(sum)
    }
}
