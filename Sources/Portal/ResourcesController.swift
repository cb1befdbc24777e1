import Foundation
import Hummingbird
import Persistence
import Policy

/// `/api/v1/resources`: what clients may reach through a site's gateways.
struct ResourcesController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.post { request, _ in try await create(request) }
        group.delete(":id") { _, context in try await delete(id: context.parameters.get("id")) }
    }

    static func representation(_ resource: ResourceRecord) -> [String: Any] {
        var value: [String: Any] = [
            "id": resource.id.uuidString.lowercased(), "name": resource.name, "type": resource.type.rawValue,
            "address": resource.address, "site_id": resource.siteID.uuidString.lowercased(),
            "filters": (try? JSONSerialization.jsonObject(with: Data(resource.filters.utf8))) ?? [],
        ]
        if let description = resource.addressDescription { value["address_description"] = description }
        if let stack = resource.ipStack { value["ip_stack"] = stack }
        return value
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        let resources = try await repository.listResources(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try json(page.body(resources.map { ($0.name, Self.representation($0)) }))
    }

    func create(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let body = try await JSONBody(request, allowed: ["name", "type", "address", "address_description", "site_id", "filters", "ip_stack"])
        let name = try body.string("name")
        let typeText = try body.string("type")
        guard let kind = ResourceAddress.Kind(rawValue: typeText) else {
            throw APIError.validation("type \"\(typeText)\" must be cidr, ip or dns", field: "type")
        }
        let address: ResourceAddress
        do {
            address = try ResourceAddress.parse(try body.string("address", maximumLength: 253), kind: kind)
        } catch {
            throw APIError.validation("\(error)", field: "address")
        }
        guard let site = UUID(uuidString: try body.string("site_id")) else { throw APIError.validation("\"site_id\" must be an ID", field: "site_id") }
        var filters: [String] = []
        if let value = body.values["filters"] {
            guard let texts = value as? [String] else { throw APIError.validation("\"filters\" must be a list of strings", field: "filters") }
            do {
                filters = try texts.map { try Filter($0).description }
            } catch {
                throw APIError.validation("\(error)", field: "filters")
            }
        }
        var stack: String?
        if kind == .dns {
            stack = body.values["ip_stack"] == nil ? "dual" : try body.string("ip_stack")
            guard ["ipv4", "ipv6", "dual"].contains(stack ?? "") else {
                throw APIError.validation("ip_stack must be ipv4, ipv6 or dual", field: "ip_stack")
            }
        } else if body.values["ip_stack"] != nil {
            throw APIError.validation("ip_stack applies to dns resources only", field: "ip_stack")
        }
        let description = body.values["address_description"] == nil ? nil : try body.string("address_description", maximumLength: 500)
        let encodedFilters = String(decoding: try JSONSerialization.data(withJSONObject: filters), as: UTF8.self)
        let record = ResourceRecord(accountID: admin.accountID, siteID: site, name: name, type: .init(rawValue: kind.rawValue) ?? .cidr,
                                    address: address.description, addressDescription: description, filters: encodedFilters,
                                    ipStack: stack, createdAt: Date())
        do {
            return try json(Self.representation(try await repository.createResource(record, by: admin, now: Date())), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a resource named \"\(name)\" exists", field: "name")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("site \(site.uuidString.lowercased())")
        }
    }

    func delete(id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(UUID.init(uuidString:)),
              try await repository.deleteResource(accountID: admin.accountID, id: uuid, by: admin, now: Date())
        else { throw APIError.notFound("resource \(id ?? "")") }
        return Response(status: .noContent)
    }
}
