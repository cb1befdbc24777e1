import AdminAPI
import Foundation
import Testing

/// The document is made from the route table and the types' schemas, and states what they state.
@Suite struct OpenAPIDocumentTests {
    @Test func everyRouteIsAnOperationWithItsSchemas() throws {
        guard case let .object(document) = OpenAPIDocument.build(), case let .object(paths)? = document["paths"] else {
            Issue.record("no paths")
            return
        }
        var operationIDs = Set<String>()
        for route in AdminRoutes.all {
            guard case let .object(methods)? = paths["/api/v1" + route.path], case let .object(operation)? = methods[route.method.rawValue] else {
                Issue.record("\(route.method) \(route.path) is not in the document")
                continue
            }
            #expect(operationIDs.insert(route.operationID).inserted, "operationId \(route.operationID) is unique")
            if let request = route.request {
                let schema = try #require(operation["requestBody"].flatMap { body -> JSONValue? in
                    guard case let .object(body) = body, case let .object(content)? = body["content"],
                          case let .object(json)? = content["application/json"] else { return nil }
                    return json["schema"]
                })
                #expect(schema == request.schema.jsonSchema)
                guard case let .object(members) = schema else { continue }
                #expect(members["additionalProperties"] == false, "\(route.path): unknown fields are refused")
            }
            guard case let .object(responses)? = operation["responses"] else { continue }
            for status in route.success {
                #expect(responses["\(status)"] != nil, "\(route.method) \(route.path) documents its \(status)")
            }
            if case let .object(shape) = route.answer, route.success.first != 204 {
                #expect(String(describing: responses["\(route.success[0])"]).contains("schema"), "\(route.path) documents its answer: \(shape.name)")
            }
        }
        let operations = paths.values.reduce(0) { count, methods in
            guard case let .object(methods) = methods else { return count }
            return count + methods.count
        }
        #expect(operations == AdminRoutes.all.count, "nothing in the document beyond the table")
    }

    @Test func limitsTheServerEnforcesAreStated() throws {
        let json = OpenAPIDocument.json
        #expect(json.contains(#""maxLength" : 200"#), "names")
        #expect(json.contains(#""minimum" : 60"#), "token lifetimes")
        #expect(json.contains(#""maxItems" : 100"#), "filters and conditions")
        #expect(json.contains(#""service_account""#), "actor types as an enum")
        #expect(json.contains(#""format" : "uuid""#), "IDs")
    }
}
