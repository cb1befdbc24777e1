import ControlProtocol
import Foundation
import Identifiers
import Testing

/// Every message of the realtime API travels as a frame and comes back as it was sent, read knowing
/// its direction; frames that do not fit are refused with an error that names what is wrong and echoes
/// the `ref` when it could be read.
@Suite struct ControlFrameTests {
    static let at = Date(timeIntervalSince1970: 1_795_000_000)
    static let relay = RelayCredential(id: RelayID(), name: "relay-1", ipv4: "198.51.100.7", ipv6: "2001:db8::7", port: 3478,
                                       username: "1795003600:gateway-1", password: "c2VjcmV0", expiresAt: at)
    static let resource = GatewayResource(id: ResourceID(), name: "db", type: .cidr, address: "10.0.0.0/24", filters: ["tcp:5432", "icmp"])
    static let interface = Interface(ipv4: "100.64.0.10", ipv6: "fd00:6761:7465::10")
    static let flow = FlowAuthorization(
        flowID: AuthorizationID(), clientID: DeviceID(), clientPublicKey: "Y2xpZW50", clientInterface: interface, presharedKey: "cHNr",
        clientICE: ICECredentials(username: "cu", password: "cp"), gatewayICE: ICECredentials(username: "gu", password: "gp"),
        resource: resource, expiresAt: at)

    /// One of every message, with the direction it travels.
    static let samples: [(String, ControlMessage, Direction)] = [
        ("relay join", .relayJoin(RelayJoin(name: "relay-1", secret: "s3cret", ipv4: "198.51.100.7", ipv6: nil, port: 3478)), .toPortal(from: .relay)),
        ("gateway join", .join(DeviceJoin(externalID: "gw-1", name: "gw-1", publicKey: "Z3c=", endpoints: ["198.51.100.9:51820", "[2001:db8::9]:51820"])),
         .toPortal(from: .gateway)),
        ("client join", .join(DeviceJoin(externalID: "laptop-1", name: "laptop", publicKey: "Y2w=")), .toPortal(from: .client)),
        ("gateway init", .gatewayInit(GatewayInit(interface: interface, relays: [relay], authorizations: [flow])), .fromPortal(to: .gateway)),
        ("authorize_flow", .authorizeFlow(flow), .fromPortal(to: .gateway)),
        ("reject_access", .rejectAccess(RejectAccess(clientID: DeviceID(), resourceID: ResourceID())), .fromPortal(to: .gateway)),
        ("resource_updated", .resourceUpdated(resource), .fromPortal(to: .gateway)),
        ("flow_authorized", .flowAuthorized(FlowAuthorized(flowID: AuthorizationID())), .toPortal(from: .gateway)),
        ("client init", .clientInit(ClientInit(interface: interface, resources: [
            ClientResource(id: ResourceID(), name: "web", type: .dns, address: "*.corp.example", addressDescription: "https://corp.example/",
                           filters: []),
        ], relays: [relay])), .fromPortal(to: .client)),
        ("resource_created_or_updated", .resourceCreatedOrUpdated(ClientResource(id: ResourceID(), name: "db", type: .cidr, address: "10.0.0.0/24",
                                                                                 addressDescription: nil, filters: ["tcp:5432"])), .fromPortal(to: .client)),
        ("resource_deleted", .resourceDeleted(ResourceDeleted(resourceID: ResourceID())), .fromPortal(to: .client)),
        ("create_flow", .createFlow(CreateFlow(resourceID: ResourceID(), connectedGatewayIDs: [DeviceID()])), .toPortal(from: .client)),
        ("flow_created", .flowCreated(FlowCreated(flowID: AuthorizationID(), resourceID: ResourceID(), gatewayID: DeviceID(), gatewayPublicKey: "Z3c=",
                                                  gatewayEndpoints: ["198.51.100.9:51820"], presharedKey: "cHNr",
                                                  clientICE: ICECredentials(username: "cu", password: "cp"),
                                                  gatewayICE: ICECredentials(username: "gu", password: "gp"), expiresAt: at)), .fromPortal(to: .client)),
        ("flow_creation_failed", .flowCreationFailed(FlowCreationFailed(resourceID: ResourceID(), reason: .offline)), .fromPortal(to: .client)),
        ("relays_presence", .relaysPresence(RelaysPresence(connected: [relay], disconnected: [RelayID()])), .fromPortal(to: .gateway)),
        ("ice_candidates", .iceCandidates(ICECandidates(flowID: AuthorizationID(), peerID: DeviceID(),
                                                        candidates: ["candidate:1 1 udp 2130706431 192.0.2.1 50000 typ host"])), .toPortal(from: .client)),
        ("reply", .reply(.error("forbidden", "no")), .fromPortal(to: .relay)),
        ("heartbeat", .heartbeat, .toPortal(from: .gateway)),
    ]

