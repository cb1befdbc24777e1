import Foundation

/// The OpenAPI 3.1 description of the admin API, built from the route table and the schemas its
/// bodies declare. Served at `/api/v1/openapi.json`.
package enum OpenAPIDocument {
    package static func build(_ routes: [Route] = AdminRoutes.all) -> JSONValue {
        let error: JSONValue = ["$ref": "#/components/responses/Error"]
        var paths: [String: [String: JSONValue]] = [:]
        for route in routes {
            var responses: [String: JSONValue] = [:]
            for status in ["400", "401", "403", "404", "409", "413"] { responses[status] = error }
            for status in route.success {
                switch route.answer {
                case let .object(shape) where status != 204:
                    responses["\(status)"] = ["description": "success",
                                              "content": ["application/json": ["schema": shape.schema.jsonSchema]]]
                case .object, .nothing:
                    responses["\(status)"] = ["description": "success"]
                }
            }
            if route.acceptsDryRun {
                // A dry run answers 200 with the access the write would change, whatever it answers otherwise.
                let preview = AccessPreview.schema.jsonSchema
                if case let .object(existing)? = responses["200"], case let .object(content)? = existing["content"],
                   case let .object(json)? = content["application/json"], let schema = json["schema"] {
                    responses["200"] = ["description": "success, or with dry_run the access it would change",
                                        "content": ["application/json": ["schema": ["anyOf": [schema, preview]]]]]
                } else {
                    responses["200"] = ["description": "with dry_run: the access the write would change, nothing written",
                                        "content": ["application/json": ["schema": preview]]]
                }
            }
            var operation: [String: JSONValue] = [
                "summary": .string(route.summary), "operationId": .string(route.operationID), "responses": .object(responses),
            ]
            var parameters: [JSONValue] = route.parameters.map { name in
                ["name": .string(name), "in": "path", "required": true, "schema": ["type": "string", "format": "uuid"]]
            }
            parameters += route.query.map { query in
                ["name": .string(query.name), "in": "query", "description": .string(query.description), "schema": query.schema]
            }
            if route.acceptsDryRun {
                parameters.append(["name": "dry_run", "in": "query", "schema": ["type": "boolean"],
                                   "description": "check the write and answer with the access it would grant and revoke, writing nothing"])
            }
            if !parameters.isEmpty { operation["parameters"] = .array(parameters) }
            if !route.refusals.isEmpty {
                operation["description"] = .string("Besides what the schema states, refused with "
                    + route.refusals.map(String.init).joined(separator: "/")
                    + " when the values do not fit together or with what exists (see docs/portal.md).")
            }
            if let request = route.request {
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": request.schema.jsonSchema]]]
            }
            paths["/api/v1" + route.path, default: [:]][route.method.rawValue] = .object(operation)
        }
        return [
            "openapi": "3.1.0",
            "info": ["title": "Gatehouse portal admin API", "version": "1"],
            "security": [["bearer": []]],
            "paths": .object(paths.mapValues { .object($0) }),
            "components": [
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer", "description": "an admin_api token"]],
                "responses": [
                    "Error": [
                        "description": "an error; validation errors name the field",
                        "content": ["application/json": ["schema": ErrorBody.schema.jsonSchema]],
                    ],
                ],
            ],
        ]
    }

    /// The document as served: JSON with sorted keys.
    package static let json: String = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return (try? encoder.encode(build())).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }()
}
