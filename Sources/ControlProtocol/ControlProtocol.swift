package import Foundation
import Identifiers

/// The realtime API's protocol version: `major.minor`. A portal refuses a `join` whose major version it
/// does not speak; minor versions only add what the other side may ignore.
package enum ProtocolVersion {
    package static let current = "1.1"
    package static let major = 1

    /// Whether a peer announcing `version` can be spoken to.
    package static func isSpoken(_ version: String) -> Bool {
        guard let majorText = version.split(separator: ".", omittingEmptySubsequences: false).first, let major = Int(majorText) else {
            return false
        }
        return major == Self.major
    }
}

/// The three kinds of device that connect to the portal, each at its own path.
package enum Peer: String, Sendable, CaseIterable {
    case relay, gateway, client

    /// `/api/relay`, `/api/gateway`, `/api/client`.
    package var path: String { "/api/\(rawValue)" }
}

/// Every message of the realtime API, in both directions. A frame is a JSON object `{"event": ...,
/// "ref": ..., "payload": {...}}`; `ref` is set on requests that expect a `reply` and echoed by it.
package enum ControlMessage: Sendable, Equatable {
    // Any side.
    case heartbeat
    case reply(Reply)
    // Relay → portal.
    case relayJoin(RelayJoin)
    // Gateway or client → portal.
    case join(DeviceJoin)
    // Portal → gateway.
    case gatewayInit(GatewayInit)
    case authorizeFlow(FlowAuthorization)
    case rejectAccess(RejectAccess)
    case resourceUpdated(GatewayResource)
    // Gateway → portal.
    case flowAuthorized(FlowAuthorized)
    // Portal → client.
    case clientInit(ClientInit)
    case resourceCreatedOrUpdated(ClientResource)
    case resourceDeleted(ResourceDeleted)
    case flowCreated(FlowCreated)
    case flowCreationFailed(FlowCreationFailed)
    // Client → portal.
    case createFlow(CreateFlow)
    // Portal → gateway or client, and back.
    case relaysPresence(RelaysPresence)
    case iceCandidates(ICECandidates)

    /// The frame's `event`.
    package var event: String {
        switch self {
        case .heartbeat: "heartbeat"
        case .reply: "reply"
        case .relayJoin, .join: "join"
        case .gatewayInit, .clientInit: "init"
        case .authorizeFlow: "authorize_flow"
        case .rejectAccess: "reject_access"
        case .resourceUpdated: "resource_updated"
        case .flowAuthorized: "flow_authorized"
        case .resourceCreatedOrUpdated: "resource_created_or_updated"
        case .resourceDeleted: "resource_deleted"
        case .flowCreated: "flow_created"
        case .flowCreationFailed: "flow_creation_failed"
        case .createFlow: "create_flow"
        case .relaysPresence: "relays_presence"
        case .iceCandidates: "ice_candidates"
        }
    }
}

/// Which way a frame travels: to the portal from a peer, or from the portal to a peer. The same event
/// name carries different payloads by direction and peer (`join`, `init`), so a frame is read knowing both.
package enum Direction: Sendable, Equatable {
    case toPortal(from: Peer)
    case fromPortal(to: Peer)

    /// The events that may travel this way.
    package var events: [String] {
        switch self {
        case .toPortal(.relay): ["join", "heartbeat", "reply"]
        case .toPortal(.gateway): ["join", "flow_authorized", "ice_candidates", "heartbeat", "reply"]
        case .toPortal(.client): ["join", "create_flow", "ice_candidates", "heartbeat", "reply"]
        case .fromPortal(.relay): ["reply", "heartbeat"]
        case .fromPortal(.gateway):
            ["init", "authorize_flow", "reject_access", "resource_updated", "relays_presence", "ice_candidates", "reply", "heartbeat"]
        case .fromPortal(.client):
            ["init", "resource_created_or_updated", "resource_deleted", "relays_presence", "flow_created", "flow_creation_failed",
             "ice_candidates", "reply", "heartbeat"]
        }
    }
}

/// A frame that could not be read, with what the error reply says.
package struct ProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    package enum Code: String, Sendable {
        /// Not a JSON object with a string `event`, or over the size limit.
        case malformed
        /// An event this side does not take from that peer.
        case unknownEvent = "unknown_event"
        /// The payload does not fit the event.
        case invalidPayload = "invalid_payload"
    }

    package var code: Code
    package var message: String
    /// The frame's `ref` when it could be read, so that the error reply can echo it.
    package var ref: String?

    package var description: String { "\(code.rawValue): \(message)" }

    /// The reply that answers the frame.
    package var reply: Reply { .error(code.rawValue, message) }
}

