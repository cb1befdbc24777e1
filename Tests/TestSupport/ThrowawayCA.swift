import Foundation

/// A certificate authority made for one test, and a server certificate it signed, with openssl.
package enum ThrowawayCA {
    /// Makes `ca.pem`, `server.pem` and `server.key` (mode 600) in `directory`; the certificate names
    /// `names` (DNS names, and IP addresses written as `IP:...`).
    package static func make(in directory: URL, names: [String] = ["DNS:localhost", "IP:127.0.0.1"]) async throws
        -> (ca: String, certificate: String, key: String) {
        let path = { (name: String) in directory.appending(path: name).path }
        let extensions = path("server.ext")
        try "subjectAltName=\(names.joined(separator: ","))\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: extensions, atomically: true, encoding: .utf8)
        let commonName = names.first.map { String($0.drop { $0 != ":" }.dropFirst()) } ?? "localhost"
        for command in [
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("ca.key"),
             "-out", path("ca.pem"), "-days", "2", "-subj", "/CN=Gatehouse Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("server.key"),
             "-out", path("server.csr"), "-subj", "/CN=\(commonName)"],
            ["openssl", "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial",
             "-out", path("server.pem"), "-days", "2", "-extfile", extensions],
            ["chmod", "600", path("server.key")],
        ] {
            _ = try await Command.run(command)
        }
        return (path("ca.pem"), path("server.pem"), path("server.key"))
    }
}
