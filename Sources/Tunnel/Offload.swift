import Glibc

/// The header a TUN device with offloads puts in front of every packet (`struct virtio_net_hdr`,
/// little-endian on this host): whether the packet is a TCP super-packet to cut into segments of
/// `gsoSize` payload bytes, and whether its checksum is left to whoever takes it.
package struct VirtioNetHeader: Equatable, Sendable {
    package static let size = 10
    /// The checksum at `checksumStart + checksumOffset` holds only the pseudo-header's sum.
    package static let needsChecksum: UInt8 = 1
    package static let gsoNone: UInt8 = 0
    package static let gsoTCPv4: UInt8 = 1
    package static let gsoTCPv6: UInt8 = 4
    /// The ECN flag that may be or-ed into the GSO type.
    package static let gsoECN: UInt8 = 0x80

    package var flags: UInt8 = 0
    package var gsoType: UInt8 = 0
    package var headerLength: UInt16 = 0
    package var gsoSize: UInt16 = 0
    package var checksumStart: UInt16 = 0
    package var checksumOffset: UInt16 = 0

    package init() {}

    package init(_ bytes: UnsafeRawBufferPointer) {
        flags = bytes[0]
        gsoType = bytes[1]
        headerLength = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        gsoSize = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        checksumStart = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        checksumOffset = UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
    }

    package func write(to bytes: UnsafeMutableRawPointer) {
        bytes.storeBytes(of: flags, as: UInt8.self)
        bytes.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        bytes.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        bytes.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        bytes.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        bytes.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
    }
}

/// The Internet checksum (RFC 1071): a one's-complement sum of big-endian 16-bit words.
package enum InternetChecksum {
    /// The sum of `bytes` added to `initial`, not yet folded (32-bit words into a 64-bit
    /// accumulator give the same folded result, faster).
    package static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt64 = 0) -> UInt64 {
        var sum = initial
        var index = 0
        let count = bytes.count
        while index + 4 <= count {
            sum &+= UInt64(UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt32.self)))
            index += 4
        }
        if index + 2 <= count {
            sum &+= UInt64(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: index, as: UInt16.self)))
            index += 2
        }
        if index < count { sum &+= UInt64(bytes[index]) << 8 }
        return sum
    }

    package static func fold(_ sum: UInt64) -> UInt16 {
        var folded = sum
        while folded > 0xFFFF { folded = (folded & 0xFFFF) + (folded >> 16) }
        return UInt16(folded)
    }

    /// The pseudo-header's sum for a TCP or UDP segment of `length` bytes in `packet` (IPv4 or IPv6).
    package static func pseudoHeader(_ packet: UnsafeRawBufferPointer, protocolNumber: UInt8, length: Int) -> UInt64 {
        let addresses = packet[0] >> 4 == 4 ? UnsafeRawBufferPointer(rebasing: packet[12..<20]) : UnsafeRawBufferPointer(rebasing: packet[8..<40])
        return sum(addresses, initial: UInt64(protocolNumber) + UInt64(length))
    }
}

