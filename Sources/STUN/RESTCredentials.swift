import Crypto
import Foundation

/// Time-limited credentials in the "TURN REST API" form (coturn's use-auth-secret and most WebRTC
/// services): `username = "<unix-expiry>:<id>"`, `password = base64(HMAC-SHA1(secret, username))`.
package enum RESTCredentials {
    /// The password for `username` under `secret`.
    package static func password(secret: String, username: String) -> String {
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(username.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// A username valid until `expiry` (Unix seconds) for `id`.
    package static func username(expiry: Int64, id: String) -> String { "\(expiry):\(id)" }

    /// The Unix expiry a username carries, or nil if it does not start with one.
    package static func expiry(of username: String) -> Int64? {
        let digits = username.prefix { $0 != ":" }
        guard !digits.isEmpty, digits.count <= 19 else { return nil }
        return Int64(digits)
    }
}
