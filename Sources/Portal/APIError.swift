package import Hummingbird
import AdminAPI
import Foundation

/// An admin API error: the status and `{"error": {"code": ..., "message": ..., "field": ...}}`.
package struct APIError: HTTPResponseError, Equatable {
    package let status: HTTPResponse.Status
    package let code: String
    package let message: String
    package let field: String?

    package init(_ status: HTTPResponse.Status, code: String, message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    package static func validation(_ message: String, field: String? = nil) -> APIError {
        APIError(.badRequest, code: "invalid", message: message, field: field)
    }

    package static let unauthorized = APIError(
        .unauthorized, code: "unauthorized", message: "a valid admin API token is required in Authorization: Bearer")

    package static func notFound(_ what: String) -> APIError {
        APIError(.notFound, code: "not_found", message: "\(what) not found")
    }

    /// The error as the JSON body the API answers with.
    var json: String {
        let body = (try? APICoding.encoder().encode(ErrorBody(code: code, message: message, field: field))) ?? Data()
        return String(decoding: body, as: UTF8.self)
    }

    package func response(from request: Request, context: some RequestContext) throws -> Response {
        try answer(ErrorBody(code: code, message: message, field: field), status: status)
    }
}
