import AdminAPI
import Foundation
import Testing

/// What the portal refuses before decoding a body, and the words it uses: the same schema the
/// document prints.
@Suite struct SchemaTests {
    func check(_ schema: ObjectSchema, _ json: String) throws -> [String: JSONValue] {
        guard case let .object(members) = try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)) else { return [:] }
        return try schema.check(members)
    }

    func refusal(_ schema: ObjectSchema, _ json: String) throws -> SchemaViolation? {
        do {
            _ = try check(schema, json)
            return nil
        } catch let violation as SchemaViolation {
            return violation
        }
    }

    @Test func refusalsNameTheFieldAndSayWhatFits() throws {
        let cases: [(ObjectSchema, String, String, String)] = [
            (CreateSite.schema, #"{}"#, "name", #""name" is required"#),
            (CreateSite.schema, #"{"name": "  "}"#, "name", #""name" must be 1-200 characters"#),
            (CreateSite.schema, #"{"name": "\#(String(repeating: "x", count: 201))"}"#, "name", #""name" must be 1-200 characters"#),
            (CreateSite.schema, #"{"name": 7}"#, "name", #""name" must be a string"#),
            (CreateSite.schema, #"{"name": null}"#, "name", #""name" must be a string"#),
            (CreateSite.schema, #"{"name": "hq", "colour": "red"}"#, "colour", #"unknown field "colour""#),
            (CreateActor.schema, #"{"type": "robot", "name": "x"}"#, "type", #"type "robot" must be user, admin or service_account"#),
            (CreateActor.schema, #"{"type": "user", "name": "x", "email": "not-an-email"}"#, "email", #"email "not-an-email" is not an email address"#),
            (UpdateActor.schema, #"{"disabled": 1}"#, "disabled", #""disabled" must be true or false"#),
            (CreateToken.schema, #"{"kind": "client", "expires_in_seconds": 5}"#, "expires_in_seconds",
             "expires_in_seconds must be a whole number from 60 to \(CreateToken.maximumLifetime)"),
            (CreateToken.schema, #"{"kind": "client", "expires_in_seconds": true}"#, "expires_in_seconds",
             "expires_in_seconds must be a whole number from 60 to \(CreateToken.maximumLifetime)"),
            (CreateToken.schema, #"{"kind": "client", "actor_id": "nobody"}"#, "actor_id", #""actor_id" must be the ID of a actor"#),
            (CreatePolicy.schema, #"{"group_id": "8c1e5d43-8a4e-4c1b-a9f4-2a0d6f1c2b3e", "resource_id": "8c1e5d43-8a4e-4c1b-a9f4-2a0d6f1c2b3f", "conditions": [7]}"#,
             "conditions", #""conditions" must be a string"#),
            (UpdateResource.schema, #"{"filters": "tcp:22"}"#, "filters", #""filters" must be a list"#),
            (UpdateResource.schema, "{\"filters\": [\(Array(repeating: "\"icmp\"", count: 101).joined(separator: ","))]}", "filters",
             #""filters" may hold at most 100 items"#),
        ]
        for (schema, json, field, message) in cases {
            let violation = try refusal(schema, json)
            #expect(violation == SchemaViolation(message: message, field: field), "\(json): \(String(describing: violation))")
        }
    }

    @Test func whatFitsComesBackAsTheServerReadsIt() throws {
        let site = try check(CreateSite.schema, #"{"name": "  hq\u0085 "}"#)
        #expect(site == ["name": "hq"], "surrounding white space is trimmed, U+0085 too")
        let token = try check(CreateToken.schema, #"{"kind": "gateway", "site_id": "8C1E5D43-8A4E-4C1B-A9F4-2A0D6F1C2B3E"}"#)
        #expect(token["site_id"] == "8c1e5d43-8a4e-4c1b-a9f4-2a0d6f1c2b3e", "IDs in either case, read as lower case")
        #expect(try check(UpdateActor.schema, #"{}"#).isEmpty, "an update may name nothing")
    }
}
