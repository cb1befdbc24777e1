import Foundation

/// One call of the portal's admin API with curl (a client nobody here wrote), from this host or from
/// inside a namespace: the status and the body, and the body as a JSON object when it is one.
package enum AdminAPIRequest {
    package static func perform(
        url: String, token: String, _ method: String, _ path: String, _ body: String = "", in namespace: NetworkNamespace? = nil,
        caFile: String? = nil
    ) async throws -> (status: Int, text: String, object: [String: Any]) {
        var command = ["curl", "-s", "-X", method, "-w", "\n%{http_code}", "-H", "Authorization: Bearer \(token)", "-H",
                       "Content-Type: application/json", "\(url)/api/v1\(path)"]
        if !body.isEmpty { command += ["--data-binary", body] }
        if let caFile { command += ["--cacert", caFile] }
        let output = if let namespace { try await namespace.exec(command).standardOutput } else { try await Command.run(command).standardOutput }
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let text = lines.dropLast().joined(separator: "\n")
        let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
        return (Int(lines.last ?? "") ?? 0, text, object)
    }
}
