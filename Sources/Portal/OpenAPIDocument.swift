import Foundation

/// The OpenAPI 3.1 description of the admin API, served at `/api/v1/openapi.json`. Built from one table
/// of operations so that it stays short; a test calls every operation it lists against a live portal.
package enum OpenAPIDocument {
    package struct Operation: Sendable {
        package var method: String
        package var path: String
        package var summary: String
        /// Request body fields: name → JSON schema type ("string", "boolean", "integer", "array").
        package var body: [String: String] = [:]
        package var required: [String] = []
        /// Query parameters.
        package var query: [String] = []
        package var success: Int = 200
        /// Refusals that depend on more than one field's shape (a CIDR inside the tunnel ranges, a
        /// condition's grammar, a name taken): the codes they answer with besides the usual 401/403/404.
        package var semanticRefusals: [Int] = []

        /// The same operation, documented to refuse with `codes` what its schema cannot state.
        func refusing(_ codes: Int...) -> Operation {
            var copy = self
            copy.semanticRefusals = codes
            return copy
        }
    }

    static let list = ["limit", "cursor"]

    package static let operations: [Operation] = [
        Operation(method: "get", path: "/account", summary: "Show the account and its tunnel address ranges"),
        Operation(method: "patch", path: "/account", summary: "Rename the account or change its tunnel address ranges",
                  body: ["name": "string", "tunnel_ipv4_range": "string", "tunnel_ipv6_range": "string"]).refusing(400, 409),
        Operation(method: "get", path: "/actors", summary: "List users, admins and service accounts", query: list),
        Operation(method: "get", path: "/actors/{id}", summary: "Show an actor"),
        Operation(method: "post", path: "/actors", summary: "Create an actor", body: ["type": "string", "name": "string", "email": "string"],
                  required: ["type", "name"], success: 201).refusing(400, 409),
        Operation(method: "patch", path: "/actors/{id}", summary: "Rename, change the email of, disable or enable an actor",
                  body: ["name": "string", "email": "string", "disabled": "boolean"]).refusing(400, 409),
        Operation(method: "delete", path: "/actors/{id}", summary: "Delete an actor", success: 204).refusing(409),
        Operation(method: "get", path: "/groups", summary: "List groups", query: list),
        Operation(method: "get", path: "/groups/{id}", summary: "Show a group"),
        Operation(method: "post", path: "/groups", summary: "Create a group", body: ["name": "string"], required: ["name"], success: 201).refusing(409),
        Operation(method: "patch", path: "/groups/{id}", summary: "Rename a group", body: ["name": "string"], required: ["name"]).refusing(400, 409),
        Operation(method: "delete", path: "/groups/{id}", summary: "Delete a group", success: 204),
        Operation(method: "get", path: "/groups/{id}/members", summary: "List a group's members"),
        Operation(method: "put", path: "/groups/{id}/members/{actor}", summary: "Add an actor to a group (201, or 200 if it was a member)",
                  success: 201).refusing(400),
        Operation(method: "delete", path: "/groups/{id}/members/{actor}", summary: "Remove an actor from a group", success: 204),
        Operation(method: "get", path: "/sites", summary: "List sites", query: list),
        Operation(method: "get", path: "/sites/{id}", summary: "Show a site"),
        Operation(method: "post", path: "/sites", summary: "Create a site", body: ["name": "string"], required: ["name"], success: 201).refusing(409),
        Operation(method: "patch", path: "/sites/{id}", summary: "Rename a site", body: ["name": "string"], required: ["name"]).refusing(409),
        Operation(method: "delete", path: "/sites/{id}", summary: "Delete a site and its resources", success: 204),
        Operation(method: "get", path: "/resources", summary: "List resources", query: list),
        Operation(method: "get", path: "/resources/{id}", summary: "Show a resource"),
        Operation(method: "post", path: "/resources", summary: "Create a resource (cidr, ip or dns) with filters like tcp:5432",
                  body: ["name": "string", "type": "string", "address": "string", "address_description": "string", "site_id": "string",
                         "filters": "array", "ip_stack": "string"],
                  required: ["name", "type", "address", "site_id"], success: 201).refusing(400, 409),
        Operation(method: "patch", path: "/resources/{id}", summary: "Change a resource; the result is validated as a whole",
                  body: ["name": "string", "type": "string", "address": "string", "address_description": "string", "site_id": "string",
                         "filters": "array", "ip_stack": "string"]).refusing(400, 409),
        Operation(method: "delete", path: "/resources/{id}", summary: "Delete a resource", success: 204),
        Operation(method: "get", path: "/policies", summary: "List policies", query: list),
        Operation(method: "get", path: "/policies/{id}", summary: "Show a policy"),
        Operation(method: "post", path: "/policies",
                  summary: "Allow a group to reach a resource; conditions like source_in:10.0.0.0/8, time:MTWRF/09:00-17:00/Europe/Berlin, verified",
                  body: ["group_id": "string", "resource_id": "string", "description": "string", "disabled": "boolean", "conditions": "array"],
                  required: ["group_id", "resource_id"], success: 201).refusing(400, 409),
        Operation(method: "patch", path: "/policies/{id}", summary: "Change a policy's group, resource, description, conditions or disabled flag",
                  body: ["group_id": "string", "resource_id": "string", "description": "string", "disabled": "boolean", "conditions": "array"]).refusing(400, 409),
        Operation(method: "delete", path: "/policies/{id}", summary: "Delete a policy", success: 204),
        Operation(method: "get", path: "/access/explain",
                  summary: "Whether an actor (on a client, at a time) may reach a resource, policy by policy and condition by condition",
                  query: ["actor", "resource", "client", "at"]).refusing(400),
        Operation(method: "get", path: "/tokens", summary: "List tokens (metadata only, never secrets)", query: list),
        Operation(method: "get", path: "/tokens/{id}", summary: "Show a token (metadata only)"),
        Operation(method: "post", path: "/tokens", summary: "Create a token; the answer holds its secret, shown this once",
                  body: ["kind": "string", "actor_id": "string", "site_id": "string", "expires_in_seconds": "integer"],
                  required: ["kind"], success: 201).refusing(400),
        Operation(method: "delete", path: "/tokens/{id}", summary: "Revoke a token", success: 204),
        Operation(method: "get", path: "/clients", summary: "List clients", query: list),
        Operation(method: "get", path: "/clients/{id}", summary: "Show a client"),
        Operation(method: "put", path: "/clients/{id}/verified", summary: "Mark a client verified").refusing(400),
        Operation(method: "delete", path: "/clients/{id}/verified", summary: "Mark a client not verified").refusing(400),
        Operation(method: "get", path: "/gateways", summary: "List gateways with their online state", query: list),
        Operation(method: "get", path: "/gateways/{id}", summary: "Show a gateway"),
        Operation(method: "get", path: "/audit", summary: "The audit log, newest first", query: list),
    ]

    /// A non-blank string of at most `maximum` characters, as the server reads it (surrounding white
    /// space trimmed, so a string of only white space is blank; U+0085 counts as white space too).
    static func text(_ maximum: Int) -> [String: Any] {
        ["type": "string", "maxLength": maximum, "pattern": "[^\\s\\u0085]"]
    }

    /// The schema of a request body field, by its name (the API uses each name with one meaning).
    static func fieldSchema(_ field: String, type: String, noun: String) -> [String: Any] {
        switch field {
        case "name": return text(200)
        case "description", "address_description": return text(500)
        case "address": return text(253)
        case "email": return ["type": "string", "maxLength": 254, "pattern": "^[^@\\s\\u0085]+@[^@\\s\\u0085]+$"]
        case "type": return ["type": "string", "enum": noun == "actors" ? ["user", "admin", "service_account"] : ["cidr", "ip", "dns"]]
        case "kind": return ["type": "string", "enum": ["admin_api", "client", "gateway", "relay"]]
        case "ip_stack": return ["type": "string", "enum": ["ipv4", "ipv6", "dual"]]
        case "expires_in_seconds": return ["type": "integer", "minimum": 60, "maximum": TokensController.maximumLifetime]
        case let id where id.hasSuffix("_id"): return ["type": "string", "format": "uuid"]
        default:
            switch type {
            case "array": return ["type": "array", "items": text(500), "maxItems": 100]
            case "string": return text(200)
            default: return ["type": type]
            }
        }
    }

    static func queryParameterSchema(_ name: String, path: String) -> [String: Any] {
        switch name {
        case "limit": return ["type": "integer", "minimum": 1, "maximum": 500]
        case "cursor" where path == "/audit": return ["type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,9})?~[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"]
        case "cursor": return ["type": "string", "maxLength": 200]
        case "actor", "resource", "client": return ["type": "string", "format": "uuid"]
        case "at": return ["type": "string", "format": "date-time"]
        default: return ["type": "string"]
        }
    }

    static let json: String = {
        var paths: [String: [String: Any]] = [:]
        for operation in operations {
            var value: [String: Any] = [
                "summary": operation.summary,
                "operationId": operation.method + operation.path.split(separator: "/").map { part in
                    part.hasPrefix("{") ? "By" + part.dropFirst().dropLast().capitalized : part.capitalized
                }.joined().replacingOccurrences(of: "_", with: ""),
                "responses": [
                    "\(operation.success)": ["description": "success"],
                    "400": ["$ref": "#/components/responses/Error"], "401": ["$ref": "#/components/responses/Error"],
                    "403": ["$ref": "#/components/responses/Error"], "404": ["$ref": "#/components/responses/Error"],
                    "409": ["$ref": "#/components/responses/Error"], "413": ["$ref": "#/components/responses/Error"],
                ],
            ]
            var parameters: [[String: Any]] = operation.path.split(separator: "/").filter { $0.hasPrefix("{") }.map { part in
                ["name": String(part.dropFirst().dropLast()), "in": "path", "required": true, "schema": ["type": "string", "format": "uuid"]]
            }
            parameters += operation.query.map { ["name": $0, "in": "query", "schema": queryParameterSchema($0, path: operation.path)] }
            if !parameters.isEmpty { value["parameters"] = parameters }
            if !operation.semanticRefusals.isEmpty {
                value["description"] = "Besides what the schema states, refused with "
                    + operation.semanticRefusals.map(String.init).joined(separator: "/")
                    + " when the values do not fit together or with what exists (see docs/portal.md)."
            }
            if !operation.body.isEmpty {
                let noun = operation.path.split(separator: "/").first.map(String.init) ?? ""
                var properties: [String: Any] = [:]
                for (field, type) in operation.body { properties[field] = fieldSchema(field, type: type, noun: noun) }
                var schema: [String: Any] = ["type": "object", "properties": properties, "additionalProperties": false]
                if !operation.required.isEmpty { schema["required"] = operation.required }
                value["requestBody"] = ["required": true, "content": ["application/json": ["schema": schema]]]
            }
            paths["/api/v1" + operation.path, default: [:]][operation.method] = value
        }
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": ["title": "Gatehouse portal admin API", "version": "1"],
            "security": [["bearer": []]],
            "paths": paths,
            "components": [
                "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer", "description": "an admin_api token"]],
                "responses": [
                    "Error": [
                        "description": "an error; validation errors name the field",
                        "content": ["application/json": ["schema": [
                            "type": "object",
                            "properties": ["error": [
                                "type": "object",
                                "properties": ["code": ["type": "string"], "message": ["type": "string"], "field": ["type": "string"]],
                                "required": ["code", "message"],
                            ]],
                        ]]],
                    ],
                ],
            ],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }()
}