/// One frame: a message and its `ref`.
package struct ControlFrame: Sendable, Equatable {
    /// The largest frame read (a `init` with thousands of flows stays far below it).
    package static let maximumSize = 1 << 20

    package var message: ControlMessage
    package var ref: String?

    package init(_ message: ControlMessage, ref: String? = nil) {
        self.message = message
        self.ref = ref
    }

    /// The frame as JSON text (keys sorted, dates in ISO 8601).
    package func encoded() throws -> Data {
        if let fast = FastFrames.encode(self) { return fast }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(Envelope(event: message.event, ref: ref, message: message))
    }

    /// Reads a frame travelling `direction`; a `ProtocolError` says what is wrong with it.
    package static func decode(_ data: Data, _ direction: Direction) throws(ProtocolError) -> ControlFrame {
        guard data.count <= maximumSize else {
            throw ProtocolError(code: .malformed, message: "the frame is over \(maximumSize) bytes")
        }
        if let fast = FastFrames.decode(data, direction) { return fast }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let header: Header
        do {
            header = try decoder.decode(Header.self, from: data)
        } catch {
            throw ProtocolError(code: .malformed, message: "a frame is a JSON object with a string \"event\"")
        }
        guard direction.events.contains(header.event) else {
            throw ProtocolError(code: .unknownEvent, message: "unknown event \"\(header.event)\"", ref: header.ref)
        }
        decoder.userInfo[Envelope.directionKey] = DirectionBox(direction)
        do {
            let envelope = try decoder.decode(Envelope.self, from: data)
            return ControlFrame(envelope.message, ref: header.ref)
        } catch {
            throw ProtocolError(code: .invalidPayload, message: "\(header.event): \(Self.describe(error))", ref: header.ref)
        }
    }

    /// What a decoding error says, in a line that names the field.
    private static func describe(_ error: any Error) -> String {
        /// The field's path inside the payload (`interface.ipv4`, `relays.[0].port`).
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.dropFirst().map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error as? DecodingError {
        case let .keyNotFound(key, context)?:
            let parent = path(context)
            return "\"\(parent.isEmpty ? key.stringValue : parent + "." + key.stringValue)\" is missing"
        case let .typeMismatch(_, context)?, let .valueNotFound(_, context)?:
            return "\"\(path(context))\" has the wrong type"
        case let .dataCorrupted(context)?:
            return "\"\(path(context))\": \(context.debugDescription)"
        default:
            return "the payload does not fit"
        }
    }

    private struct Header: Decodable {
        var event: String
        var ref: String?
    }
}

private final class DirectionBox: @unchecked Sendable {
    let direction: Direction
    init(_ direction: Direction) { self.direction = direction }
}

/// The frame on the wire.
private struct Envelope: Codable {
    static let directionKey = CodingUserInfoKey(rawValue: "gatehouse.direction")!

    var event: String
    var ref: String?
    var message: ControlMessage

