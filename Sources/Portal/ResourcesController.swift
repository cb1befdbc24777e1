import Addresses
import Foundation
import Hummingbird
import Persistence
import Identifiers
import Policy

/// `/api/v1/resources`: what clients may reach through a site's gateways.
struct ResourcesController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await showOne(ResourceRecord.self, "resource", id: context.parameters.get("id"), repository: repository, Self.representation) }
        group.post { request, _ in try await create(request) }
        group.patch(":id") { request, context in try await update(request, id: context.parameters.get("id")) }
        group.delete(":id") { _, context in try await delete(id: context.parameters.get("id")) }
    }

    static func representation(_ resource: ResourceRecord) -> [String: Any] {
        var value: [String: Any] = [
            "id": resource.id.description, "name": resource.name, "type": resource.type.rawValue,
            "address": resource.address, "site_id": resource.siteID.description,
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

    static let fields: Set<String> = ["name", "type", "address", "address_description", "site_id", "filters", "ip_stack"]

    /// Checks a resource's type, address, filters and IP stack together (each depends on the type).
    static func validate(_ resource: inout ResourceRecord, reserved: [AddressRange]) throws {
        guard let kind = ResourceAddress.Kind(rawValue: resource.type.rawValue) else {
            throw APIError.validation("type \"\(resource.type.rawValue)\" must be cidr, ip or dns", field: "type")
        }
        do {
            resource.address = try ResourceAddress.parse(resource.address, kind: kind, reserved: reserved).description
        } catch {
            throw APIError.validation("\(error)", field: "address")
        }
        if kind == .dns {
            resource.ipStack = resource.ipStack ?? "dual"
            guard ["ipv4", "ipv6", "dual"].contains(resource.ipStack ?? "") else {
                throw APIError.validation("ip_stack must be ipv4, ipv6 or dual", field: "ip_stack")
            }
        } else if resource.ipStack != nil {
            throw APIError.validation("ip_stack applies to dns resources only", field: "ip_stack")
        }
    }

    /// The `filters` field, validated and in canonical form, as stored.
    static func filters(_ body: JSONBody) throws -> String? {
        guard let texts = try body.strings("filters") else { return nil }
        do {
            let filters = try texts.map { try Filter($0).description }
            return String(decoding: try JSONSerialization.data(withJSONObject: filters), as: UTF8.self)
        } catch let error as FilterError {
            throw APIError.validation("\(error)", field: "filters")
        }
    }

    static func kind(_ body: JSONBody) throws -> ResourceRecord.Kind? {
        guard let text = try body.optionalString("type") else { return nil }
        guard let kind = ResourceRecord.Kind(rawValue: text) else {
            throw APIError.validation("type \"\(text)\" must be cidr, ip or dns", field: "type")
        }
        return kind
    }

    /// The account's tunnel ranges and Gatehouse's DNS proxy ranges: no CIDR resource may overlap them.
    func reservedRanges(_ account: AccountID) async throws -> [AddressRange] {
        guard let account = try await repository.account(id: account) else { return ResourceAddress.defaultReservedRanges }
        return ([account.tunnelIPv4Range, account.tunnelIPv6Range] + ResourceAddress.dnsProxyRanges).compactMap { try? AddressRange($0) }
    }

    func create(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let body = try await JSONBody(request, allowed: Self.fields)
        let name = try body.string("name")
        guard let kind = try Self.kind(body) else { throw APIError.validation("\"type\" is required", field: "type") }
        let address = try body.string("address", maximumLength: 253)
        guard let site: SiteID = try body.id("site_id") else { throw APIError.validation("\"site_id\" is required", field: "site_id") }
        var record = ResourceRecord(accountID: admin.accountID, siteID: site, name: name, type: kind, address: address,
                                    addressDescription: try body.optionalString("address_description", maximumLength: 500),
                                    filters: try Self.filters(body) ?? "[]", ipStack: try body.optionalString("ip_stack"), createdAt: Date())
        try Self.validate(&record, reserved: try await reservedRanges(admin.accountID))
        do {
            return try json(Self.representation(try await repository.createResource(record, by: admin, now: Date())), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a resource named \"\(name)\" exists", field: "name")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("site \(site.description)")
        }
    }

    /// Changes some fields; the result is validated as a whole (a new type needs a fitting address).
    func update(_ request: Request, id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(ResourceID.init) else { throw APIError.notFound("resource \(id ?? "")") }
        let body = try await JSONBody(request, allowed: Self.fields)
        let name = try body.optionalString("name")
        let kind = try Self.kind(body)
        let address = try body.optionalString("address", maximumLength: 253)
        let site: SiteID? = try body.id("site_id")
        let description = try body.optionalString("address_description", maximumLength: 500)
        let filters = try Self.filters(body)
        let stack = try body.optionalString("ip_stack")
        let reserved = try await reservedRanges(admin.accountID)
        do {
            let updated = try await repository.updateResource(accountID: admin.accountID, id: uuid, by: admin, now: Date()) { resource in
                if let name { resource.name = name }
                if let kind {
                    if kind != resource.type, kind != .dns { resource.ipStack = nil }
                    resource.type = kind
                }
                if let address { resource.address = address }
                if let site { resource.siteID = site }
                if let description { resource.addressDescription = description }
                if let filters { resource.filters = filters }
                if let stack { resource.ipStack = stack }
                try Self.validate(&resource, reserved: reserved)
            }
            guard let updated else { throw APIError.notFound("resource \(uuid.description)") }
            return try json(Self.representation(updated))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a resource named \"\(name ?? "")\" exists", field: "name")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("site \(site?.description ?? "")")
        }
    }

    func delete(id: String?) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(ResourceID.init),
              try await repository.deleteResource(accountID: admin.accountID, id: uuid, by: admin, now: Date())
        else { throw APIError.notFound("resource \(id ?? "")") }
        return Response(status: .noContent)
    }
}
