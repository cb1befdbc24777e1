package import ControlProtocol
import Crypto
package import Foundation
package import Identifiers

/// The portal's secret for flows, and what it derives from it: each flow's WireGuard preshared key
/// and both ends' ICE credentials. Derived, not drawn, so nothing secret is stored per flow and a
/// gateway that reconnects (or a portal that restarts) hands out the same keys for the same flow.
package struct FlowSecrets: Sendable {
    /// The secret's 32 bytes.
    private let bytes: Data

    package init(bytes: Data) {
        self.bytes = bytes
    }

    /// A secret held only in memory (tests, and a portal without a data directory).
    package static func ephemeral() -> FlowSecrets {
        FlowSecrets(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) })
    }

    /// The secret in `path`, made (32 random bytes, hex, mode 600) if the file does not exist. A file
    /// others may read, or that does not hold a secret, is refused rather than used.
    package static func load(orCreateAt path: String) throws -> FlowSecrets {
        if !FileManager.default.fileExists(atPath: path) {
            let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
            let text = bytes.map { String(format: "%02x", $0) }.joined() + "\n"
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if descriptor >= 0 {
                defer { close(descriptor) }
                let written = text.utf8CString.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count - 1) }
                guard written == text.utf8.count else { throw FlowSecretError.unwritable(path, String(cString: strerror(errno))) }
            } else if errno != EEXIST {
                throw FlowSecretError.unwritable(path, String(cString: strerror(errno)))
            }
        }
        var status = stat()
        guard stat(path, &status) == 0 else { throw FlowSecretError.unreadable(path, String(cString: strerror(errno))) }
        guard status.st_mode & 0o077 == 0 else { throw FlowSecretError.exposed(path, mode: Int(status.st_mode & 0o777)) }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw FlowSecretError.unreadable(path, "not UTF-8 text") }
        let hex = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard hex.count == 64, let bytes = Self.bytes(hex) else { throw FlowSecretError.malformed(path) }
        return FlowSecrets(bytes: bytes)
    }

    /// The WireGuard preshared key of a client's tunnel to a gateway (32 bytes, base64, as `wg` takes
    /// it): one per client and gateway, not per flow, since WireGuard has one peer per pair and every
    /// flow of the client through that gateway rides the same tunnel.
    package func presharedKey(client: DeviceID, gateway: DeviceID) -> String {
        Data(derive("preshared-key", "\(client) \(gateway)")).base64EncodedString()
    }

    /// One end's ICE credentials for the flow: a 16-character username fragment and a 32-character
    /// password (RFC 8445 asks at least 4 and 22), from the ICE character set.
    package func ice(_ flow: AuthorizationID, for end: Peer) -> ICECredentials {
        let bytes = derive("ice-\(end.rawValue)", flow)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        let text = String(bytes.map { alphabet[Int($0 & 63)] })
        return ICECredentials(username: String(text.prefix(16)), password: String(text.suffix(16)) + String(text.prefix(16).reversed()))
    }

    private func derive(_ label: String, _ subject: some CustomStringConvertible) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data("gatehouse \(label) \(subject)".utf8), using: SymmetricKey(data: bytes)))
    }

    private static func bytes(_ hex: String) -> Data? {
        var data = Data(capacity: hex.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            data.append(byte)
            index = next
        }
        return data
    }
}

package enum FlowSecretError: Error, CustomStringConvertible {
    case unwritable(String, String)
    case unreadable(String, String)
    case exposed(String, mode: Int)
    case malformed(String)

    package var description: String {
        switch self {
        case let .unwritable(path, reason): "cannot create the portal secret \(path): \(reason)"
        case let .unreadable(path, reason): "cannot read the portal secret \(path): \(reason)"
        case let .exposed(path, mode): "the portal secret \(path) may be read by others (mode \(String(mode, radix: 8))): chmod 600 it"
        case let .malformed(path): "the portal secret \(path) is not 64 hexadecimal digits; remove it to have a new one made (every flow's keys change)"
        }
    }
}