/// What the TUN offloads ask of user space: a read may be a TCP super-packet to cut into segments
/// (with their own headers and checksums) or a packet whose checksum is left to finish; and TCP
/// segments of one flow that arrive together may be written as one super-packet, which the kernel
/// forwards (or cuts) as one: one trip through the stack instead of dozens.
package enum Offload {
    /// Calls `body` with each IP packet of what an offloading TUN gave (`read`: header then packet):
    /// the packet, its checksum finished if the kernel left it, or each segment of a TCP
    /// super-packet, made in `scratch`. False when it was not something it can cut (nothing passed).
    @discardableResult
    package static func forEachPacket(in read: UnsafeMutableRawBufferPointer, scratch: UnsafeMutableRawBufferPointer,
                                      _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard read.count > VirtioNetHeader.size else { return false }
        let header = VirtioNetHeader(UnsafeRawBufferPointer(read))
        let packet = UnsafeMutableRawBufferPointer(rebasing: read[VirtioNetHeader.size...])
        switch header.gsoType & ~VirtioNetHeader.gsoECN {
        case VirtioNetHeader.gsoNone:
            if header.flags & VirtioNetHeader.needsChecksum != 0 {
                let start = Int(header.checksumStart)
                let field = start + Int(header.checksumOffset)
                guard field + 2 <= packet.count else { return false }
                // The field holds the pseudo-header's sum: the sum from `start` on completes it.
                var checksum = ~InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: packet[start...])))
                if checksum == 0 && header.checksumOffset == 6 { checksum = 0xFFFF }  // UDP says "no checksum" with zero
                packet.storeBytes(of: checksum.bigEndian, toByteOffset: field, as: UInt16.self)
            }
            body(UnsafeRawBufferPointer(packet))
            return true
        case VirtioNetHeader.gsoTCPv4, VirtioNetHeader.gsoTCPv6:
            return segment(UnsafeRawBufferPointer(packet), size: Int(header.gsoSize), scratch: scratch, body)
        default:
            return false
        }
    }

    /// The IP and TCP header lengths of a TCP packet without IP options other than IPv4's, or nil.
    static func tcpHeaders(_ packet: UnsafeRawBufferPointer) -> (ip: Int, tcp: Int)? {
        guard let first = packet.first else { return nil }
        let ip: Int
        switch first >> 4 {
        case 4:
            ip = Int(first & 0x0F) * 4
            guard ip >= 20, packet.count >= ip + 20, packet[9] == 6 else { return nil }
        case 6:
            ip = 40
            guard packet.count >= 60, packet[6] == 6 else { return nil }
        default:
            return nil
        }
        let tcp = Int(packet[ip + 12] >> 4) * 4
        guard tcp >= 20, packet.count >= ip + tcp else { return nil }
        return (ip, tcp)
    }

    /// Cuts a TCP super-packet into segments of `size` payload bytes, as the kernel's TSO would.
    static func segment(_ packet: UnsafeRawBufferPointer, size: Int, scratch: UnsafeMutableRawBufferPointer,
                        _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard size > 0, let (ip, tcp) = tcpHeaders(packet) else { return false }
        let headers = ip + tcp
        guard scratch.count >= headers + size else { return false }
        let isV4 = packet[0] >> 4 == 4
        let payload = packet.count - headers
        let sequence = UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: ip + 4, as: UInt32.self))
        let identification = isV4 ? UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) : 0
        let flags = packet[ip + 13]
        var offset = 0
        var index = 0
        repeat {
            let length = min(size, payload - offset)
            let isLast = offset + length >= payload
            scratch.baseAddress!.copyMemory(from: packet.baseAddress!, byteCount: headers)
            (scratch.baseAddress! + headers).copyMemory(from: packet.baseAddress! + headers + offset, byteCount: length)
            let total = headers + length
            if isV4 {
                scratch.storeBytes(of: UInt16(total).bigEndian, toByteOffset: 2, as: UInt16.self)
                scratch.storeBytes(of: (identification &+ UInt16(truncatingIfNeeded: index)).bigEndian, toByteOffset: 4, as: UInt16.self)
                scratch.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
                let checksum = ~InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: scratch[..<ip])))
                scratch.storeBytes(of: checksum.bigEndian, toByteOffset: 10, as: UInt16.self)
            } else {
                scratch.storeBytes(of: UInt16(total - 40).bigEndian, toByteOffset: 4, as: UInt16.self)
            }
            scratch.storeBytes(of: (sequence &+ UInt32(truncatingIfNeeded: offset)).bigEndian, toByteOffset: ip + 4, as: UInt32.self)
            // FIN and PSH belong to the last segment, CWR to the first.
            var segmentFlags = flags
            if !isLast { segmentFlags &= ~0x09 }
            if index > 0 { segmentFlags &= ~0x80 }
            scratch[ip + 13] = segmentFlags
            scratch.storeBytes(of: UInt16(0), toByteOffset: ip + 16, as: UInt16.self)
            let segment = UnsafeRawBufferPointer(rebasing: scratch[..<total])
            let sum = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: segment[ip...]),
                                           initial: InternetChecksum.pseudoHeader(segment, protocolNumber: 6, length: tcp + length))
            scratch.storeBytes(of: (~InternetChecksum.fold(sum)).bigEndian, toByteOffset: ip + 16, as: UInt16.self)
            body(segment)
            offset += length
            index += 1
        } while offset < payload
        return true
    }
}

