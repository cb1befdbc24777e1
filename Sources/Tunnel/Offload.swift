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
    package static let gsoUDP: UInt8 = 5
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
    /// The sum of `bytes` added to `initial`, not yet folded. (The bytes are summed as native 64-bit
    /// words with the carries wrapped around, and the folded result swapped to network order at the
    /// end: RFC 1071's byte-order independence, eight bytes a step.)
    package static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt64 = 0) -> UInt64 {
        var sum: UInt64 = 0
        var index = 0
        let count = bytes.count
        while index + 8 <= count {
            let (added, overflow) = sum.addingReportingOverflow(bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            sum = added &+ (overflow ? 1 : 0)
            index += 8
        }
        if index < count {
            var tail: UInt64 = 0
            withUnsafeMutableBytes(of: &tail) { $0.baseAddress!.copyMemory(from: bytes.baseAddress! + index, byteCount: count - index) }
            let (added, overflow) = sum.addingReportingOverflow(tail)
            sum = added &+ (overflow ? 1 : 0)
        }
        return initial &+ UInt64(fold(sum).byteSwapped)
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
        case VirtioNetHeader.gsoUDP:
            return segmentUDP(UnsafeRawBufferPointer(packet), size: Int(header.gsoSize), scratch: scratch, body)
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

    /// The IP header length of a UDP packet (IPv6 without extension headers), or nil.
    static func udpHeaders(_ packet: UnsafeRawBufferPointer) -> Int? {
        guard let first = packet.first else { return nil }
        switch first >> 4 {
        case 4:
            let ip = Int(first & 0x0F) * 4
            return ip >= 20 && packet.count >= ip + 8 && packet[9] == 17 ? ip : nil
        case 6:
            return packet.count >= 48 && packet[6] == 17 ? 40 : nil
        default:
            return nil
        }
    }

    /// Whether a TCP or UDP packet's checksum is right (a UDP checksum of zero, "none", is not).
    static func checksumIsValid(_ packet: UnsafeRawBufferPointer, ip: Int, protocolNumber: UInt8) -> Bool {
        let transport = UnsafeRawBufferPointer(rebasing: packet[ip...])
        if protocolNumber == 17, transport.loadUnaligned(fromByteOffset: 6, as: UInt16.self) == 0 { return false }
        let sum = InternetChecksum.sum(transport, initial: InternetChecksum.pseudoHeader(packet, protocolNumber: protocolNumber, length: transport.count))
        return InternetChecksum.fold(sum) == 0xFFFF
    }

    /// Sets an IPv4 header's total length (and checksum) or an IPv6 header's payload length.
    static func setLength(_ packet: UnsafeMutableRawBufferPointer, total: Int, ip: Int, identification: UInt16? = nil) {
        if packet[0] >> 4 == 4 {
            packet.storeBytes(of: UInt16(total).bigEndian, toByteOffset: 2, as: UInt16.self)
            if let identification { packet.storeBytes(of: identification.bigEndian, toByteOffset: 4, as: UInt16.self) }
            packet.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            let checksum = ~InternetChecksum.fold(InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: packet[..<ip])))
            packet.storeBytes(of: checksum.bigEndian, toByteOffset: 10, as: UInt16.self)
        } else {
            packet.storeBytes(of: UInt16(total - 40).bigEndian, toByteOffset: 4, as: UInt16.self)
        }
    }

    /// Cuts a UDP super-packet into datagrams of `size` payload bytes, as the kernel's USO would.
    static func segmentUDP(_ packet: UnsafeRawBufferPointer, size: Int, scratch: UnsafeMutableRawBufferPointer,
                           _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard size > 0, let ip = udpHeaders(packet), scratch.count >= ip + 8 + size else { return false }
        let headers = ip + 8
        let payload = packet.count - headers
        let identification = packet[0] >> 4 == 4 ? UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) : 0
        var offset = 0
        var index: UInt16 = 0
        repeat {
            let length = min(size, payload - offset)
            scratch.baseAddress!.copyMemory(from: packet.baseAddress!, byteCount: headers)
            (scratch.baseAddress! + headers).copyMemory(from: packet.baseAddress! + headers + offset, byteCount: length)
            let total = headers + length
            setLength(scratch, total: total, ip: ip, identification: identification &+ index)
            scratch.storeBytes(of: UInt16(8 + length).bigEndian, toByteOffset: ip + 4, as: UInt16.self)
            scratch.storeBytes(of: UInt16(0), toByteOffset: ip + 6, as: UInt16.self)
            let segment = UnsafeRawBufferPointer(rebasing: scratch[..<total])
            let sum = InternetChecksum.sum(UnsafeRawBufferPointer(rebasing: segment[ip...]),
                                           initial: InternetChecksum.pseudoHeader(segment, protocolNumber: 17, length: 8 + length))
            let checksum = ~InternetChecksum.fold(sum)
            scratch.storeBytes(of: (checksum == 0 ? 0xFFFF : checksum).bigEndian, toByteOffset: ip + 6, as: UInt16.self)
            body(segment)
            offset += length
            index &+= 1
        } while offset < payload
        return true
    }

    /// Cuts a TCP super-packet into segments of `size` payload bytes, as the kernel's TSO would.
    static func segment(_ packet: UnsafeRawBufferPointer, size: Int, scratch: UnsafeMutableRawBufferPointer,
                        _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        guard size > 0, let (ip, tcp) = tcpHeaders(packet) else { return false }
        let headers = ip + tcp
        guard scratch.count >= headers + size else { return false }
        let payload = packet.count - headers
        let sequence = UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: ip + 4, as: UInt32.self))
        let identification = packet[0] >> 4 == 4 ? UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) : 0
        let flags = packet[ip + 13]
        var offset = 0
        var index = 0
        repeat {
            let length = min(size, payload - offset)
            let isLast = offset + length >= payload
            scratch.baseAddress!.copyMemory(from: packet.baseAddress!, byteCount: headers)
            (scratch.baseAddress! + headers).copyMemory(from: packet.baseAddress! + headers + offset, byteCount: length)
            let total = headers + length
            setLength(scratch, total: total, ip: ip, identification: identification &+ UInt16(truncatingIfNeeded: index))
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

/// Writes packets out of tunnels into an offloading TUN, joining segments of one flow that come one
/// after another into one super-packet, as the kernel's GRO would: TCP segments (the next sequence
/// number, the same acknowledgement, window and options, no flag but ACK, PSH only on the last) and,
/// where the device takes them, UDP datagrams (all the size of the first but a shorter last). Only
/// packets whose checksums are right are joined (the kernel remakes the checksums of what it cuts, so
/// a wrong one would otherwise be made right). Anything else is written as it is, in order. Owned by
/// one thread.
package final class TUNWriter {
    private let offload: Bool
    private let udpOffload: Bool
    /// Writes one framed packet (false: refused, the device's queue was full).
    private let sink: (UnsafeRawBufferPointer) -> Bool
    /// The super-packet being joined (after room for its header), or nothing.
    private let buffer: UnsafeMutableRawBufferPointer
    private var length = 0
    private var segments = 0
    private var segmentSize = 0
    private var protocolNumber: UInt8 = 0
    /// IP and transport header lengths of what is being joined.
    private var headers = (ip: 0, transport: 0)
    private var nextSequence: UInt32 = 0
    /// Writes refused because the device's queue was full.
    package private(set) var dropped = 0

    /// For `tun`'s queue.
    package convenience init(tun: TUNDevice) {
        self.init(offload: tun.offload, udpOffload: tun.udpOffload) { (try? tun.write($0)) == true }
    }

    /// For any sink of framed packets (a `VirtioNetHeader` in front of each when `offload`).
    package init(offload: Bool, udpOffload: Bool = false, sink: @escaping (UnsafeRawBufferPointer) -> Bool) {
        self.offload = offload
        self.udpOffload = offload && udpOffload
        self.sink = sink
        buffer = .allocate(byteCount: VirtioNetHeader.size + 65_535, alignment: 16)
    }

    deinit { buffer.deallocate() }

    private var joined: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: buffer.baseAddress! + VirtioNetHeader.size, count: length)
    }

    /// Takes one packet. `packet` must have `VirtioNetHeader.size` bytes of room in front of it that
    /// may be overwritten (the WireGuard header it came under).
    package func write(_ packet: UnsafeRawBufferPointer) {
        guard offload else { return put(packet) }
        if length > 0, append(packet) { return }
        flush()
        if let found = startable(packet) {
            (protocolNumber, headers) = found
            buffer.baseAddress!.advanced(by: VirtioNetHeader.size).copyMemory(from: packet.baseAddress!, byteCount: packet.count)
            length = packet.count
            segments = 1
            segmentSize = packet.count - found.headers.ip - found.headers.transport
            if protocolNumber == 6 {
                nextSequence = UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: found.headers.ip + 4, as: UInt32.self)) &+ UInt32(segmentSize)
            }
            return
        }
        put(packet)
    }

    /// Writes what is being joined.
    package func flush() {
        guard length > 0 else { return }
        defer { length = 0; segments = 0 }
        let packet = joined
        guard segments > 1 else { return put(UnsafeRawBufferPointer(packet)) }
        Offload.setLength(packet, total: length, ip: headers.ip)
        let isUDP = protocolNumber == 17
        if isUDP { packet.storeBytes(of: UInt16(length - headers.ip).bigEndian, toByteOffset: headers.ip + 4, as: UInt16.self) }
        // The kernel finishes each segment's checksum from the pseudo-header's sum.
        let pseudo = InternetChecksum.fold(InternetChecksum.pseudoHeader(UnsafeRawBufferPointer(packet), protocolNumber: protocolNumber,
                                                                         length: length - headers.ip))
        let field = headers.ip + (isUDP ? 6 : 16)
        packet.storeBytes(of: pseudo.bigEndian, toByteOffset: field, as: UInt16.self)
        var header = VirtioNetHeader()
        header.flags = VirtioNetHeader.needsChecksum
        header.gsoType = isUDP ? VirtioNetHeader.gsoUDP : packet[0] >> 4 == 4 ? VirtioNetHeader.gsoTCPv4 : VirtioNetHeader.gsoTCPv6
        header.headerLength = UInt16(headers.ip + headers.transport)
        header.gsoSize = UInt16(segmentSize)
        header.checksumStart = UInt16(headers.ip)
        header.checksumOffset = UInt16(field - headers.ip)
        header.write(to: buffer.baseAddress!)
        send(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: VirtioNetHeader.size + length))
    }

    /// What a packet that may start a super-packet is: TCP with ACK (and perhaps PSH) and nothing
    /// else, or UDP where the device takes it; a payload, no IPv4 fragment or options, a right checksum.
    private func startable(_ packet: UnsafeRawBufferPointer) -> (UInt8, headers: (ip: Int, transport: Int))? {
        let found: (UInt8, headers: (ip: Int, transport: Int))
        if let tcp = Offload.tcpHeaders(packet) {
            guard packet[tcp.ip + 13] & ~0x08 == 0x10 else { return nil }
            found = (6, (tcp.ip, tcp.tcp))
        } else if udpOffload, let ip = Offload.udpHeaders(packet) {
            found = (17, (ip, 8))
        } else {
            return nil
        }
        guard packet.count > found.headers.ip + found.headers.transport else { return nil }
        if packet[0] >> 4 == 4 {
            let fragment = UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
            guard fragment & 0x3FFF == 0, found.headers.ip == 20 else { return nil }
        }
        guard Offload.checksumIsValid(packet, ip: found.headers.ip, protocolNumber: found.0) else { return nil }
        return found
    }

    private func append(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard let found = startable(packet), found.0 == protocolNumber, found.headers == headers else { return false }
        let base = UnsafeRawBufferPointer(joined)
        let ip = headers.ip
        let payload = packet.count - ip - headers.transport
        // Everything joined so far was full-sized; this one is no bigger and fits.
        guard payload <= segmentSize, length + payload <= 65_535, length == ip + headers.transport + segments * segmentSize else { return false }
        // The same flow: addresses, ports, and the IP fields GRO compares.
        let isV4 = packet[0] >> 4 == 4
        let addresses = isV4 ? 12..<20 : 8..<40
        guard packet[0] == base[0], packet[1] == base[1], isV4 ? packet[8] == base[8] : packet[7] == base[7],
              memcmp(packet.baseAddress! + addresses.lowerBound, base.baseAddress! + addresses.lowerBound, addresses.count) == 0,
              memcmp(packet.baseAddress! + ip, base.baseAddress! + ip, 4) == 0 else { return false }
        if protocolNumber == 6 {
            // PSH ends a run; the acknowledgement, window and options match; the sequence follows on.
            guard base[ip + 13] & 0x08 == 0,
                  UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: ip + 4, as: UInt32.self)) == nextSequence,
                  memcmp(packet.baseAddress! + ip + 8, base.baseAddress! + ip + 8, 5) == 0,
                  memcmp(packet.baseAddress! + ip + 14, base.baseAddress! + ip + 14, 2) == 0,
                  memcmp(packet.baseAddress! + ip + 18, base.baseAddress! + ip + 18, headers.transport - 18) == 0 else { return false }
            nextSequence &+= UInt32(payload)
            if packet[ip + 13] & 0x08 != 0 { buffer.storeBytes(of: base[ip + 13] | 0x08, toByteOffset: VirtioNetHeader.size + ip + 13, as: UInt8.self) }
        }
        let end = buffer.baseAddress! + VirtioNetHeader.size + length
        end.copyMemory(from: packet.baseAddress! + ip + headers.transport, byteCount: payload)
        length += payload
        segments += 1
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
