package import Foundation

/// A peer's long-term X25519 key pair.
package struct StaticKey: Sendable, Equatable {
    package let privateKey: [UInt8]
    package let publicKey: [UInt8]

    package init(privateKey: [UInt8]) {
        precondition(privateKey.count == 32, "an X25519 private key is 32 bytes")
        self.privateKey = privateKey
        publicKey = Sodium.publicKey(privateKey)
    }

    package static func generate() -> StaticKey { StaticKey(privateKey: Sodium.randomBytes(32)) }
}

/// The keys of one transport session: what one side sends with and receives with, and the indexes
/// that name the session on each side.
package struct SessionKeys: Sendable, Equatable {
    package var sending: [UInt8]
    package var receiving: [UInt8]
    package var localIndex: UInt32
    package var remoteIndex: UInt32

    package init(sending: [UInt8], receiving: [UInt8], localIndex: UInt32, remoteIndex: UInt32) {
        self.sending = sending
        self.receiving = receiving
        self.localIndex = localIndex
        self.remoteIndex = remoteIndex
    }
}

/// The Noise_IKpsk2 handshake of WireGuard (the paper's section 5.4), message formats included.
/// Pure: keys, indexes, times and ephemerals come in; bytes and keys come out.
package enum Handshake {
    package static let initiationSize = 148
    package static let responseSize = 92
    static let construction = Array("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s".utf8)
    static let identifier = Array("WireGuard v1 zx2c4 Jason@zx2c4.com".utf8)
    static let labelMAC1 = Array("mac1----".utf8)
    static let labelCookie = Array("cookie--".utf8)

    /// The chaining key and hash every handshake starts from, with the responder's public key mixed in.
    static func initialState(responder: [UInt8]) -> (chainingKey: [UInt8], hash: [UInt8]) {
        let chainingKey = WireGuardHash.hash(construction)
        let hash = WireGuardHash.hash(WireGuardHash.hash(chainingKey + identifier) + responder)
        return (chainingKey, hash)
    }

    /// TAI64N of `date`: 8 bytes of seconds + 2^62 and 4 bytes of nanoseconds, big-endian.
    package static func timestamp(_ date: Date) -> [UInt8] {
        let seconds = UInt64(max(0, date.timeIntervalSince1970.rounded(.down))) + (1 << 62)
        let nanoseconds = UInt32(max(0, (date.timeIntervalSince1970 - date.timeIntervalSince1970.rounded(.down)) * 1e9))
        return (0..<8).map { UInt8(truncatingIfNeeded: seconds >> (56 - 8 * UInt64($0))) }
            + (0..<4).map { UInt8(truncatingIfNeeded: nanoseconds >> (24 - 8 * UInt32($0))) }
    }

    /// MAC1 of a message to `receiver`: over everything before the MAC fields.
    static func mac1(_ message: ArraySlice<UInt8>, to receiver: [UInt8]) -> [UInt8] {
        WireGuardHash.mac(key: WireGuardHash.hash(labelMAC1 + receiver), Array(message))
    }

    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * UInt32($0))) } }
    package static func readLE32(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }

    /// The initiator's side between sending its initiation and receiving the response.
    package struct Initiator: Sendable {
        package let localIndex: UInt32
        package let remoteStatic: [UInt8]
        let local: StaticKey
        let presharedKey: [UInt8]
        let ephemeral: StaticKey
        let chainingKey: [UInt8]
        let hash: [UInt8]
        /// The initiation as sent (its MAC1 is what a cookie reply authenticates).
        package let message: [UInt8]

        /// Makes a handshake initiation to `remoteStatic`. `ephemeral` and `now` are given (tests fix
        /// them); `cookie`, when the responder sent one, fills MAC2.
        package init?(local: StaticKey, remoteStatic: [UInt8], presharedKey: [UInt8] = [UInt8](repeating: 0, count: 32), localIndex: UInt32,
                      now: Date, ephemeral: StaticKey = .generate(), cookie: [UInt8]? = nil) {
            var (chainingKey, hash) = Handshake.initialState(responder: remoteStatic)
            chainingKey = WireGuardHash.kdf(1, key: chainingKey, ephemeral.publicKey)[0]
            hash = WireGuardHash.hash(hash + ephemeral.publicKey)
            guard let es = Sodium.dh(ephemeral.privateKey, remoteStatic) else { return nil }
            var keys = WireGuardHash.kdf(2, key: chainingKey, es)
            chainingKey = keys[0]
            let encryptedStatic = Sodium.seal(key: keys[1], counter: 0, local.publicKey, authenticating: hash)
            hash = WireGuardHash.hash(hash + encryptedStatic)
            guard let ss = Sodium.dh(local.privateKey, remoteStatic) else { return nil }
            keys = WireGuardHash.kdf(2, key: chainingKey, ss)
            chainingKey = keys[0]
            let encryptedTimestamp = Sodium.seal(key: keys[1], counter: 0, Handshake.timestamp(now), authenticating: hash)
            hash = WireGuardHash.hash(hash + encryptedTimestamp)
            var message: [UInt8] = [1, 0, 0, 0] + Handshake.le32(localIndex) + ephemeral.publicKey + encryptedStatic + encryptedTimestamp
            message += Handshake.mac1(message[...], to: remoteStatic)
            message += cookie.map { WireGuardHash.mac(key: $0, message) } ?? [UInt8](repeating: 0, count: 16)
            self.localIndex = localIndex
            self.remoteStatic = remoteStatic
            self.local = local
            self.presharedKey = presharedKey
            self.ephemeral = ephemeral
            self.chainingKey = chainingKey
            self.hash = hash
            self.message = message
        }

        /// The session keys from the responder's answer; nil when it is not the answer to this
        /// initiation (wrong index, MAC1 or keys).
        package func consume(response message: [UInt8]) -> SessionKeys? {
            guard message.count == Handshake.responseSize, message[0] == 2, message[1] == 0, message[2] == 0, message[3] == 0,
                  Handshake.readLE32(message, at: 8) == localIndex,
                  Sodium.equal(Array(message[60..<76]), Handshake.mac1(message[0..<60], to: local.publicKey)) else { return nil }
            let remoteIndex = Handshake.readLE32(message, at: 4)
            let responderEphemeral = Array(message[12..<44])
            var chainingKey = WireGuardHash.kdf(1, key: self.chainingKey, responderEphemeral)[0]
            var hash = WireGuardHash.hash(self.hash + responderEphemeral)
            guard let ee = Sodium.dh(ephemeral.privateKey, responderEphemeral),
                  let se = Sodium.dh(local.privateKey, responderEphemeral) else { return nil }
            chainingKey = WireGuardHash.kdf(1, key: chainingKey, ee)[0]
            chainingKey = WireGuardHash.kdf(1, key: chainingKey, se)[0]
            let keys = WireGuardHash.kdf(3, key: chainingKey, presharedKey)
            chainingKey = keys[0]
            hash = WireGuardHash.hash(hash + keys[1])
            guard Sodium.open(key: keys[2], counter: 0, Array(message[44..<60]), authenticating: hash) != nil else { return nil }
            let transport = WireGuardHash.kdf(2, key: chainingKey, [])
            return SessionKeys(sending: transport[0], receiving: transport[1], localIndex: localIndex, remoteIndex: remoteIndex)
        }
    }

    /// What a responder learned from a valid initiation, and its response.
    package struct Response: Sendable {
        /// The initiator's static public key (who it is).
        package var initiatorStatic: [UInt8]
        /// Its TAI64N timestamp (a replayed initiation carries an old one).
        package var timestamp: [UInt8]
        package var message: [UInt8]
        package var keys: SessionKeys
    }

    /// Checks MAC1 of a message addressed to `local` (the cheap check done before any DH).
    package static func hasValidMAC1(_ message: [UInt8], to local: [UInt8]) -> Bool {
        guard message.count >= 32 else { return false }
        let end = message.count - 32
        return Sodium.equal(Array(message[end..<(end + 16)]), mac1(message[0..<end], to: local))
    }

    /// Answers an initiation to `local`: nil when it is not a valid initiation to us.
    /// `presharedKey` gives the preshared key of the initiator's static key, or nil for a stranger.
    package static func respond(to message: [UInt8], local: StaticKey, localIndex: UInt32, presharedKey: ([UInt8]) -> [UInt8]?,
                                ephemeral: StaticKey = .generate()) -> Response? {
        guard message.count == initiationSize, message[0] == 1, message[1] == 0, message[2] == 0, message[3] == 0,
              hasValidMAC1(message, to: local.publicKey) else { return nil }
        let remoteIndex = readLE32(message, at: 4)
        let initiatorEphemeral = Array(message[8..<40])
        var (chainingKey, hash) = initialState(responder: local.publicKey)
        chainingKey = WireGuardHash.kdf(1, key: chainingKey, initiatorEphemeral)[0]
        hash = WireGuardHash.hash(hash + initiatorEphemeral)
        guard let es = Sodium.dh(local.privateKey, initiatorEphemeral) else { return nil }
        var keys = WireGuardHash.kdf(2, key: chainingKey, es)
        chainingKey = keys[0]
        let encryptedStatic = Array(message[40..<88])
        guard let initiatorStatic = Sodium.open(key: keys[1], counter: 0, encryptedStatic, authenticating: hash),
              let psk = presharedKey(initiatorStatic) else { return nil }
        hash = WireGuardHash.hash(hash + encryptedStatic)
        guard let ss = Sodium.dh(local.privateKey, initiatorStatic) else { return nil }
        keys = WireGuardHash.kdf(2, key: chainingKey, ss)
        chainingKey = keys[0]
        let encryptedTimestamp = Array(message[88..<116])
        guard let timestamp = Sodium.open(key: keys[1], counter: 0, encryptedTimestamp, authenticating: hash) else { return nil }
        hash = WireGuardHash.hash(hash + encryptedTimestamp)

        chainingKey = WireGuardHash.kdf(1, key: chainingKey, ephemeral.publicKey)[0]
        hash = WireGuardHash.hash(hash + ephemeral.publicKey)
        guard let ee = Sodium.dh(ephemeral.privateKey, initiatorEphemeral),
              let se = Sodium.dh(ephemeral.privateKey, initiatorStatic) else { return nil }
        chainingKey = WireGuardHash.kdf(1, key: chainingKey, ee)[0]
        chainingKey = WireGuardHash.kdf(1, key: chainingKey, se)[0]
        keys = WireGuardHash.kdf(3, key: chainingKey, psk)
        chainingKey = keys[0]
        hash = WireGuardHash.hash(hash + keys[1])
        let empty = Sodium.seal(key: keys[2], counter: 0, [], authenticating: hash)
        var response: [UInt8] = [2, 0, 0, 0] + le32(localIndex) + le32(remoteIndex) + ephemeral.publicKey + empty
        response += mac1(response[...], to: initiatorStatic)
        response += [UInt8](repeating: 0, count: 16)
        let transport = WireGuardHash.kdf(2, key: chainingKey, [])
        return Response(initiatorStatic: initiatorStatic, timestamp: timestamp, message: response,
                        keys: SessionKeys(sending: transport[1], receiving: transport[0], localIndex: localIndex, remoteIndex: remoteIndex))
    }
}
