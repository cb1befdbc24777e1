import Crypto
import Foundation

/// Token secrets: random, shown once, stored only as their SHA-256.
package enum TokenSecret {
    /// A new secret: a kind prefix (so a leaked one is recognisable) and 32 random bytes, base64url.
    package static func generate(prefix: String = "gh_admin") -> String {
        var random = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        let encoded = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return "\(prefix)_\(encoded)"
    }

    /// Lower-case hex SHA-256: what the database holds. Looking a token up by this hash compares
    /// digests, never the secret, so the comparison leaks nothing useful about the secret.
    package static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
