import AdminAPI
import Addresses
import Foundation
import Hummingbird
import Identifiers
import Persistence

/// `/api/v1/account`: its name and tunnel address ranges.
struct AccountController {
    let repository: any PortalRepository

    func add<Context: RequestContext>(to group: RouterGroup<Context>) {
        group.get { _, _ in try await show() }
        group.patch { request, _ in try await update(request.decode(UpdateAccount.self)) }
    }

    func show() async throws -> Response {
        let admin = try AdminSession.require()
        guard let account = try await repository.account(id: admin.accountID) else { throw APIError.notFound("account") }
        return try answer(Account(account))
    }

    /// The tunnel ranges are where the portal allocates client and gateway tunnel addresses: an
    /// operator whose network already uses 100.64.0.0/10 chooses another.
    func update(_ body: UpdateAccount) async throws -> Response {
        let admin = try AdminSession.require()
        let ipv4 = try body.tunnelIPv4Range.map { try Self.range($0, family: 4, prefixes: 8...24, field: "tunnel_ipv4_range") }
        let ipv6 = try body.tunnelIPv6Range.map { try Self.range($0, family: 6, prefixes: 32...96, field: "tunnel_ipv6_range") }
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
            if let name = body.name { account.name = name }
            if let ipv4 { account.tunnelIPv4Range = ipv4 }
            if let ipv6 { account.tunnelIPv6Range = ipv6 }
        }) else { throw APIError.notFound("account") }
        return try answer(Account(account))
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
}
