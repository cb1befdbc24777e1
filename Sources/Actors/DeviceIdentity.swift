import Crypto
package import Foundation

/// Who a gateway or client is across restarts: an external ID the portal finds its device by, and its
/// WireGuard key pair. Kept in a state directory (`external_id`, and `private_key` with mode 600),
/// made at the first start.
package struct DeviceIdentity: Sendable {
    package let externalID: String
    /// The WireGuard private key (X25519, 32 bytes, base64 as `wg` writes it).
    package let privateKey: Secret<String>
    /// Its public key, base64.
    package let publicKey: String

    package static func load(orCreateIn directory: String) throws(DeviceIdentityError) -> DeviceIdentity {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .unusable(directory, "cannot create it: \(error.localizedDescription)")
        }
        let idPath = directory + "/external_id"
        let keyPath = directory + "/private_key"
        if !FileManager.default.fileExists(atPath: idPath) {
            guard write(UUID().uuidString.lowercased() + "\n", to: idPath, mode: 0o644) else { throw .unusable(idPath, "cannot write it") }
        }
        if !FileManager.default.fileExists(atPath: keyPath) {
            let key = Curve25519.KeyAgreement.PrivateKey().rawRepresentation.base64EncodedString()
            guard write(key + "\n", to: keyPath, mode: 0o600) else { throw .unusable(keyPath, "cannot write it") }
        }
        var status = stat()
        guard stat(keyPath, &status) == 0 else { throw .unusable(keyPath, "cannot read it") }
        guard status.st_mode & 0o077 == 0 else { throw .unusable(keyPath, "others may read it (mode \(String(status.st_mode & 0o777, radix: 8))); chmod 600 it") }
        guard let id = try? String(contentsOfFile: idPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              !id.isEmpty, id.utf8.count <= 200
        else { throw .unusable(idPath, "it must hold one line of 1-200 bytes") }
        guard let text = try? String(contentsOfFile: keyPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines),
              let raw = Data(base64Encoded: text), raw.count == 32,
              let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
        else { throw .unusable(keyPath, "it must hold a WireGuard private key (32 bytes, base64)") }
        return DeviceIdentity(externalID: id, privateKey: Secret(text), publicKey: key.publicKey.rawRepresentation.base64EncodedString())
    }

    /// Writes a new file with `mode` (never over an existing one).
    private static func write(_ text: String, to path: String, mode: mode_t) -> Bool {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) } == bytes.count
    }
}

package enum DeviceIdentityError: Error, CustomStringConvertible {
    case unusable(String, String)

    package var description: String {
        switch self {
        case let .unusable(path, reason): "state \(path): \(reason)"
        }
    }
}
