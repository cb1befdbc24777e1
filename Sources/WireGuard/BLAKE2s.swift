/// BLAKE2s (RFC 7693): the hash WireGuard builds HASH, MAC, HMAC and its KDF on. Neither libsodium nor
/// swift-crypto has it (libsodium's generic hash is BLAKE2b), so it is written here and checked
/// against the RFC's test vectors and against Python's hashlib in the tests.
package struct BLAKE2s: Sendable {
    /// The largest digest and key, in bytes.
    package static let maximumLength = 32
    static let blockSize = 64

    private static let iv: [UInt32] = [
        0x6A09_E667, 0xBB67_AE85, 0x3C6E_F372, 0xA54F_F53A, 0x510E_527F, 0x9B05_688C, 0x1F83_D9AB, 0x5BE0_CD19,
    ]

    /// The message word schedule of each of the ten rounds.
    private static let sigma: [[Int]] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
        [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
        [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
        [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
        [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
        [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
        [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
        [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
        [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    ]

    private var state: [UInt32]
    private var buffer: [UInt8] = []
    private var counter: UInt64 = 0
    private let outputLength: Int

    /// A hash of `outputLength` bytes (1-32), keyed when `key` is not empty (at most 32 bytes).
    package init(outputLength: Int = 32, key: [UInt8] = []) {
        precondition((1...Self.maximumLength).contains(outputLength) && key.count <= Self.maximumLength, "BLAKE2s: output 1-32 bytes, key at most 32")
        self.outputLength = outputLength
        state = Self.iv
        state[0] ^= 0x0101_0000 ^ (UInt32(key.count) << 8) ^ UInt32(outputLength)
        buffer.reserveCapacity(Self.blockSize)
        if !key.isEmpty {
            update(key + [UInt8](repeating: 0, count: Self.blockSize - key.count))
        }
    }

    /// Adds `data` to the message.
    package mutating func update(_ data: some Collection<UInt8>) {
        for byte in data {
            // The last block is compressed by `finalize` (with the final flag), so a full buffer waits
            // until more data comes.
            if buffer.count == Self.blockSize {
                counter &+= UInt64(Self.blockSize)
                compress(last: false)
                buffer.removeAll(keepingCapacity: true)
            }
            buffer.append(byte)
        }
    }

    /// The digest.
    package mutating func finalize() -> [UInt8] {
        counter &+= UInt64(buffer.count)
        buffer += [UInt8](repeating: 0, count: Self.blockSize - buffer.count)
        compress(last: true)
        var digest: [UInt8] = []
        digest.reserveCapacity(32)
        for word in state {
            for shift in stride(from: 0, to: 32, by: 8) { digest.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
        }
        return Array(digest.prefix(outputLength))
    }

    /// The digest of `data` in one call.
    package static func hash(_ data: some Collection<UInt8>, outputLength: Int = 32, key: [UInt8] = []) -> [UInt8] {
        var hasher = BLAKE2s(outputLength: outputLength, key: key)
        hasher.update(data)
        return hasher.finalize()
    }

    private mutating func compress(last: Bool) {
        var m = [UInt32](repeating: 0, count: 16)
        for index in 0..<16 {
            let base = index * 4
            m[index] = UInt32(buffer[base]) | UInt32(buffer[base + 1]) << 8 | UInt32(buffer[base + 2]) << 16 | UInt32(buffer[base + 3]) << 24
        }
        var v = state + Self.iv
        v[12] ^= UInt32(truncatingIfNeeded: counter)
        v[13] ^= UInt32(truncatingIfNeeded: counter >> 32)
        if last { v[14] = ~v[14] }
        @inline(__always) func mix(_ a: Int, _ b: Int, _ c: Int, _ d: Int, _ x: UInt32, _ y: UInt32) {
            v[a] = v[a] &+ v[b] &+ x
            v[d] = (v[d] ^ v[a]).rotatedRight(16)
            v[c] = v[c] &+ v[d]
            v[b] = (v[b] ^ v[c]).rotatedRight(12)
            v[a] = v[a] &+ v[b] &+ y
            v[d] = (v[d] ^ v[a]).rotatedRight(8)
            v[c] = v[c] &+ v[d]
            v[b] = (v[b] ^ v[c]).rotatedRight(7)
        }
        for round in 0..<10 {
            let s = Self.sigma[round]
            mix(0, 4, 8, 12, m[s[0]], m[s[1]])
            mix(1, 5, 9, 13, m[s[2]], m[s[3]])
            mix(2, 6, 10, 14, m[s[4]], m[s[5]])
            mix(3, 7, 11, 15, m[s[6]], m[s[7]])
            mix(0, 5, 10, 15, m[s[8]], m[s[9]])
            mix(1, 6, 11, 12, m[s[10]], m[s[11]])
            mix(2, 7, 8, 13, m[s[12]], m[s[13]])
            mix(3, 4, 9, 14, m[s[14]], m[s[15]])
        }
        for index in 0..<8 { state[index] ^= v[index] ^ v[index + 8] }
    }
}

extension UInt32 {
    @inline(__always) func rotatedRight(_ count: UInt32) -> UInt32 {
        (self >> count) | (self << (32 - count))
    }
}

/// The WireGuard paper's constructions over BLAKE2s (section 5.4): HASH, MAC (keyed, 16 bytes),
/// HMAC (RFC 2104 with BLAKE2s, 64-byte blocks) and KDF_n (HKDF, RFC 5869, with that HMAC).
package enum WireGuardHash {
    /// HASH(input): 32 bytes.
    package static func hash(_ input: [UInt8]) -> [UInt8] { BLAKE2s.hash(input) }

    /// MAC(key, input): keyed BLAKE2s, 16 bytes (MAC1 and MAC2 of the handshake messages).
    package static func mac(key: [UInt8], _ input: [UInt8]) -> [UInt8] { BLAKE2s.hash(input, outputLength: 16, key: key) }

    /// HMAC(key, input) with BLAKE2s-256.
    package static func hmac(key: [UInt8], _ input: [UInt8]) -> [UInt8] {
        var block = key.count > BLAKE2s.blockSize ? BLAKE2s.hash(key) : key
        block += [UInt8](repeating: 0, count: BLAKE2s.blockSize - block.count)
        var inner = BLAKE2s()
        inner.update(block.map { $0 ^ 0x36 })
        inner.update(input)
        var outer = BLAKE2s()
        outer.update(block.map { $0 ^ 0x5C })
        outer.update(inner.finalize())
        return outer.finalize()
    }

    /// KDF_n(key, input): n (1-3) 32-byte outputs, τ0 = HMAC(key, input), τi = HMAC(τ0, τ(i-1) ‖ i).
    package static func kdf(_ count: Int, key: [UInt8], _ input: [UInt8]) -> [[UInt8]] {
        precondition((1...3).contains(count), "WireGuard derives one to three keys at a time")
        let secret = hmac(key: key, input)
        var outputs: [[UInt8]] = []
        var previous: [UInt8] = []
        for index in 1...count {
            previous = hmac(key: secret, previous + [UInt8(index)])
            outputs.append(previous)
        }
        return outputs
    }
}
