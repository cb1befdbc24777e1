/// What a datagram on the socket a client or gateway shares between ICE, TURN and WireGuard is
/// (client spec, "Connection establishment"). A first byte alone is not enough: STUN's 0x00-0x01 and
/// WireGuard's types 1-4 overlap.
package enum DatagramKind: Sendable, Equatable {
    /// STUN: first two bits zero and the magic cookie 0x2112A442 at bytes 4-7 (checks, Binding and
    /// TURN answers).
    case stun
    /// TURN ChannelData: a first byte of 0x40-0x7F (a channel number 0x4000-0x7FFF).
    case channelData
    /// WireGuard: type 1-4 in byte 0 followed by three zero bytes.
    case wireGuard
    /// None of these: dropped.
    case unknown

    package init(_ bytes: UnsafeRawBufferPointer) {
        if CheckMessage.isSTUN(bytes) {
            self = .stun
        } else if bytes.count >= 4, (0x40...0x7F).contains(bytes[0]) {
            self = .channelData
        } else if bytes.count >= 4, (1...4).contains(bytes[0]), bytes[1] == 0, bytes[2] == 0, bytes[3] == 0 {
            self = .wireGuard
        } else {
            self = .unknown
        }
    }

    package init(_ bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { DatagramKind($0) }
    }
}