    init(event: String, ref: String?, message: ControlMessage) {
        self.event = event
        self.ref = ref
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case event, ref, payload
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        event = try container.decode(String.self, forKey: .event)
        ref = try container.decodeIfPresent(String.self, forKey: .ref)
        guard let direction = (decoder.userInfo[Self.directionKey] as? DirectionBox)?.direction else {
            throw DecodingError.dataCorruptedError(forKey: .event, in: container, debugDescription: "no direction given")
        }
        func payload<T: Decodable>(_ type: T.Type) throws -> T {
            try container.decode(T.self, forKey: .payload)
        }
        message = switch (event, direction) {
        case ("heartbeat", _): .heartbeat
        case ("reply", _): .reply(try payload(Reply.self))
        case ("join", .toPortal(.relay)): .relayJoin(try payload(RelayJoin.self))
        case ("join", .toPortal): .join(try payload(DeviceJoin.self))
        case ("init", .fromPortal(.gateway)): .gatewayInit(try payload(GatewayInit.self))
        case ("init", .fromPortal(.client)): .clientInit(try payload(ClientInit.self))
        case ("authorize_flow", _): .authorizeFlow(try payload(FlowAuthorization.self))
        case ("reject_access", _): .rejectAccess(try payload(RejectAccess.self))
        case ("resource_updated", _): .resourceUpdated(try payload(GatewayResource.self))
        case ("flow_authorized", _): .flowAuthorized(try payload(FlowAuthorized.self))
        case ("resource_created_or_updated", _): .resourceCreatedOrUpdated(try payload(ClientResource.self))
        case ("resource_deleted", _): .resourceDeleted(try payload(ResourceDeleted.self))
        case ("flow_created", _): .flowCreated(try payload(FlowCreated.self))
        case ("flow_creation_failed", _): .flowCreationFailed(try payload(FlowCreationFailed.self))
        case ("create_flow", _): .createFlow(try payload(CreateFlow.self))
        case ("relays_presence", _): .relaysPresence(try payload(RelaysPresence.self))
        case ("ice_candidates", _): .iceCandidates(try payload(ICECandidates.self))
        default:
            throw DecodingError.dataCorruptedError(forKey: .event, in: container, debugDescription: "unknown event \(event)")
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(event, forKey: .event)
        try container.encodeIfPresent(ref, forKey: .ref)
        switch message {
        case .heartbeat: try container.encode([String: String](), forKey: .payload)
        case let .reply(value): try container.encode(value, forKey: .payload)
        case let .relayJoin(value): try container.encode(value, forKey: .payload)
        case let .join(value): try container.encode(value, forKey: .payload)
        case let .gatewayInit(value): try container.encode(value, forKey: .payload)
        case let .authorizeFlow(value): try container.encode(value, forKey: .payload)
        case let .rejectAccess(value): try container.encode(value, forKey: .payload)
        case let .resourceUpdated(value): try container.encode(value, forKey: .payload)
        case let .flowAuthorized(value): try container.encode(value, forKey: .payload)
        case let .clientInit(value): try container.encode(value, forKey: .payload)
        case let .resourceCreatedOrUpdated(value): try container.encode(value, forKey: .payload)
        case let .resourceDeleted(value): try container.encode(value, forKey: .payload)
        case let .flowCreated(value): try container.encode(value, forKey: .payload)
        case let .flowCreationFailed(value): try container.encode(value, forKey: .payload)
        case let .createFlow(value): try container.encode(value, forKey: .payload)
        case let .relaysPresence(value): try container.encode(value, forKey: .payload)
        case let .iceCandidates(value): try container.encode(value, forKey: .payload)
        }
    }
}

/// The frames a portal sends by the thousand when access changes (`reject_access`, `resource_deleted`)
/// and every connection's `heartbeat`, written and read directly in the exact form `JSONEncoder` gives
/// them here (keys sorted, no spaces): a JSONEncoder or two JSONDecoder passes per frame were most of
/// the time a policy's revocation took to reach 1,000 gateways. Anything else, including the same
/// messages spelled differently, takes the general path; `ControlFrameTests` checks both agree.
enum FastFrames {
    static let heartbeat = Data(#"{"event":"heartbeat","payload":{}}"#.utf8)

    static func encode(_ frame: ControlFrame) -> Data? {
        guard frame.ref == nil else { return nil }
        switch frame.message {
        case .heartbeat:
            return heartbeat
        case let .rejectAccess(value):
            return Data(#"{"event":"reject_access","payload":{"client_id":"\#(value.clientID)","resource_id":"\#(value.resourceID)"}}"#.utf8)
        case let .resourceDeleted(value):
            return Data(#"{"event":"resource_deleted","payload":{"resource_id":"\#(value.resourceID)"}}"#.utf8)
        default:
            return nil
        }
    }

    private static let rejectPrefix = Array(#"{"event":"reject_access","payload":{"client_id":""#.utf8)
    private static let rejectMiddle = Array(#"","resource_id":""#.utf8)
    private static let deletedPrefix = Array(#"{"event":"resource_deleted","payload":{"resource_id":""#.utf8)
    private static let closing = Array(#""}}"#.utf8)

    static func decode(_ data: Data, _ direction: Direction) -> ControlFrame? {
        if data == heartbeat { return ControlFrame(.heartbeat) }
        guard case .fromPortal(let peer) = direction else { return nil }
        let bytes = [UInt8](data)
        func id<Noun>(at offset: Int) -> Identifier<Noun>? {
            guard offset + 36 <= bytes.count else { return nil }
            return Identifier<Noun>(String(decoding: bytes[offset..<offset + 36], as: UTF8.self))
        }
        if peer == .gateway, bytes.count == rejectPrefix.count + 36 + rejectMiddle.count + 36 + closing.count,
           bytes.starts(with: rejectPrefix), bytes[(rejectPrefix.count + 36)...].starts(with: rejectMiddle), bytes.suffix(closing.count).elementsEqual(closing),
           let client: DeviceID = id(at: rejectPrefix.count), let resource: ResourceID = id(at: rejectPrefix.count + 36 + rejectMiddle.count) {
            return ControlFrame(.rejectAccess(RejectAccess(clientID: client, resourceID: resource)))
        }
        if peer == .client, bytes.count == deletedPrefix.count + 36 + closing.count, bytes.starts(with: deletedPrefix),
           bytes.suffix(closing.count).elementsEqual(closing), let resource: ResourceID = id(at: deletedPrefix.count) {
            return ControlFrame(.resourceDeleted(ResourceDeleted(resourceID: resource)))
        }
        return nil
    }
}
