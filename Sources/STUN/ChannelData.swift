/// A ChannelData message (RFC 8656 section 12.4): a 4-byte header (channel number, length) and the
/// application data, padded to 4 bytes over UDP. Padding is accepted on input and not counted in the
/// length; output is not padded (the header's length field says where the data ends).
package struct ChannelData {
    /// RFC 8656 section 12 allows 0x4000-0x4FFF; RFC 5766, which it replaced, allowed 0x4000-0x7FFF,
    /// and deployed clients still draw from that range (coturn's turnutils_uclient picks numbers like
    /// 0x5A1F). Refusing them would break those clients for no gain, so the relay accepts the old range,
    /// and a datagram whose first byte is 0x40-0x7F is ChannelData.
    package static let numbers: ClosedRange<UInt16> = 0x4000...0x7FFF

    package let channel: UInt16
    package let payload: UnsafeRawBufferPointer

    /// Parses a datagram; nil if it is not a well-formed ChannelData message.
    package init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 4 else { return nil }
        let channel = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let length = Int(UInt16(bytes[2]) << 8 | UInt16(bytes[3]))
        guard Self.numbers.contains(channel) else { return nil }
        // The datagram holds exactly the data, or the data padded up to a multiple of 4.
        let padded = (length + 3) & ~3
        guard bytes.count == 4 + length || bytes.count == 4 + padded else { return nil }
        self.channel = channel
        self.payload = UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + length)])
    }

    /// The header: channel number and length, 2 bytes each.
    package static let headerLength = 4

    /// Frames `payload` on `channel`, without padding.
    package static func frame(channel: UInt16, payload: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: headerLength + payload.count) { buffer, initialized in
            write(channel: channel, payload: payload, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = headerLength + payload.count
        }
    }

    /// Frames `payload` on `channel` into `buffer`, which holds exactly `headerLength + payload.count`
    /// bytes (the data path writes straight into its send batch).
    package static func write(channel: UInt16, payload: UnsafeRawBufferPointer, into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count == headerLength + payload.count && payload.count <= Int(UInt16.max))
        buffer[0] = UInt8(channel >> 8)
        buffer[1] = UInt8(channel & 0xFF)
        buffer[2] = UInt8(payload.count >> 8)
        buffer[3] = UInt8(payload.count & 0xFF)
        UnsafeMutableRawBufferPointer(rebasing: buffer[headerLength...]).copyMemory(from: payload)
    }
}
