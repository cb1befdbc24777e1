import AdminAPI
import Foundation
import Hummingbird
import Identifiers
import Persistence

/// `/api/v1/clients` and `/api/v1/gateways`: the devices that joined, read-only but for a client's
/// verified flag, which admins set (policies with the `verified` condition then grant it).
struct DevicesController {
    let repository: any PortalRepository
    let hub: RealtimeHub
    let kind: DeviceRecord.Kind

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { request, _ in try await list(request) }
        group.get(":id") { _, context in try await show(context.parameters.id(noun: kind.rawValue)) }
        if kind == .client {
            group.put(":id/verified") { _, context in try await verify(context.parameters.id(noun: kind.rawValue), verified: true) }
            group.delete(":id/verified") { _, context in try await verify(context.parameters.id(noun: kind.rawValue), verified: false) }
            group.delete(":id") { _, context in try await delete(context.parameters.id(noun: kind.rawValue)) }
        }
    }

    func list(_ request: Request) async throws -> Response {
        let admin = try AdminSession.require()
        let page = try PageRequest(request)
        let devices = try await repository.listDevices(accountID: admin.accountID, kind: kind, after: page.cursor, limit: page.limit + 1)
        let online = await hub.online(devices.map(\.id))
        return try answer(page.page(devices, key: \.id.description) { Device($0, online: online.contains($0.id)) })
    }

    func show(_ id: DeviceID) async throws -> Response {
        let admin = try AdminSession.require()
        guard let device = try await repository.find(DeviceRecord.self, accountID: admin.accountID, id: id), device.kind == kind else {
            throw APIError.notFound("\(kind.rawValue) \(id)")
        }
        return try answer(Device(device, online: await hub.isOnline(device.id)))
    }

    /// Removes a lost client: its authorisations go with it, and its connection, if any, is closed.
    func delete(_ id: DeviceID) async throws -> Response {
        let admin = try AdminSession.require()
        guard try await repository.deleteDevice(accountID: admin.accountID, kind: kind, id: id, by: admin, now: Date()) else {
            throw APIError.notFound("\(kind.rawValue) \(id)")
        }
        return Response(status: .noContent)
    }

    func verify(_ id: DeviceID, verified: Bool) async throws -> Response {
        let admin = try AdminSession.require()
        guard let device = try await repository.updateDevice(accountID: admin.accountID, id: id, by: admin, now: Date(), { device in
            guard device.kind == .client else { throw APIError.validation("only clients are verified") }
            device.verified = verified
        }) else { throw APIError.notFound("client \(id)") }
        return try answer(Device(device, online: await hub.isOnline(device.id)))
    }
}
