import AdminAPI
import Addresses
package import ControlProtocol
import Foundation
package import Hummingbird
package import HummingbirdWebSocket
import Logging
package import Persistence
package import Identifiers

/// The realtime API's endpoints (portal spec, "Realtime API"; docs/protocol.md): `/api/relay`,
/// `/api/gateway` and `/api/client`, WebSocket upgrades authenticated by the token of that kind.
///
/// This is the frame layer every connection shares: the upgrade refused with 401 (no or a bad token)
/// or 403 (a token of another kind) and a JSON error body; `join` first, its major version checked;
/// every frame read knowing its direction, and answered with an error reply when it does not fit,
/// without closing; heartbeats both ways, and a connection that stays silent for three intervals
/// closed. What each peer's `join` then starts (presence, devices, flows) is being built on it.
package enum RealtimeEndpoint {
    package struct Configuration: Sendable {
        /// How often each side sends `heartbeat`; three intervals of silence close the connection.
        package var heartbeatInterval: Duration = .seconds(10)

        package init(heartbeatInterval: Duration = .seconds(10)) {
            self.heartbeatInterval = heartbeatInterval
        }
    }

    /// The router that decides upgrades, for `.http1WebSocketUpgrade(webSocketRouter:)`.
    package static func router(repository: any PortalRepository, presence: RelayPresence, configuration: Configuration = .init())
        -> Router<RealtimeRequestContext>
    {
        let router = Router(context: RealtimeRequestContext.self)
        for peer in Peer.allCases {
            router.ws(RouterPath(peer.path)) { request, _ in
                // Refused upgrades go on to the HTTP router's route for the path, which says why in JSON.
                guard (try? await authenticate(request, as: peer, repository: repository)) != nil else { return .dontUpgrade }
                return .upgrade([:])
            } onUpgrade: { inbound, outbound, context in
                let token = try await authenticate(context.request, as: peer, repository: repository)
                let connection = RealtimeConnection(peer: peer, token: token, outbound: outbound, configuration: configuration,
                                                    presence: presence, logger: context.logger)
                try await connection.run(inbound)
            }
        }
        return router
    }

    /// The token in `Authorization: Bearer`, which must be unexpired and of the peer's kind.
    static func authenticate(_ request: Request, as peer: Peer, repository: any PortalRepository) async throws -> TokenRecord {
        let kind: TokenRecord.Kind = switch peer {
        case .relay: .relay
        case .gateway: .gateway
        case .client: .client
        }
        guard let secret = request.bearerToken else { throw Self.unauthorized(kind) }
        guard let token = try await repository.useToken(hash: TokenSecret.hash(secret), now: Date(), address: nil) else {
            throw Self.unauthorized(kind)
        }
        guard token.kind == kind else {
            throw APIError(.forbidden, code: "forbidden", message: "a \(token.kind.rawValue) token may not connect to \(peer.path)")
        }
        return token
    }

    static func unauthorized(_ kind: TokenRecord.Kind) -> APIError {
        APIError(.unauthorized, code: "unauthorized", message: "a valid \(kind.rawValue) token is required in Authorization: Bearer")
    }
}

/// The request context of the realtime router.
package struct RealtimeRequestContext: RequestContext, WebSocketRequestContext {
    package var coreContext: CoreRequestContextStorage
    package let webSocket: WebSocketHandlerReference<Self>

    package init(source: Source) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
}

/// One device's connection: reads its frames, answers them, and keeps the heartbeat.
struct RealtimeConnection: Sendable {
    let peer: Peer
    let token: TokenRecord
    let outbound: WebSocketOutboundWriter
    let configuration: RealtimeEndpoint.Configuration
    let presence: RelayPresence
    let logger: Logger

    /// The largest message read before the frame layer judges it (frames over
    /// `ControlFrame.maximumSize` get an error reply; messages over this close the connection).
    static let maximumMessage = 4 * ControlFrame.maximumSize

    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var lastHeard = ContinuousClock.now
        var joined = false
        /// The relay's presence, from its accepted join to the end of the connection.
        var relay: RelayID?

        func heard() {
            lock.withLock { lastHeard = .now }
        }

