/// Every operation of the admin API under `/api/v1`.
package enum AdminRoutes {
    /// Pagination of every list: `?limit=` and `?cursor=`.
    static let page: [Route.Query] = [
        .init("limit", ["type": "integer", "minimum": 1, "maximum": 500], "items per page, 100 when left out"),
        .init("cursor", ["type": "string", "maxLength": 200], "the next_cursor of the previous page"),
    ]

    /// The create, list, show, update and delete operations of a noun.
    static func crud<Item: APIObject>(
        _ path: String, _ singular: String, _ plural: String, item: Item.Type, create: Shape, update: Shape?,
        createSummary: String? = nil, updateSummary: String? = nil, deleteSummary: String? = nil,
        createRefusals: [Int] = [409], updateRefusals: [Int] = [409], deleteRefusals: [Int] = []
    ) -> [Route] {
        var routes = [
            Route(.get, path, "List \(plural)", answer: .object(Page<Item>.shape), query: page),
            Route(.get, path + "/{id}", "Show a \(singular)", answer: .object(Item.shape)),
            Route(.post, path, createSummary ?? "Create a \(singular)", request: create, answer: .object(Item.shape), success: [201],
                  refusals: createRefusals),
            Route(.delete, path + "/{id}", deleteSummary ?? "Delete a \(singular)", answer: .nothing, success: [204], refusals: deleteRefusals),
        ]
        if let update {
            routes.append(Route(.patch, path + "/{id}", updateSummary ?? "Change a \(singular)", request: update,
                                answer: .object(Item.shape), refusals: updateRefusals))
        }
        return routes
    }

    /// The operation with this method and path (`/sites/{id}`), if the API has it.
    package static func route(_ method: Route.Method, _ path: String) -> Route? {
        all.first { $0.method == method && $0.path == path }
    }

    package static let all: [Route] = [
        Route(.get, "/account", "Show the account and its tunnel address ranges", answer: .object(Account.shape)),
        Route(.patch, "/account", "Rename the account or change its tunnel address ranges", request: UpdateAccount.shape,
              answer: .object(Account.shape), refusals: [400, 409]),
    ]
    + crud("/actors", "actor", "users, admins and service accounts", item: Actor.self, create: CreateActor.shape, update: UpdateActor.shape,
           updateSummary: "Rename, change the email of, disable or enable an actor",
           createRefusals: [400, 409], updateRefusals: [400, 409], deleteRefusals: [409])
    + crud("/groups", "group", "groups", item: Group.self, create: CreateGroup.shape, update: UpdateGroup.shape,
           updateSummary: "Rename a group", updateRefusals: [409], deleteRefusals: [409])
    + [
        Route(.get, "/groups/{id}/members", "List a group's members", answer: .object(Members.shape)),
        Route(.put, "/groups/{id}/members/{actor}", "Add an actor to a group (201, or 200 if it was a member)", answer: .nothing,
              success: [201, 200], refusals: [400]),
        Route(.delete, "/groups/{id}/members/{actor}", "Remove an actor from a group", answer: .nothing, success: [204]),
    ]
    + crud("/sites", "site", "sites", item: Site.self, create: CreateSite.shape, update: UpdateSite.shape,
           updateSummary: "Rename a site", deleteSummary: "Delete a site and its resources")
    + crud("/resources", "resource", "resources", item: Resource.self, create: CreateResource.shape, update: UpdateResource.shape,
           createSummary: "Create a resource (cidr, ip or dns) with filters like tcp:5432",
           updateSummary: "Change a resource; the result is validated as a whole", createRefusals: [400, 409], updateRefusals: [400, 409])
    + crud("/policies", "policy", "policies", item: Policy.self, create: CreatePolicy.shape, update: UpdatePolicy.shape,
           createSummary: "Allow a group to reach a resource, while its conditions hold",
           updateSummary: "Change a policy's group, resource, description, conditions or disabled flag",
           createRefusals: [400, 409], updateRefusals: [400, 409])
    + [
        Route(.get, "/access/explain",
              "Whether an actor (on a client, at a time) may reach a resource, policy by policy and condition by condition",
              answer: .object(AccessExplanation.shape), query: [
                  .init("actor", ["type": "string", "format": "uuid"], "the actor's ID (required)"),
                  .init("resource", ["type": "string", "format": "uuid"], "the resource's ID (required)"),
                  .init("client", ["type": "string", "minLength": 1, "maxLength": 200], "one of the actor's clients, by ID or name"),
                  .init("at", ["type": "string", "format": "date-time"], "another time than now"),
              ], refusals: [400]),
    ]
    + crud("/tokens", "token", "tokens (metadata only, never secrets)", item: Token.self, create: CreateToken.shape, update: nil,
           createSummary: "Create a token; the answer holds its secret, shown this once", deleteSummary: "Revoke a token",
           createRefusals: [400]).map { route in
        // The answer to a creation carries the secret.
        guard route.method == .post else { return route }
        var route = route
        route.answer = .object(CreatedToken.shape)
        return route
    }
    + [
        Route(.get, "/relays", "List the relays online now (they belong to the installation, not to an account)",
              answer: .object(Page<Relay>.shape)),
        Route(.get, "/clients", "List clients", answer: .object(Page<Device>.shape), query: page),
        Route(.get, "/clients/{id}", "Show a client", answer: .object(Device.shape)),
        Route(.put, "/clients/{id}/verified", "Mark a client verified", answer: .object(Device.shape), refusals: [400]),
        Route(.delete, "/clients/{id}", "Delete a lost client device: its authorisations go, its connection is closed", answer: .nothing,
              success: [204]),
        Route(.delete, "/clients/{id}/verified", "Mark a client not verified", answer: .object(Device.shape), refusals: [400]),
        Route(.get, "/gateways", "List gateways with their online state", answer: .object(Page<Device>.shape), query: page),
        Route(.get, "/gateways/{id}", "Show a gateway", answer: .object(Device.shape)),
        Route(.get, "/audit", "The audit log, newest first", answer: .object(Page<AuditEvent>.shape), query: [
            page[0],
            .init("cursor", ["type": "string", "pattern": "^[0-9]{1,12}(\\.[0-9]{1,9})?~[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"],
                  "the next_cursor of the previous page"),
        ]),
    ]
}