    @Test(arguments: samples.map(\.0))
    func everyMessageComesBackAsItWasSent(_ name: String) throws {
        let (_, message, direction) = try #require(Self.samples.first { $0.0 == name })
        let frame = ControlFrame(message, ref: "7")
        let data = try frame.encoded()
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["event"] as? String == message.event)
        #expect(object["ref"] as? String == "7")
        #expect(object["payload"] is [String: Any], "every frame has an object payload")
        #expect(try ControlFrame.decode(data, direction) == frame)
    }

    @Test func fieldsAreSnakeCaseWithTypedIDsAndISOTimes() throws {
        let data = try ControlFrame(.authorizeFlow(Self.flow)).encoded()
        let text = String(decoding: data, as: UTF8.self)
        for key in ["\"flow_id\"", "\"client_public_key\"", "\"client_interface\"", "\"preshared_key\"", "\"client_ice\"", "\"expires_at\":\"2026-11-18T11:06:40Z\""] {
            #expect(text.contains(key), "\(key) in \(text)")
        }
        #expect(text.contains("\"flow_id\":\"\(Self.flow.flowID)\""), "IDs as lower-case UUIDs")
        #expect(!text.contains("\"ref\""), "no ref when none is set")
    }

    @Test func framesThatDoNotFitAreRefusedWithWhatIsWrong() throws {
        func refusal(_ text: String, _ direction: Direction = .toPortal(from: .client)) -> ProtocolError? {
            do {
                _ = try ControlFrame.decode(Data(text.utf8), direction)
                return nil
            } catch {
                return error
            }
        }
        #expect(refusal("not json")?.code == .malformed)
        #expect(refusal("[1, 2]")?.code == .malformed)
        #expect(refusal(#"{"event": 7}"#)?.code == .malformed)
        #expect(refusal(String(repeating: " ", count: ControlFrame.maximumSize + 1) + "{}")?.code == .malformed)
        let unknown = refusal(#"{"event": "explode", "ref": "9", "payload": {}}"#)
        #expect(unknown?.code == .unknownEvent && unknown?.ref == "9" && unknown?.message.contains("explode") == true)
        // A client may not send what only the portal sends, nor a relay's join.
        #expect(refusal(#"{"event": "authorize_flow", "payload": {}}"#)?.code == .unknownEvent)
        #expect(refusal(#"{"event": "init", "payload": {}}"#, .toPortal(from: .gateway))?.code == .unknownEvent)
        let missing = refusal(#"{"event": "create_flow", "ref": "3", "payload": {"connected_gateway_ids": []}}"#)
        #expect(missing?.code == .invalidPayload && missing?.ref == "3")
        #expect(missing?.message == #"create_flow: "resource_id" is missing"#, "\(String(describing: missing))")
        let badID = refusal(#"{"event": "create_flow", "payload": {"resource_id": "nope", "connected_gateway_ids": []}}"#)
        #expect(badID?.code == .invalidPayload && badID?.message.contains("resource_id") == true, "\(String(describing: badID))")
        #expect(refusal(#"{"event": "create_flow"}"#)?.code == .invalidPayload, "a payload is required")
        #expect(refusal(#"{"event": "heartbeat"}"#) == nil, "a heartbeat needs no payload")
        #expect(missing?.reply == .error("invalid_payload", missing?.message ?? ""))
    }

    @Test func majorVersionsAreSpokenOrRefused() {
        #expect(ProtocolVersion.isSpoken(ProtocolVersion.current))
        #expect(ProtocolVersion.isSpoken("1.7"))
        #expect(!ProtocolVersion.isSpoken("2.0"))
        #expect(!ProtocolVersion.isSpoken("0.9"))
        #expect(!ProtocolVersion.isSpoken(""))
        #expect(!ProtocolVersion.isSpoken("one"))
        #expect(Peer.gateway.path == "/api/gateway")
    }

    /// The frames sent by the thousand are written and read without JSONEncoder/JSONDecoder; what they
    /// write is what the general encoder writes, and the same message spelled another way (spaces, a
    /// `ref`, another key order) still reads, through the general decoder, as the same message.
    @Test func theFastFramesAgreeWithTheGeneralCoder() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let client = DeviceID(), resource = ResourceID()
        let cases: [(ControlMessage, Peer, String)] = [
            (.heartbeat, .gateway, #"{"event": "heartbeat", "payload": {}}"#),
            (.rejectAccess(RejectAccess(clientID: client, resourceID: resource)), .gateway,
             #"{"payload": {"resource_id": "\#(resource)", "client_id": "\#(client)"}, "event": "reject_access"}"#),
            (.resourceDeleted(ResourceDeleted(resourceID: resource)), .client, #"{"event": "resource_deleted", "payload": {"resource_id": "\#(resource)"}}"#),
        ]
        for (message, peer, spelled) in cases {
            let fast = try ControlFrame(message).encoded()
            // The general path's bytes: the same frame with a ref, which the fast path never takes, minus the ref.
            let general = try ControlFrame(message, ref: "r").encoded()
            let generalText = String(decoding: general, as: UTF8.self).replacingOccurrences(of: #","ref":"r""#, with: "")
            #expect(String(decoding: fast, as: UTF8.self) == generalText, "\(message.event)")
            #expect(try ControlFrame.decode(fast, .fromPortal(to: peer)) == ControlFrame(message))
            #expect(try ControlFrame.decode(Data(spelled.utf8), .fromPortal(to: peer)) == ControlFrame(message), "\(spelled)")
            #expect(try ControlFrame.decode(general, .fromPortal(to: peer)) == ControlFrame(message, ref: "r"))
        }
        // A reject_access to a client is not one of its events, fast path or not.
        let toClient = try ControlFrame(.rejectAccess(RejectAccess(clientID: client, resourceID: resource))).encoded()
        #expect(throws: ProtocolError.self) { try ControlFrame.decode(toClient, .fromPortal(to: .client)) }
    }
}
