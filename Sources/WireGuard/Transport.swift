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

    /// A transport data message carrying `packet` (padded to a multiple of 16 bytes); nil once the
    /// counter is exhausted.
    package mutating func seal(_ packet: [UInt8]) -> [UInt8]? {
        guard sendCounter < Self.rejectAfterMessages else { return nil }
        let counter = sendCounter
        sendCounter += 1
        let padded = packet + [UInt8](repeating: 0, count: (16 - packet.count % 16) % 16)
        return [4, 0, 0, 0] + Handshake.le32(keys.remoteIndex) + (0..<8).map { UInt8(truncatingIfNeeded: counter >> (8 * UInt64($0))) }
            + Sodium.seal(key: keys.sending, counter: counter, padded, authenticating: [])
    }

    /// The packet inside a transport data message for this session (padding included; the IP header
    /// says the real length); nil when it does not authenticate or was seen before.
    package mutating func open(_ message: [UInt8]) -> [UInt8]? {
        guard message.count >= 32, message[0] == 4, message[1] == 0, message[2] == 0, message[3] == 0,
              Handshake.readLE32(message, at: 4) == keys.localIndex else { return nil }
        let counter = (0..<8).reduce(UInt64(0)) { $0 | UInt64(message[8 + $1]) << (8 * UInt64($1)) }
        guard counter < Self.rejectAfterMessages, window.mayAccept(counter),
              let packet = Sodium.open(key: keys.receiving, counter: counter, Array(message[16...]), authenticating: []) else { return nil }
        window.accept(counter)
        return packet
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
