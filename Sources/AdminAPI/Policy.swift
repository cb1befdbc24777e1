package import Identifiers

/// Lets a group reach a resource, while its conditions hold.
package struct Policy: APIObject, Equatable {
    package var id: PolicyID
    package var groupID: GroupID
    package var resourceID: ResourceID
    package var disabled: Bool
    package var conditions: [String]
    package var description: String?

    package init(id: PolicyID, groupID: GroupID, resourceID: ResourceID, disabled: Bool, conditions: [String], description: String?) {
        self.id = id
        self.groupID = groupID
        self.resourceID = resourceID
        self.disabled = disabled
        self.conditions = conditions
        self.description = description
    }

    enum CodingKeys: String, CodingKey {
        case id, disabled, conditions, description
        case groupID = "group_id"
        case resourceID = "resource_id"
    }

    static let fields: [ObjectSchema.Field] = [
        .init("group_id", .id(noun: "group")), .init("resource_id", .id(noun: "resource")),
        .init("description", .text(maximum: 500)), .init("disabled", .boolean),
        .init("conditions", .list(of: .text(maximum: 500), maximum: 100),
              description: "all must hold: source_in:10.0.0.0/8, time:MTWRF/09:00-17:00/Europe/Berlin, verified"),
    ]

    package static let schema = ObjectSchema([.init("id", .id(noun: "policy"), required: true)] + fields.map { field in
        var field = field
        field.required = field.name != "description"
        field.description = nil
        return field
    })
}

/// `POST /policies`: one policy per group and resource.
package struct CreatePolicy: APIObject, Equatable {
    package var groupID: GroupID
    package var resourceID: ResourceID
    package var description: String?
    package var disabled: Bool?
    package var conditions: [String]?

    package init(groupID: GroupID, resourceID: ResourceID, description: String? = nil, disabled: Bool? = nil, conditions: [String]? = nil) {
        self.groupID = groupID
        self.resourceID = resourceID
        self.description = description
        self.disabled = disabled
        self.conditions = conditions
    }

    enum CodingKeys: String, CodingKey {
        case description, disabled, conditions
        case groupID = "group_id"
        case resourceID = "resource_id"
    }

    package static let schema = ObjectSchema(Policy.fields.map { field in
        var field = field
        field.required = ["group_id", "resource_id"].contains(field.name)
        return field
    })
}

/// `PATCH /policies/{id}`: what is given changes.
package struct UpdatePolicy: APIObject, Equatable {
    package var groupID: GroupID?
    package var resourceID: ResourceID?
    package var description: String?
    package var disabled: Bool?
    package var conditions: [String]?

    package init(groupID: GroupID? = nil, resourceID: ResourceID? = nil, description: String? = nil, disabled: Bool? = nil,
                 conditions: [String]? = nil) {
        self.groupID = groupID
        self.resourceID = resourceID
        self.description = description
        self.disabled = disabled
        self.conditions = conditions
    }

    enum CodingKeys: String, CodingKey {
        case description, disabled, conditions
        case groupID = "group_id"
        case resourceID = "resource_id"
    }

    package static let schema = ObjectSchema(Policy.fields)
}
