import AdminAPI
import ArgumentParser
import Foundation

/// `--dry-run` on every admin write: the portal checks the write, rolls it back, and answers with the
/// access it would grant and revoke.
struct DryRunOption: ParsableArguments {
    @Flag(help: "Write nothing: show which clients (and whose) would gain or lose which resources, through which policy.")
    var dryRun = false

    /// Sends the write as a dry run and prints what it would change.
    func preview(_ client: AdminClient, _ method: Route.Method, _ path: String, parameters: [String: String] = [:],
                 body: (some Encodable)?, json: Bool) async throws {
        let answer: AccessPreview = if let body {
            try await client.send(method, path, parameters: parameters, query: "?dry_run=true", body: body, as: AccessPreview.self)
        } else {
            try await client.send(method, path, parameters: parameters, query: "?dry_run=true", as: AccessPreview.self)
        }
        if json { return try printJSON(answer) }
        print(Self.describe(answer))
    }

    func preview(_ client: AdminClient, _ method: Route.Method, _ path: String, parameters: [String: String] = [:], json: Bool) async throws {
        try await preview(client, method, path, parameters: parameters, body: nil as String?, json: json)
    }

    /// The preview in lines an operator reads: + gains, - losses, ~ changes, ! what gateways would drop.
    static func describe(_ preview: AccessPreview) -> String {
        func who(_ access: AccessPreview.Access) -> String {
            access.actor.map { "\(access.client) (\($0))" } ?? access.client
        }
        func policies(_ access: AccessPreview.Access, _ how: String) -> String {
            access.policies.isEmpty ? "" : " \(how) policy \(access.policies.map(\.description).joined(separator: ", "))"
        }
        var lines = ["dry run: nothing was written"]
        lines += preview.gains.map { "+ \(who($0)) gains \($0.resource ?? $0.resourceID.description)\(policies($0, "through"))" }
        lines += preview.losses.map { "- \(who($0)) loses \($0.resource ?? $0.resourceID.description)\(policies($0, "granted until now by"))" }
        lines += preview.updates.map { "~ \(who($0)) sees \($0.resource ?? $0.resourceID.description) change\(policies($0, "through"))" }
        lines += preview.rejectedAuthorizations.map {
            "! gateway \($0.gatewayID) drops client \($0.clientID?.description ?? "-")'s authorisation for resource \($0.resourceID)"
        }
        lines += preview.filterUpdates.map { "! gateway \($0.gatewayID) takes new filters for resource \($0.resourceID)" }
        if lines.count == 1 { lines.append("no client's access would change") }
        return lines.joined(separator: "\n")
    }
}
