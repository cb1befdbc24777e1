package import Foundation
import Synchronization

/// Cookies (the paper's section 5.4.7): a responder under load answers a handshake message whose MAC2
/// is missing or wrong with a cookie reply instead of doing any DH; the initiator puts the cookie in
/// the MAC2 of its next message, which proves it owns its source address.
package final class CookieResponder: Sendable {
    package static let replySize = 64
    /// How long a cookie secret (and so a cookie) lives.
    package static let secretLifetime: TimeInterval = 120

    private let cookieKey: [UInt8]
    private let secret: Mutex<(value: [UInt8], made: Date)>

    /// For the responder whose static public key is `local`.
    package init(local: [UInt8], now: Date) {
        cookieKey = WireGuardHash.hash(Handshake.labelCookie + local)
        secret = Mutex((Sodium.randomBytes(32), now))
    }

    /// The cookie of a source (its address bytes then its port, big-endian), under the current secret.
    package func cookie(for source: [UInt8], now: Date) -> [UInt8] {
        let key = secret.withLock { secret -> [UInt8] in
            if now.timeIntervalSince(secret.made) >= Self.secretLifetime { secret = (Sodium.randomBytes(32), now) }
            return secret.value
        }
        return WireGuardHash.mac(key: key, source)
    }

    /// Whether a handshake message (initiation or response) from `source` carries a valid MAC2.
    package func hasValidMAC2(_ message: [UInt8], from source: [UInt8], now: Date) -> Bool {
        guard message.count >= 32 else { return false }
        let end = message.count - 16
        return Sodium.equal(Array(message[end...]), WireGuardHash.mac(key: cookie(for: source, now: now), Array(message[..<end])))
    }

    /// The cookie reply to a handshake message from `source` (its MAC1 already checked).
    package func reply(to message: [UInt8], from source: [UInt8], now: Date, nonce: [UInt8] = Sodium.randomBytes(24)) -> [UInt8]? {
        guard message.count >= 32, message[0] == 1 || message[0] == 2 else { return nil }
        let senderIndex = Array(message[4..<8])
        let mac1 = Array(message[(message.count - 32)..<(message.count - 16)])
        let sealed = Sodium.xseal(key: cookieKey, nonce: nonce, cookie(for: source, now: now), authenticating: mac1)
        return [3, 0, 0, 0] + senderIndex + nonce + sealed
    }

    /// The cookie inside a reply, for the initiator that sent the message whose MAC1 is `mac1` to the
    /// responder `remote`; nil when the reply does not open.
    package static func open(_ reply: [UInt8], mac1: [UInt8], remote: [UInt8]) -> [UInt8]? {
        guard reply.count == replySize, reply[0] == 3, reply[1] == 0, reply[2] == 0, reply[3] == 0 else { return nil }
        let key = WireGuardHash.hash(Handshake.labelCookie + remote)
        return Sodium.xopen(key: key, nonce: Array(reply[8..<32]), Array(reply[32..<64]), authenticating: mac1)
    }

    /// A source as cookies take it: address bytes (4 or 16) then the port, big-endian.
    package static func source(address: [UInt8], port: UInt16) -> [UInt8] {
        address + [UInt8(port >> 8), UInt8(port & 0xFF)]
    }
}
