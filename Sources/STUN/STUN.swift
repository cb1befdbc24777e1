// STUN/TURN message codec (RFC 8489, RFC 8656): messages, attributes, MESSAGE-INTEGRITY,
// FINGERPRINT and ChannelData framing. Pure: bytes in, values out.

/// Namespace for module-wide constants.
package enum STUN {
    /// The magic cookie of RFC 8489 section 5.
    package static let magicCookie: UInt32 = STUNCodec.magicCookie
}