        var silentFor: Duration { lock.withLock { ContinuousClock.now - lastHeard } }
    }

    func run(_ inbound: WebSocketInboundStream) async throws {
        let state = State()
        defer {
            if let relay = state.lock.withLock({ state.relay }) {
                Task { await presence.disconnect(relay) }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // Heartbeats out; the connection closed after three intervals without a frame in.
                while !Task.isCancelled {
                    try await Task.sleep(for: configuration.heartbeatInterval)
                    if state.silentFor >= configuration.heartbeatInterval * 3 {
                        logger.info("realtime connection silent for three heartbeats: closing", metadata: ["peer": "\(peer.rawValue)"])
                        try await outbound.close(.goingAway, reason: "no heartbeat")
                        return
                    }
                    try await send(ControlFrame(.heartbeat))
                }
            }
            group.addTask {
                for try await message in inbound.messages(maxSize: Self.maximumMessage) {
                    state.heard()
                    guard try await handle(message, state) else { return }
                }
            }
            // Whichever ends first ends the connection.
            try await group.next()
            group.cancelAll()
        }
    }

    /// Answers one message; false when the connection is to close.
    private func handle(_ message: WebSocketMessage, _ state: State) async throws -> Bool {
        let data: Data = switch message {
        case let .text(text): Data(text.utf8)
        case let .binary(buffer): Data(buffer: buffer)
        }
        let frame: ControlFrame
        do {
            frame = try ControlFrame.decode(data, .toPortal(from: peer))
        } catch {
            try await send(ControlFrame(.reply(error.reply), ref: error.ref))
            return true
        }
        switch frame.message {
        case .heartbeat:
            return true
        case .relayJoin(let join):
            guard try await versionSpoken(join.version, frame) else { return false }
            if let problem = Self.problem(with: join) {
                try await send(ControlFrame(.reply(.error("invalid_payload", "join: \(problem)")), ref: frame.ref))
                return true
            }
            if state.lock.withLock({ state.relay }) == nil {
                let id = await presence.connect(join)
                state.lock.withLock { state.relay = id }
                logger.info("relay online", metadata: ["relay": "\(join.name)", "id": "\(id)"])
            }
            try await accept(frame, state)
            return true
        case .join(let join):
            guard try await versionSpoken(join.version, frame) else { return false }
            try await accept(frame, state)
            return true
        default:
            guard state.lock.withLock({ state.joined }) else {
                try await send(ControlFrame(.reply(.error("join_required", "send join first")), ref: frame.ref))
                return true
            }
            try await send(ControlFrame(.reply(.error("not_implemented", "\(frame.message.event) is not served yet")), ref: frame.ref))
            return true
        }
    }

    /// What is wrong with a relay's join, if anything: it is shown to admins and handed to devices.
    static func problem(with join: RelayJoin) -> String? {
        if join.name.isEmpty || join.name.count > 200 { return "\"name\" must be 1-200 characters" }
        if !(1...65535).contains(join.port) { return "\"port\" must be 1-65535" }
        if join.ipv4 == nil && join.ipv6 == nil { return "\"ipv4\" or \"ipv6\" is required: clients must reach the relay" }
        if let ipv4 = join.ipv4, (try? SocketAddress(ipv4, port: 0))?.isIPv6 != false { return "\"ipv4\" is not an IPv4 address" }
        if let ipv6 = join.ipv6, (try? SocketAddress(ipv6, port: 0))?.isIPv6 != true { return "\"ipv6\" is not an IPv6 address" }
        return nil
    }

    /// Whether the peer's protocol version is spoken here; if not, it is told so and the connection closed.
    private func versionSpoken(_ version: String, _ frame: ControlFrame) async throws -> Bool {
        guard ProtocolVersion.isSpoken(version) else {
            try await send(ControlFrame(.reply(.error("unsupported_version",
                                                      "protocol version \(version) is not spoken here; this portal speaks \(ProtocolVersion.current)")),
                                        ref: frame.ref))
            try await outbound.close(.protocolError, reason: "unsupported protocol version")
            return false
        }
        return true
    }

    private func accept(_ frame: ControlFrame, _ state: State) async throws {
        state.lock.withLock { state.joined = true }
        try await send(ControlFrame(.reply(.ok), ref: frame.ref))
    }

    private func send(_ frame: ControlFrame) async throws {
        try await outbound.write(.text(String(decoding: try frame.encoded(), as: UTF8.self)))
    }
}
