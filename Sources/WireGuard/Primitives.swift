import CSodium
import Synchronization

/// The primitives WireGuard needs from libsodium: X25519, ChaCha20-Poly1305 (IETF, 96-bit nonce)
/// and XChaCha20-Poly1305, and random bytes.
package enum Sodium {
    private static let initialised: Bool = sodium_init() >= 0

    /// A random X25519 private key (32 bytes; clamping happens inside the scalar multiplication).
    package static func randomBytes(_ count: Int) -> [UInt8] {
        precondition(initialised, "libsodium failed to initialise")
        var bytes = [UInt8](repeating: 0, count: count)
        randombytes_buf(&bytes, count)
        return bytes
    }

    /// The public key of `privateKey`.
    package static func publicKey(_ privateKey: [UInt8]) -> [UInt8] {
        precondition(initialised && privateKey.count == 32)
        var result = [UInt8](repeating: 0, count: 32)
        _ = crypto_scalarmult_curve25519_base(&result, privateKey)
        return result
    }

    /// DH(private, public); nil when the result is all zeros (a low-order public key).
    package static func dh(_ privateKey: [UInt8], _ publicKey: [UInt8]) -> [UInt8]? {
        precondition(initialised && privateKey.count == 32)
        guard publicKey.count == 32 else { return nil }
        var result = [UInt8](repeating: 0, count: 32)
        guard crypto_scalarmult_curve25519(&result, privateKey, publicKey) == 0 else { return nil }
        return result
    }

    /// AEAD(key, counter, plaintext, authenticated data): ChaCha20-Poly1305 with a nonce of 32 zero
    /// bits and the counter in little-endian, as WireGuard defines it.
    package static func seal(key: [UInt8], counter: UInt64, _ plaintext: [UInt8], authenticating data: [UInt8]) -> [UInt8] {
        precondition(initialised && key.count == 32)
        var output = [UInt8](repeating: 0, count: plaintext.count + 16)
        var length: UInt64 = 0
        let nonce = nonce(counter)
        _ = crypto_aead_chacha20poly1305_ietf_encrypt(&output, &length, plaintext, UInt64(plaintext.count), data, UInt64(data.count), nil, nonce, key)
        return output
    }

    /// Opens what `seal` made; nil when it does not authenticate.
    package static func open(key: [UInt8], counter: UInt64, _ ciphertext: [UInt8], authenticating data: [UInt8]) -> [UInt8]? {
        precondition(initialised && key.count == 32)
        guard ciphertext.count >= 16 else { return nil }
        var output = [UInt8](repeating: 0, count: ciphertext.count - 16)
        var length: UInt64 = 0
        let nonce = nonce(counter)
        let result = crypto_aead_chacha20poly1305_ietf_decrypt(&output, &length, nil, ciphertext, UInt64(ciphertext.count), data, UInt64(data.count), nonce, key)
        return result == 0 ? output : nil
    }

    /// AEAD in place, for transport data: encrypts `buffer` where it lies and writes the 16-byte tag to
    /// `tag` (no authenticated data, WireGuard's nonce from `counter`).
    static func sealInPlace(key: UnsafeRawBufferPointer, counter: UInt64, _ buffer: UnsafeMutableRawBufferPointer,
                            tag: UnsafeMutableRawPointer) {
        var nonce = (UInt32(0), UInt32(truncatingIfNeeded: counter).littleEndian, UInt32(truncatingIfNeeded: counter >> 32).littleEndian)
        withUnsafeBytes(of: &nonce) { nonce in
            let pointer = (buffer.baseAddress ?? tag).assumingMemoryBound(to: UInt8.self)
            _ = crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                pointer, tag.assumingMemoryBound(to: UInt8.self), nil, pointer, UInt64(buffer.count), nil, 0, nil,
                nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), key.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// Opens in place what `sealInPlace` made: false (and `buffer` untouched) when it does not authenticate.
    static func openInPlace(key: UnsafeRawBufferPointer, counter: UInt64, _ buffer: UnsafeMutableRawBufferPointer,
                            tag: UnsafeRawPointer) -> Bool {
        var nonce = (UInt32(0), UInt32(truncatingIfNeeded: counter).littleEndian, UInt32(truncatingIfNeeded: counter >> 32).littleEndian)
        return withUnsafeBytes(of: &nonce) { nonce in
            let pointer = (buffer.baseAddress ?? UnsafeMutableRawPointer(mutating: tag)).assumingMemoryBound(to: UInt8.self)
            return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                pointer, nil, pointer, UInt64(buffer.count), tag.assumingMemoryBound(to: UInt8.self), nil, 0,
                nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), key.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
        }
    }

    /// XAEAD(key, nonce, plaintext, authenticated data): XChaCha20-Poly1305 (the cookie reply).
    package static func xseal(key: [UInt8], nonce: [UInt8], _ plaintext: [UInt8], authenticating data: [UInt8]) -> [UInt8] {
        precondition(initialised && key.count == 32 && nonce.count == 24)
        var output = [UInt8](repeating: 0, count: plaintext.count + 16)
        var length: UInt64 = 0
        _ = crypto_aead_xchacha20poly1305_ietf_encrypt(&output, &length, plaintext, UInt64(plaintext.count), data, UInt64(data.count), nil, nonce, key)
        return output
    }

    package static func xopen(key: [UInt8], nonce: [UInt8], _ ciphertext: [UInt8], authenticating data: [UInt8]) -> [UInt8]? {
        precondition(initialised && key.count == 32)
        guard nonce.count == 24, ciphertext.count >= 16 else { return nil }
        var output = [UInt8](repeating: 0, count: ciphertext.count - 16)
        var length: UInt64 = 0
        let result = crypto_aead_xchacha20poly1305_ietf_decrypt(&output, &length, nil, ciphertext, UInt64(ciphertext.count), data, UInt64(data.count), nonce, key)
        return result == 0 ? output : nil
    }

    /// Compares in constant time.
    package static func equal(_ left: [UInt8], _ right: [UInt8]) -> Bool {
        left.count == right.count && sodium_memcmp(left, right, left.count) == 0
    }

    private static func nonce(_ counter: UInt64) -> [UInt8] {
        [0, 0, 0, 0] + (0..<8).map { UInt8(truncatingIfNeeded: counter >> (8 * UInt64($0))) }
    }
}
