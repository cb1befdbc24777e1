/// One operation of the admin API: the route table's row from which the portal's router is checked,
/// the OpenAPI document is built, and the CLI finds its paths.
package struct Route: Sendable {
    package enum Method: String, Sendable, CaseIterable {
        case get, post, put, patch, delete
    }

    /// What a successful call answers.
    package enum Answer: Sendable {
        case object(Shape)
        case nothing
    }

    /// A query parameter and the values it takes.
    package struct Query: Sendable {
        package var name: String
        package var schema: JSONValue
        package var description: String

        package init(_ name: String, _ schema: JSONValue, _ description: String) {
            self.name = name
            self.schema = schema
            self.description = description
        }
    }

    package var method: Method
    /// Under `/api/v1`, with `{id}`-style parameters (each the ID of a thing).
    package var path: String
    package var summary: String
    package var request: Shape?
    package var answer: Answer
    /// The success statuses, the first the usual one.
    package var success: [Int]
    package var query: [Query]
    /// Refusals for rules a schema cannot state (a CIDR inside the tunnel ranges, a condition's grammar,
    /// a name taken), besides the 401/403/404 every operation may give.
    package var refusals: [Int]

    package init(_ method: Method, _ path: String, _ summary: String, request: Shape? = nil, answer: Answer, success: [Int] = [200],
                 query: [Query] = [], refusals: [Int] = []) {
        self.method = method
        self.path = path
        self.summary = summary
        self.request = request
        self.answer = answer
        self.success = success
        self.query = query
        self.refusals = refusals
    }

    /// Whether the operation writes, and so takes `?dry_run=true`.
    package var acceptsDryRun: Bool { method != .get }

    /// The parameter names in the path (`id`, `actor`).
    package var parameters: [String] {
        path.split(separator: "/").filter { $0.hasPrefix("{") }.map { String($0.dropFirst().dropLast()) }
    }

    /// A stable name for the operation: `getSitesById`.
    package var operationID: String {
        method.rawValue + path.split(separator: "/").map { part in
            part.hasPrefix("{") ? "By" + part.dropFirst().dropLast().capitalized : part.capitalized
        }.joined().replacingOccurrences(of: "_", with: "")
    }
}
