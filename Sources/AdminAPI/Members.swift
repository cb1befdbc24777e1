/// `GET /groups/{id}/members`.
package struct Members: APIObject, Equatable {
    package var data: [Actor]

    package init(data: [Actor]) {
        self.data = data
    }

    package static let schema = ObjectSchema([.init("data", .list(of: .object(Actor.schema), maximum: nil), required: true)])
}
