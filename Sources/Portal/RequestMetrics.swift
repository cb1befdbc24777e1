import Hummingbird
import Prometheus

/// Counts requests by method and status class for `/metrics`.
struct RequestMetrics<Context: RequestContext>: RouterMiddleware {
    let registry: PrometheusCollectorRegistry

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let status: Int
        let response: Response
        do {
            response = try await next(request, context)
            status = Int(response.status.code)
        } catch let error as any HTTPResponseError {
            count(request, status: Int(error.status.code))
            throw error
        } catch {
            count(request, status: 500)
            throw error
        }
        count(request, status: status)
        return response
    }

    private func count(_ request: Request, status: Int) {
        registry.makeCounter(name: "gatehouse_portal_http_requests_total",
                             labels: [("method", request.method.rawValue), ("status", "\(status / 100)xx")]).increment()
    }
}
