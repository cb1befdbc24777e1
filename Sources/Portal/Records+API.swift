import AdminAPI
import Foundation
import Identifiers
import Persistence

// The answers of the admin API made from the stored rows.

extension Site {
    init(_ record: SiteRecord) {
        self.init(id: record.id, name: record.name, createdAt: record.createdAt)
    }
}

extension Group {
    init(_ record: GroupRecord) {
        self.init(id: record.id, name: record.name, createdAt: record.createdAt)
    }
}

extension AdminAPI.Actor {
    init(_ record: ActorRecord) {
        let kind: Kind = switch record.type {
        case .user: .user
        case .admin: .admin
        case .serviceAccount: .serviceAccount
        }
        self.init(id: record.id, type: kind, name: record.name, email: record.email, disabled: record.disabled)
    }
}

extension Resource {
    init(_ record: ResourceRecord) {
        let kind: Kind = switch record.type {
        case .cidr: .cidr
        case .ip: .ip
        case .dns: .dns
        }
        self.init(id: record.id, name: record.name, type: kind, address: record.address, siteID: record.siteID,
                  filters: Self.list(record.filters), addressDescription: record.addressDescription,
                  ipStack: record.ipStack.flatMap(IPStack.init(rawValue:)))
    }

    /// A stored JSON list of strings (filters, conditions); an unreadable one reads as empty.
    package static func list(_ json: String) -> [String] {
        if json == "[]" { return [] }
        return simpleList(Array(json.utf8)) ?? (try? JSONDecoder().decode([String].self, from: Data(json.utf8))) ?? []
    }

    /// A list as the portal stores it, `["tcp:443","icmp"]` (no spaces, nothing escaped), read byte by
    /// byte: a JSONDecoder per row was a tenth of a list read's time. Nil for anything else.
    static func simpleList(_ bytes: [UInt8]) -> [String]? {
        let quote = UInt8(ascii: "\""), comma = UInt8(ascii: ",")
        guard bytes.count >= 4, bytes[0] == UInt8(ascii: "["), bytes[1] == quote, bytes[bytes.count - 2] == quote,
              bytes[bytes.count - 1] == UInt8(ascii: "]"), !bytes.contains(UInt8(ascii: "\\")) else { return nil }
        var items: [String] = []
        var start = 2
        var index = 2
        let end = bytes.count - 2
        while index < end {
            if bytes[index] == quote {
                // Only `","` may separate items.
                guard index + 2 < end, bytes[index + 1] == comma, bytes[index + 2] == quote else { return nil }
                items.append(String(decoding: bytes[start..<index], as: UTF8.self))
                index += 3
                start = index
            } else {
                index += 1
            }
        }
        items.append(String(decoding: bytes[start..<end], as: UTF8.self))
        return items
    }
}

extension AdminAPI.Policy {
    init(_ record: PolicyRecord) {
        self.init(id: record.id, groupID: record.groupID, resourceID: record.resourceID, disabled: record.disabled,
                  conditions: Resource.list(record.conditions), description: record.description)
    }
}

extension Token {
    init(_ record: TokenRecord) {
        let kind: Kind = switch record.kind {
        case .adminAPI: .adminAPI
        case .client: .client
        case .gateway: .gateway
        case .relay: .relay
        }
        self.init(id: record.id, kind: kind, createdAt: record.createdAt, expiresAt: record.expiresAt, actorID: record.actorID,
                  siteID: record.siteID, lastUsedAt: record.lastUsedAt, lastUsedAddress: record.lastUsedAddress)
    }
}

extension Account {
    init(_ record: AccountRecord) {
        self.init(id: record.id, name: record.name, slug: record.slug, tunnelIPv4Range: record.tunnelIPv4Range,
                  tunnelIPv6Range: record.tunnelIPv6Range)
    }
}

extension Device {
    init(_ record: DeviceRecord, online: Bool) {
        let kind: Kind = switch record.kind {
        case .client: .client
        case .gateway: .gateway
        }
        // Online: connected to the realtime API now (`RealtimeHub`).
        self.init(id: record.id, kind: kind, name: record.name, externalID: record.externalID, publicKey: record.publicKey,
                  tunnelIPv4: record.tunnelIPv4, tunnelIPv6: record.tunnelIPv6, verified: record.kind == .client ? record.verified : nil,
                  actorID: record.actorID, siteID: record.siteID, version: record.version, lastSeenAt: record.lastSeenAt,
                  lastSeenAddress: record.lastSeenAddress, online: online)
    }
}

extension AuditEvent {
    init(_ record: AuditEventRecord) {
        func value(_ text: String?) -> JSONValue? {
            text.map { (try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8))) ?? .string($0) }
        }
        self.init(id: record.id, action: record.action, subjectType: record.subjectType, subjectID: record.subjectID, at: record.at,
                  actorID: record.actorID, actorName: record.actorName, before: value(record.before), after: value(record.after))
    }
}

extension AccessPreview {
    /// The answer to a dry run, from the notifications it found and the views before and after.
    init(_ result: AccessPreviewResult) {
        self.init()
        guard let before = result.before, let after = result.after else { return }
        func access(_ client: DeviceID, _ resource: ResourceID, in view: AccessView) -> Access {
            let device = view.data.clients.first { $0.id == client }
            let actor = device?.actorID.flatMap { view.data.actors[$0] }
            return Access(clientID: client, client: device?.name ?? client.description, actorID: device?.actorID, actor: actor?.name,
                          resourceID: resource, resource: view.data.resources[resource]?.name,
                          policies: (view.access(of: client)[resource] ?? []).sorted())
        }
        for notification in result.notifications {
            switch notification {
            case let .resourceDeleted(client, resource):
                losses.append(access(client, resource, in: before))
            case let .resourceCreatedOrUpdated(client, resource) where before.access(of: client)[resource] == nil:
                gains.append(access(client, resource, in: after))
            case let .resourceCreatedOrUpdated(client, resource):
                updates.append(access(client, resource, in: after))
            case let .rejectAccess(gateway, client, resource):
                rejectedAuthorizations.append(GatewayChange(gatewayID: gateway, clientID: client, resourceID: resource))
            case let .resourceUpdated(gateway, resource):
                filterUpdates.append(GatewayChange(gatewayID: gateway, clientID: nil, resourceID: resource))
            }
        }
    }
}
