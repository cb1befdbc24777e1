import AdminAPI
import Hummingbird

/// A method that a documented path does not have is 405 with the methods it has (RFC 9110 section
/// 15.5.6), not the router's 404: the path exists. Paths come from the route table.
struct MethodNotAllowed<Context: RequestContext>: RouterMiddleware {
    /// Each documented path as its segments ("{id}" matches any one segment), with its methods.
    static var paths: [(segments: [Substring], methods: [String])] {
        Dictionary(grouping: AdminRoutes.all, by: \.path).map { path, routes in
            (("/api/v1" + path).split(separator: "/"), routes.map { $0.method.rawValue.uppercased() }.sorted())
        }
    }

    private let paths = Self.paths

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let segments = request.uri.path.split(separator: "/")
            guard let match = paths.first(where: { path in
                path.segments.count == segments.count
                    && zip(path.segments, segments).allSatisfy { template, actual in template.hasPrefix("{") || template == actual }
            }), !match.methods.contains(request.method.rawValue) else { throw error }
            let allow = match.methods.joined(separator: ", ")
            var response = try answer(ErrorBody(code: "method_not_allowed", message: "\(request.method.rawValue) is not allowed here; allowed: \(allow)"),
                                      status: .methodNotAllowed)
            response.headers[.allow] = allow
            return response
        }
    }
}
