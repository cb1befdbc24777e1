import Glibc

/// One direction-pair of transport data (the paper's section 5.4.6): packets sealed with a 64-bit
/// counter, opened with a sliding replay window.
package struct TransportSession: Sendable {
    package let keys: SessionKeys
    package private(set) var sendCounter: UInt64 = 0
    private var window = ReplayWindow()

    /// Counters past this are never used (REJECT-AFTER-MESSAGES).
    package static let rejectAfterMessages: UInt64 = UInt64.max - (1 << 13)  // 2^64 - 2^13 - 1

    package init(keys: SessionKeys) {
        self.keys = keys
    }

    /// The size of the transport data message that carries a packet of `count` bytes.
    package static func messageSize(forPacket count: Int) -> Int { 32 + (count + 15) & ~15 }

    /// A transport data message carrying `packet` (padded to a multiple of 16 bytes); nil once the
    /// counter is exhausted.
    package mutating func seal(_ packet: [UInt8]) -> [UInt8]? {
        var message = [UInt8](repeating: 0, count: Self.messageSize(forPacket: packet.count))
        let length = packet.withUnsafeBytes { packet in message.withUnsafeMutableBytes { seal(packet, into: $0) } }
        return length.map { Array(message.prefix($0)) }
    }

    /// Seals `packet` into `message` (at least `messageSize(forPacket:)` bytes; it may be the same memory
    /// as `packet` shifted by 16 bytes): the message's length, or nil once the counter is exhausted.
    package mutating func seal(_ packet: UnsafeRawBufferPointer, into message: UnsafeMutableRawBufferPointer) -> Int? {
        let size = Self.messageSize(forPacket: packet.count)
        guard sendCounter < Self.rejectAfterMessages, message.count >= size else { return nil }
        let counter = sendCounter
        sendCounter += 1
        let body = UnsafeMutableRawBufferPointer(rebasing: message[16..<(size - 16)])
        if let source = packet.baseAddress, let target = body.baseAddress, packet.count > 0 { memmove(target, source, packet.count) }
        for index in packet.count..<body.count { body[index] = 0 }
        message.storeBytes(of: UInt32(4).littleEndian, toByteOffset: 0, as: UInt32.self)
        message.storeBytes(of: keys.remoteIndex.littleEndian, toByteOffset: 4, as: UInt32.self)
        message.storeBytes(of: counter.littleEndian, toByteOffset: 8, as: UInt64.self)
        keys.sending.withUnsafeBytes { key in Sodium.sealInPlace(key: key, counter: counter, body, tag: message.baseAddress! + size - 16) }
        return size
    }

    /// The packet inside a transport data message for this session (padding included; the IP header
    /// says the real length); nil when it does not authenticate or was seen before.
    package mutating func open(_ message: [UInt8]) -> [UInt8]? {
        var message = message
        guard let range = message.withUnsafeMutableBytes({ try? open(inPlace: $0) }) else { return nil }
        return Array(message[range])
    }

    /// Opens a transport data message where it lies: the range of the packet in it (padding included),
    /// or why it was refused.
    package mutating func open(inPlace message: UnsafeMutableRawBufferPointer) throws(WireGuardDrop) -> Range<Int> {
        guard message.count >= 32, message.loadUnaligned(fromByteOffset: 0, as: UInt32.self) == UInt32(4).littleEndian else { throw .malformed }
        guard UInt32(littleEndian: message.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) == keys.localIndex else { throw .unknownSession }
        let counter = UInt64(littleEndian: message.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard counter < Self.rejectAfterMessages, window.mayAccept(counter) else { throw .replayed }
        let body = UnsafeMutableRawBufferPointer(rebasing: message[16..<(message.count - 16)])
        let opened = keys.receiving.withUnsafeBytes { key in
            Sodium.openInPlace(key: key, counter: counter, body, tag: UnsafeRawPointer(message.baseAddress! + message.count - 16))
        }
        guard opened else { throw .unauthenticated }
        window.accept(counter)
        return 16..<(message.count - 16)
    }
}

/// Which counters were seen: the highest, and a bitmap of the 2,048 below it (RFC 6479's idea, kept
/// simple). A counter older than the window, or seen, is refused.
struct ReplayWindow: Sendable {
    static let size: UInt64 = 2048
    private var highest: UInt64 = 0
    private var seenAny = false
    private var bits = [UInt64](repeating: 0, count: Int(size / 64))

    func mayAccept(_ counter: UInt64) -> Bool {
        guard seenAny else { return true }
        if counter > highest { return true }
        if highest - counter >= Self.size { return false }
        return !isSet(counter)
    }

    mutating func accept(_ counter: UInt64) {
        if !seenAny || counter > highest {
            let shift = seenAny ? counter - highest : Self.size
            if shift >= Self.size {
                for index in bits.indices { bits[index] = 0 }
            } else {
                for old in (highest + 1)...counter where old != counter { clear(old) }
            }
            clear(counter)
            highest = counter
            seenAny = true
        }
        set(counter)
    }

    private func isSet(_ counter: UInt64) -> Bool {
        let bit = counter % Self.size
        return bits[Int(bit / 64)] & (1 << (bit % 64)) != 0
    }

    private mutating func set(_ counter: UInt64) {
        let bit = counter % Self.size
        bits[Int(bit / 64)] |= 1 << (bit % 64)
    }

    private mutating func clear(_ counter: UInt64) {
        let bit = counter % Self.size
        bits[Int(bit / 64)] &= ~(1 << (bit % 64))
    }
}
