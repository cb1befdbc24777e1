import Addresses
import Foundation
import Hummingbird
import Persistence
import Identifiers
import Policy

/// `/api/v1/account` (name and tunnel address ranges), the read-only lists of clients and gateways
/// (with a client's verified flag, which admins set), and the audit log.
struct AccountController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(account: RouterGroup<Context>, clients: RouterGroup<Context>, gateways: RouterGroup<Context>,
                                      audit: RouterGroup<Context>) {
        account.get { _, _ in try await show() }
        account.patch { request, _ in try await update(request) }
        clients.get { request, _ in try await devices(request, kind: .client) }
        clients.get(":id") { _, context in try await device(id: context.parameters.get("id"), kind: .client) }
        gateways.get(":id") { _, context in try await device(id: context.parameters.get("id"), kind: .gateway) }
        clients.put(":id/verified") { _, context in try await verify(id: context.parameters.get("id"), verified: true) }
        clients.delete(":id/verified") { _, context in try await verify(id: context.parameters.get("id"), verified: false) }
        gateways.get { request, _ in try await devices(request, kind: .gateway) }
        audit.get { request, _ in try await auditLog(request) }
    }

    static func representation(_ account: AccountRecord) -> [String: Any] {
        ["id": account.id.description, "name": account.name, "slug": account.slug,
         "tunnel_ipv4_range": account.tunnelIPv4Range, "tunnel_ipv6_range": account.tunnelIPv6Range]
    }

    func show() async throws -> Response {
        let admin = try AdminSession.require()
        guard let account = try await repository.account(id: admin.accountID) else { throw APIError.notFound("account") }
        return try json(Self.representation(account))
    }

    /// The tunnel ranges are where the portal allocates client and gateway tunnel addresses: an
    /// operator whose network already uses 100.64.0.0/10 chooses another.
    func update(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let body = try await JSONBody(request, allowed: ["name", "tunnel_ipv4_range", "tunnel_ipv6_range"])
        let name = try body.optionalString("name")
        let ipv4 = try body.optionalString("tunnel_ipv4_range").map { try Self.range($0, family: 4, prefixes: 8...24, field: "tunnel_ipv4_range") }
        let ipv6 = try body.optionalString("tunnel_ipv6_range").map { try Self.range($0, family: 6, prefixes: 32...96, field: "tunnel_ipv6_range") }
        // Resources may not overlap the tunnel ranges: refuse a range that existing resources are in.
        for range in [ipv4, ipv6].compactMap({ $0 }).compactMap({ try? AddressRange($0) }) {
            let resources = try await repository.listResources(accountID: admin.accountID, after: nil, limit: Int.max)
            for resource in resources where resource.type != .dns {
                guard let target = try? AddressRange(resource.address), target.overlaps(range) else { continue }
                throw APIError(.conflict, code: "conflict",
                               message: "resource \"\(resource.name)\" (\(resource.address)) is inside \(range); change or delete it first",
                               field: range.network.bitWidth == 32 ? "tunnel_ipv4_range" : "tunnel_ipv6_range")
            }
        }
        guard let account = try await repository.updateAccount(id: admin.accountID, by: admin, now: Date(), { account in
            if let name { account.name = name }
            if let ipv4 { account.tunnelIPv4Range = ipv4 }
            if let ipv6 { account.tunnelIPv6Range = ipv6 }
        }) else { throw APIError.notFound("account") }
        return try json(Self.representation(account))
    }

    private static func range(_ text: String, family: Int, prefixes: ClosedRange<Int>, field: String) throws -> String {
        let range: AddressRange
        do {
            range = try AddressRange(text)
        } catch {
            throw APIError.validation("\(field) \"\(text)\": \(error)", field: field)
        }
        guard range.network.bitWidth == (family == 4 ? 32 : 128) else {
            throw APIError.validation("\(field) \"\(text)\" must be an IPv\(family) network", field: field)
        }
        guard prefixes.contains(range.prefixLength) else {
            throw APIError.validation("\(field) \"\(text)\": the prefix length must be \(prefixes.lowerBound)-\(prefixes.upperBound)", field: field)
        }
        return range.description
    }

    static func representation(_ device: DeviceRecord) -> [String: Any] {
        let dates = ISO8601DateFormatter()
        var value: [String: Any] = [
            "id": device.id.description, "kind": device.kind.rawValue, "name": device.name, "external_id": device.externalID,
            "public_key": device.publicKey, "tunnel_ipv4": device.tunnelIPv4, "tunnel_ipv6": device.tunnelIPv6,
        ]
        if device.kind == .client { value["verified"] = device.verified }
        if let actor = device.actorID { value["actor_id"] = actor.description }
        if let site = device.siteID { value["site_id"] = site.description }
        if let version = device.version { value["version"] = version }
        if let seen = device.lastSeenAt { value["last_seen_at"] = dates.string(from: seen) }
        if let address = device.lastSeenAddress { value["last_seen_address"] = address }
        // Online state comes with the realtime API; until then a device is online when it was seen in
        // the last minute.
        value["online"] = device.lastSeenAt.map { Date().timeIntervalSince($0) < 60 } ?? false
        return value
    }

    func devices(_ request: Request, kind: DeviceRecord.Kind) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        let devices = try await repository.listDevices(accountID: admin.accountID, kind: kind, after: page.cursor, limit: page.limit + 1)
        return try json(page.body(devices.map { ($0.id.description, Self.representation($0)) }))
    }

    /// Marks a client verified (policies with the `verified` condition then grant it) or not.
    func verify(id: String?, verified: Bool) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(DeviceID.init),
              let device = try await repository.updateDevice(accountID: admin.accountID, id: uuid, by: admin, now: Date(), { device in
                  guard device.kind == .client else { throw APIError.validation("only clients are verified") }
                  device.verified = verified
              })
        else { throw APIError.notFound("client \(id ?? "")") }
        return try json(Self.representation(device))
    }

    func device(id: String?, kind: DeviceRecord.Kind) async throws -> Response {
        let admin = try AdminSession.require()
        guard let uuid = id.flatMap(DeviceID.init),
              let device = try await repository.find(DeviceRecord.self, accountID: admin.accountID, id: uuid), device.kind == kind
        else { throw APIError.notFound("\(kind.rawValue) \(id ?? "")") }
        return try json(Self.representation(device))
    }

    func auditLog(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try Page(request)
        var cursor: AuditCursor?
        if let text = page.cursor {
            guard let parsed = AuditCursor(text) else { throw APIError.validation("cursor \"\(text)\" is not one this API gave out", field: "cursor") }
            cursor = parsed
        }
        let events = try await repository.auditEvents(accountID: admin.accountID, after: cursor, limit: page.limit + 1)
        let dates = ISO8601DateFormatter()
        return try json(page.body(events.map { event in
            var value: [String: Any] = [
                "id": event.id.description, "action": event.action, "subject_type": event.subjectType,
                "subject_id": event.subjectID, "at": dates.string(from: event.at),
            ]
            if let actor = event.actorID { value["actor_id"] = actor.description }
            if let name = event.actorName { value["actor_name"] = name }
            if let before = event.before { value["before"] = (try? JSONSerialization.jsonObject(with: Data(before.utf8))) ?? before }
            if let after = event.after { value["after"] = (try? JSONSerialization.jsonObject(with: Data(after.utf8))) ?? after }
            return (AuditCursor(at: event.at, id: event.id).text, value)
        }))
    }
}
