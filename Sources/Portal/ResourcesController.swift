import AdminAPI
import Addresses
import Foundation
import Hummingbird
import Identifiers
import Persistence
import Policy

/// `/api/v1/resources`: what clients may reach through a site's gateways.
struct ResourcesController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await show(context.parameters.id()) }
        group.post { request, _ in try await create(request.decode(CreateResource.self)) }
        group.patch(":id") { request, context in try await update(context.parameters.id(), request.decode(UpdateResource.self)) }
        group.delete(":id") { _, context in try await delete(context.parameters.id()) }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try PageRequest(request)
        let resources = try await repository.listResources(accountID: admin.accountID, after: page.cursor, limit: page.limit + 1)
        return try answer(page.page(resources, key: \.name, Resource.init))
    }

    func show(_ id: ResourceID) async throws -> Response {
        let admin = try AdminSession.require()
        guard let resource = try await repository.resource(accountID: admin.accountID, id: id) else { throw APIError.notFound("resource \(id)") }
        return try answer(Resource(resource))
    }

    /// Checks a resource's type, address and IP stack together (each depends on the type) and puts the
    /// address in canonical form.
    static func validate(_ resource: inout ResourceRecord, reserved: [AddressRange]) throws {
        let kind: ResourceAddress.Kind = switch resource.type {
        case .cidr: .cidr
        case .ip: .ip
        case .dns: .dns
        }
        do {
            resource.address = try ResourceAddress.parse(resource.address, kind: kind, reserved: reserved).description
        } catch {
            throw APIError.validation("\(error)", field: "address")
        }
        if kind == .dns {
            resource.ipStack = resource.ipStack ?? Resource.IPStack.dual.rawValue
        } else if resource.ipStack != nil {
            throw APIError.validation("ip_stack applies to dns resources only", field: "ip_stack")
        }
    }

    /// Filters in canonical form, as stored (a JSON list).
    static func filters(_ texts: [String]) throws -> String {
        do {
            let filters = try texts.map { try Filter($0).description }
            return String(decoding: try JSONEncoder().encode(filters), as: UTF8.self)
        } catch let error as FilterError {
            throw APIError.validation("\(error)", field: "filters")
        }
    }

    static func kind(_ kind: Resource.Kind) -> ResourceRecord.Kind {
        switch kind {
        case .cidr: .cidr
        case .ip: .ip
        case .dns: .dns
        }
    }

    /// The account's tunnel ranges and Gatehouse's DNS proxy ranges: no CIDR resource may overlap them.
    func reservedRanges(_ account: AccountID) async throws -> [AddressRange] {
        guard let account = try await repository.account(id: account) else { return ResourceAddress.defaultReservedRanges }
        return ([account.tunnelIPv4Range, account.tunnelIPv6Range] + ResourceAddress.dnsProxyRanges).compactMap { try? AddressRange($0) }
    }

    func create(_ body: CreateResource) async throws -> Response {
        let admin = try AdminSession.require()
        var record = ResourceRecord(accountID: admin.accountID, siteID: body.siteID, name: body.name, type: Self.kind(body.type),
                                    address: body.address, addressDescription: body.addressDescription,
                                    filters: try Self.filters(body.filters ?? []), ipStack: body.ipStack?.rawValue, createdAt: Date())
        try Self.validate(&record, reserved: try await reservedRanges(admin.accountID))
        do {
            return try answer(Resource(try await repository.createResource(record, by: admin, now: Date())), status: .created)
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a resource named \"\(body.name)\" exists", field: "name")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("site \(body.siteID)")
        }
    }

    /// Changes what is given; the result is validated as a whole (a new type needs a fitting address).
    func update(_ id: ResourceID, _ body: UpdateResource) async throws -> Response {
        let admin = try AdminSession.require()
        let filters = try body.filters.map(Self.filters)
        let reserved = try await reservedRanges(admin.accountID)
        do {
            let updated = try await repository.updateResource(accountID: admin.accountID, id: id, by: admin, now: Date()) { resource in
                if let name = body.name { resource.name = name }
                if let type = body.type {
                    let kind = Self.kind(type)
                    if kind != resource.type, kind != .dns { resource.ipStack = nil }
                    resource.type = kind
                }
                if let address = body.address { resource.address = address }
                if let site = body.siteID { resource.siteID = site }
                if let description = body.addressDescription { resource.addressDescription = description }
                if let filters { resource.filters = filters }
                if let stack = body.ipStack { resource.ipStack = stack.rawValue }
                try Self.validate(&resource, reserved: reserved)
            }
            guard let updated else { throw APIError.notFound("resource \(id)") }
            return try answer(Resource(updated))
        } catch RepositoryError.conflict {
            throw APIError(.conflict, code: "conflict", message: "a resource named \"\(body.name ?? "")\" exists", field: "name")
        } catch RepositoryError.missingReference {
            throw APIError.notFound("site \(body.siteID?.description ?? "")")
        }
    }

    func delete(_ id: ResourceID) async throws -> Response {
        let admin = try AdminSession.require()
        guard try await repository.deleteResource(accountID: admin.accountID, id: id, by: admin, now: Date()) else {
            throw APIError.notFound("resource \(id)")
        }
        return Response(status: .noContent)
    }
}