/// Writes packets out of tunnels into an offloading TUN, joining TCP segments of one flow that come
/// one after another (the next sequence number, the same acknowledgement, window and options, no
/// flag but ACK, PSH only on the last) into one super-packet, as the kernel's GRO would. Anything
/// else is written as it is, in order. Owned by one thread.
package final class TUNWriter {
    private let offload: Bool
    /// Writes one framed packet (false: refused, the device's queue was full).
    private let sink: (UnsafeRawBufferPointer) -> Bool
    /// The super-packet being joined (after room for its header), or nothing.
    private let buffer: UnsafeMutableRawBufferPointer
    private var length = 0
    private var segments = 0
    private var segmentSize = 0
    private var headers = (ip: 0, tcp: 0)
    private var nextSequence: UInt32 = 0
    /// Writes refused because the device's queue was full.
    package private(set) var dropped = 0

    /// For `tun`'s queue.
    package convenience init(tun: TUNDevice) {
        self.init(offload: tun.offload) { (try? tun.write($0)) == true }
    }

    /// For any sink of framed packets (a `VirtioNetHeader` in front of each when `offload`).
    package init(offload: Bool, sink: @escaping (UnsafeRawBufferPointer) -> Bool) {
        self.offload = offload
        self.sink = sink
        buffer = .allocate(byteCount: VirtioNetHeader.size + 65_535, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Takes one packet. `packet` must have `VirtioNetHeader.size` bytes of room in front of it that
    /// may be overwritten (the WireGuard header it came under).
    package func write(_ packet: UnsafeRawBufferPointer) {
        guard offload else { return put(packet) }
        if length > 0, append(packet) { return }
        flush()
        if let found = Offload.tcpHeaders(packet), Self.mayJoin(packet, found), packet.count > found.ip + found.tcp {
            headers = found
            let base = buffer.baseAddress! + VirtioNetHeader.size
            base.copyMemory(from: packet.baseAddress!, byteCount: packet.count)
            length = packet.count
            segments = 1
            segmentSize = packet.count - found.ip - found.tcp
            nextSequence = UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: found.ip + 4, as: UInt32.self)) &+ UInt32(segmentSize)
            return
        }
        put(packet)
    }

    /// Writes what is being joined.
    package func flush() {
        guard length > 0 else { return }
        defer { length = 0; segments = 0 }
        let packet = UnsafeMutableRawBufferPointer(start: buffer.baseAddress! + VirtioNetHeader.size, count: length)
        guard segments > 1 else { return put(UnsafeRawBufferPointer(packet)) }
        var header = VirtioNetHeader()
        let isV4 = packet[0] >> 4 == 4
        if isV4 {
            packet.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            packet.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            let checksum = ~InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: packet[..<headers.ip])))
            packet.storeBytes(of: checksum.bigEndian, toByteOffset: 10, as: UInt16.self)
        } else {
            packet.storeBytes(of: UInt16(length - 40).bigEndian, toByteOffset: 4, as: UInt16.self)
        }
        // The kernel finishes each segment's checksum from the pseudo-header's sum.
        let pseudo = InternetChecksum.fold(InternetChecksum.pseudoHeader(UnsafeRawBufferPointer(packet), protocolNumber: 6, length: length - headers.ip))
        packet.storeBytes(of: pseudo.bigEndian, toByteOffset: headers.ip + 16, as: UInt16.self)
        header.flags = VirtioNetHeader.needsChecksum
        header.gsoType = isV4 ? VirtioNetHeader.gsoTCPv4 : VirtioNetHeader.gsoTCPv6
        header.headerLength = UInt16(headers.ip + headers.tcp)
        header.gsoSize = UInt16(segmentSize)
        header.checksumStart = UInt16(headers.ip)
        header.checksumOffset = 16
        header.write(to: buffer.baseAddress!)
        send(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: VirtioNetHeader.size + length))
    }

    /// A segment that may start or join a super-packet: ACK, perhaps PSH, nothing else.
    private static func mayJoin(_ packet: UnsafeRawBufferPointer, _ headers: (ip: Int, tcp: Int)) -> Bool {
        let flags = packet[headers.ip + 13]
        guard flags & ~0x08 == 0x10 else { return false }
        // IPv4: no fragment, no options beyond the header we copy as they are.
        if packet[0] >> 4 == 4 {
            let fragment = UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
            guard fragment & 0x3FFF == 0, headers.ip == 20 else { return false }
        }
        return true
    }

    private func append(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard let found = Offload.tcpHeaders(packet), found == headers, Self.mayJoin(packet, found) else { return false }
        let base = UnsafeRawBufferPointer(start: buffer.baseAddress! + VirtioNetHeader.size, count: length)
        let payload = packet.count - found.ip - found.tcp
        // The last one joined was full-sized and carried no PSH; this one is no bigger and fits.
        guard payload > 0, payload <= segmentSize, length + payload <= 65_535, base[found.ip + 13] & 0x08 == 0,
              length == found.ip + found.tcp + segments * segmentSize else { return false }
        guard UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: found.ip + 4, as: UInt32.self)) == nextSequence else { return false }
        // The same flow and the same everything else: addresses, ports, acknowledgement, window, options.
        let isV4 = packet[0] >> 4 == 4
        let addresses = isV4 ? 12..<20 : 8..<40
        guard packet[0] == base[0], packet[1] == base[1], isV4 ? packet[8] == base[8] : packet[7] == base[7],
              memcmp(packet.baseAddress! + addresses.lowerBound, base.baseAddress! + addresses.lowerBound, addresses.count) == 0,
              memcmp(packet.baseAddress! + found.ip, base.baseAddress! + found.ip, 4) == 0,
              memcmp(packet.baseAddress! + found.ip + 8, base.baseAddress! + found.ip + 8, 5) == 0,
              memcmp(packet.baseAddress! + found.ip + 14, base.baseAddress! + found.ip + 14, 2) == 0,
              memcmp(packet.baseAddress! + found.ip + 18, base.baseAddress! + found.ip + 18, found.tcp - 18) == 0 else { return false }
        (buffer.baseAddress! + VirtioNetHeader.size + length).copyMemory(from: packet.baseAddress! + found.ip + found.tcp, byteCount: payload)
        length += payload
        segments += 1
        nextSequence &+= UInt32(payload)
        // The last segment's PSH goes with the whole.
        if packet[found.ip + 13] & 0x08 != 0 {
            (buffer.baseAddress! + VirtioNetHeader.size + found.ip + 13).storeBytes(of: base[found.ip + 13] | 0x08, as: UInt8.self)
        }
        if payload < segmentSize { flush() }
        return true
    }

    /// Writes one packet as it is (a plain header in the room in front of it, with offloads).
    private func put(_ packet: UnsafeRawBufferPointer) {
        guard offload else { return send(packet) }
        let framed = UnsafeMutableRawPointer(mutating: packet.baseAddress!) - VirtioNetHeader.size
        VirtioNetHeader().write(to: framed)
        send(UnsafeRawBufferPointer(start: framed, count: VirtioNetHeader.size + packet.count))
    }

    private func send(_ bytes: UnsafeRawBufferPointer) {
        if !sink(bytes) { dropped += 1 }
    }
}
