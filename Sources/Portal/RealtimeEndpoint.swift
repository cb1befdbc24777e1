import AdminAPI
import Addresses
package import ControlProtocol
import Foundation
package import Hummingbird
package import HummingbirdWebSocket
import Logging
package import Persistence
package import Identifiers
package import HummingbirdCore
import HummingbirdTLS
package import NIOSSL
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The realtime API's endpoints (portal spec, "Realtime API"; docs/protocol.md): `/api/relay`,
/// `/api/gateway` and `/api/client`, WebSocket upgrades authenticated by the token of that kind.
///
/// The upgrade is refused with 401 (no or a bad token) or 403 (a token of another kind) and the reason in
/// JSON (`RealtimeUpgradeGate`); `join` comes
/// first, its major version checked; every frame is read knowing its direction, and answered with an
/// error reply when it does not fit, without closing; heartbeats flow both ways, and a connection that
/// stays silent for three intervals is closed. A relay's `join` makes it online (`RelayPresence`); a
/// device's registers it with the `RealtimeHub`, which does the rest.
package enum RealtimeEndpoint {
    package struct Configuration: Sendable {
        /// How often each side sends `heartbeat`; three intervals of silence close the connection.
        package var heartbeatInterval: Duration = .seconds(10)

        package init(heartbeatInterval: Duration = .seconds(10)) {
            self.heartbeatInterval = heartbeatInterval
        }
    }

    /// The portal's server: HTTP/1 for `responder` (the admin API), WebSocket upgrades on the realtime
    /// paths, each first checked by `RealtimeUpgradeGate` (a bad token gets its 401 or 403 with the
    /// reason in JSON, as the admin API answers), and TLS around it all when given.
    package static func server(repository: any PortalRepository, presence: RelayPresence, hub: RealtimeHub, configuration: Configuration,
                               tls: TLSConfiguration?) -> HTTPServerBuilder
    {
        // Frames up to the protocol's limit are read and judged by it (an oversized one gets an error reply).
        let webSocket = WebSocketServerConfiguration(maxFrameSize: RealtimeConnection.maximumMessage, autoPing: .disabled, validateUTF8: true)
        let check: @Sendable (String, String?) async -> UpgradeRefusal? = { path, authorization in
            guard let peer = Peer.allCases.first(where: { $0.path == path }) else { return nil }
            do {
                _ = try await authenticate(authorization, as: peer, repository: repository)
                return nil
            } catch let error as APIError {
                return UpgradeRefusal(status: HTTPResponseStatus(statusCode: error.status.code), body: error.json)
            } catch {
                return UpgradeRefusal(status: .serviceUnavailable,
                                      body: #"{"error":{"code":"unavailable","message":"the token could not be checked; try again"}}"#)
            }
        }
        return HTTPServerBuilder { responder in
            let base = HTTP1WebSocketUpgradeChannel(responder: responder, configuration: .init(ws: webSocket)) { head, channel, _ in
                let path = head.path.map { String($0.split(separator: "?").first ?? "") } ?? ""
                guard let peer = Peer.allCases.first(where: { $0.path == path }),
                      let token = try? await authenticate(head.headerFields[.authorization], as: peer, repository: repository)
                else { return .dontUpgrade }
                let address = channel.remoteAddress?.ipAddress
                return .upgrade([:]) { inbound, outbound, context in
                    let connection = RealtimeConnection(peer: peer, token: token, address: address, outbound: outbound,
                                                        frames: FrameWriter(channel: channel, logger: context.logger), configuration: configuration,
                                                        presence: presence, hub: hub, logger: context.logger)
                    try await connection.run(inbound)
                }
            }
            let gated = GatedWebSocketChannel(base: base, check: check)
            if let tls { return try TLSChannel(gated, tlsConfiguration: tls) }
            return gated
        }
    }

    /// The token in `Authorization: Bearer`, which must be unexpired and of the peer's kind.
    static func authenticate(_ request: Request, as peer: Peer, repository: any PortalRepository) async throws -> TokenRecord {
        try await authenticate(request.headers[.authorization], as: peer, repository: repository)
    }

    static func authenticate(_ authorization: String?, as peer: Peer, repository: any PortalRepository) async throws -> TokenRecord {
        let kind: TokenRecord.Kind = switch peer {
        case .relay: .relay
        case .gateway: .gateway
        case .client: .client
        }
        guard let secret = Request.bearerToken(authorization) else { throw Self.unauthorized(kind) }
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

/// One connection: reads its frames and answers them, writes what the hub sends it, keeps the heartbeat,
/// and ends when its token expires.
struct RealtimeConnection: Sendable {
    let peer: Peer
    let token: TokenRecord
    let address: String?
    let outbound: WebSocketOutboundWriter
    let frames: FrameWriter
    let configuration: RealtimeEndpoint.Configuration
    let presence: RelayPresence
    let hub: RealtimeHub
    let logger: Logger

    /// The largest message read before the frame layer judges it (frames over
    /// `ControlFrame.maximumSize` get an error reply; messages over this close the connection).
    static let maximumMessage = 4 * ControlFrame.maximumSize
    /// `create_flow`s one device may have waiting for their answers at once.
    static let flowsInProgressLimit = 32

    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var lastHeard = ContinuousClock.now
        /// The relay's presence, from its accepted join to the end of the connection.
        var relay: RelayID?
        /// The gateway or client, from its accepted join.
        var device: DeviceID?
        /// `create_flow`s not answered yet.
        var flowsInProgress = 0

        func heard() {
            lock.withLock { lastHeard = .now }
        }

        var silentFor: Duration { lock.withLock { ContinuousClock.now - lastHeard } }
        var joined: Bool { lock.withLock { relay != nil || device != nil } }
    }

    func run(_ inbound: WebSocketInboundStream) async throws {
        let state = State()
        let (closing, continuation) = AsyncStream<Closing>.makeStream()
        let mailbox = Mailbox(frames: frames, closing: continuation)
        defer {
            continuation.finish()
            let (relay, device) = state.lock.withLock { (state.relay, state.device) }
            Task {
                if let relay {
                    await presence.disconnect(relay)
                    await hub.relaysChanged()
                }
                if let device { await hub.leave(device, mailbox: mailbox) }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // The close, after every frame sent before it was written; then the connection ends.
                for await close in closing {
                    try await frames.written()
                    switch close.code {
                    case .policy: try await outbound.close(.policyViolation, reason: close.reason)
                    case .goingAway: try await outbound.close(.goingAway, reason: close.reason)
                    case .protocolError: try await outbound.close(.protocolError, reason: close.reason)
                    }
                    return
                }
            }
            group.addTask {
                // Heartbeats out; the connection closed after three intervals without a frame in.
                while !Task.isCancelled {
                    try await Task.sleep(for: configuration.heartbeatInterval)
                    if state.silentFor >= configuration.heartbeatInterval * 3 {
                        logger.info("realtime connection silent for three heartbeats: closing", metadata: ["peer": "\(peer.rawValue)"])
                        mailbox.close("no heartbeat", code: .goingAway)
                        // The writer ends the connection once the close is written; this only bounds the wait.
                        try await Task.sleep(for: .seconds(5))
                        return
                    }
                    mailbox.send(.heartbeat)
                }
            }
            if let expiry = token.expiresAt {
                group.addTask {
                    try await Task.sleep(for: .seconds(max(0, expiry.timeIntervalSinceNow)))
                    mailbox.close("the token expired")
                    try await Task.sleep(for: .seconds(5))  // the writer closes; this only bounds the wait
                }
            }
            group.addTask {
                for try await message in inbound.messages(maxSize: Self.maximumMessage) {
                    state.heard()
                    guard try await handle(message, state, mailbox) else {
                        // A close was put in the mailbox after the reply: the writer sends both and ends
                        // the connection (ending it here could cancel the writer before it wrote them).
                        try await Task.sleep(for: .seconds(5))
                        return
                    }
                }
            }
            // Whichever ends first ends the connection.
            try await group.next()
            group.cancelAll()
        }
    }

    /// Answers one message; false when the connection is to close.
    private func handle(_ message: WebSocketMessage, _ state: State, _ mailbox: Mailbox) async throws -> Bool {
        let data: Data = switch message {
        case let .text(text): Data(text.utf8)
        case let .binary(buffer): Data(buffer: buffer)
        }
        let frame: ControlFrame
        do {
            frame = try ControlFrame.decode(data, .toPortal(from: peer))
        } catch {
            mailbox.send(.reply(error.reply), ref: error.ref)
            return true
        }
        func reply(_ answer: Reply) { mailbox.send(.reply(answer), ref: frame.ref) }
        switch frame.message {
        case .heartbeat:
            return true
        case .relayJoin(let join):
            guard versionSpoken(join.version, frame, mailbox) else { return false }
            if let problem = Self.problem(with: join) {
                reply(.error("invalid_payload", "join: \(problem)"))
                return true
            }
            guard !state.joined else {
                reply(.error("already_joined", "this connection has joined already"))
                return true
            }
            let id = await presence.connect(join, token: token.id, mailbox: mailbox)
            state.lock.withLock { state.relay = id }
            logger.info("relay online", metadata: ["relay": "\(join.name)", "id": "\(id)"])
            reply(.ok)
            await hub.relaysChanged()
            return true
        case .join(let join):
            guard versionSpoken(join.version, frame, mailbox) else { return false }
            guard !state.joined else {
                reply(.error("already_joined", "this connection has joined already"))
                return true
            }
            do {
                let (device, initial) = try await hub.join(join, token: token, peer: peer, address: address, mailbox: mailbox)
                state.lock.withLock { state.device = device.id }
                logger.info("\(peer.rawValue) online", metadata: ["device": "\(device.id)", "name": "\(device.name)"])
                reply(.ok)
                mailbox.send(initial)
            } catch .invalid(let problem) {
                reply(.error("invalid_payload", "join: \(problem)"))
            } catch .unavailable(let problem) {
                reply(.error("unavailable", problem))
            }
            return true
        default:
            guard let device = state.lock.withLock({ state.device }) else {
                reply(.error("join_required", "send join first"))
                return true
            }
            switch frame.message {
            case .reply:
                break  // answers to what the portal asked are not awaited
            case .createFlow(let request):
                // Each waits up to the confirmation timeout: a client gets a bounded number at once.
                let started = state.lock.withLock { () -> Bool in
                    guard state.flowsInProgress < Self.flowsInProgressLimit else { return false }
                    state.flowsInProgress += 1
                    return true
                }
                guard started else {
                    reply(.error("busy", "\(Self.flowsInProgressLimit) flows are being created for this device already; wait for their answers"))
                    return true
                }
                Task {
                    await hub.createFlow(from: device, request, ref: frame.ref)
                    state.lock.withLock { state.flowsInProgress -= 1 }
                }
            case .flowAuthorized(let confirmation):
                if !(await hub.flowAuthorized(by: device, confirmation)) {
                    reply(.error("unknown_flow", "no flow \(confirmation.flowID) waits for this gateway's confirmation"))
                }
            case .iceCandidates(let candidates):
                if !(await hub.forward(candidates, from: device)) {
                    reply(.error("unknown_flow", "this device is not an end of flow \(candidates.flowID)"))
                }
            default:
                reply(.error("unknown_event", "\(frame.message.event) is not taken from a \(peer.rawValue)"))
            }
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
        if join.secret.utf8.count < 16 { return "\"secret\" must be at least 16 bytes" }
        return nil
    }

    /// Whether the peer's protocol version is spoken here; if not, it is told so and the connection closed.
    private func versionSpoken(_ version: String, _ frame: ControlFrame, _ mailbox: Mailbox) -> Bool {
        guard ProtocolVersion.isSpoken(version) else {
            mailbox.send(.reply(.error("unsupported_version",
                                       "protocol version \(version) is not spoken here; this portal speaks \(ProtocolVersion.current)")),
                         ref: frame.ref)
            mailbox.close("unsupported protocol version", code: .protocolError)
            return false
        }
        return true
    }
}

/// Writes a connection's messages as WebSocket text frames straight to its channel, a batch in one
/// flush: a gateway's ten `reject_access` leave in one system call rather than ten (the WebSocket
/// handler's writer, used here only to close, flushes every frame). No WebSocket extension is
/// negotiated, so a frame needs nothing but its framing, which the channel's frame encoder adds.
/// Batches are handed to the event loop in the order they are submitted, which keeps their order.
struct FrameWriter: Sendable {
    let channel: any Channel
    let logger: Logger

    /// Writes `frames` on the channel's event loop, encoded there (so that telling a thousand devices
    /// spreads the encoding over the event loops rather than doing it all on the caller's thread);
    /// `handed` is called once, when they were handed to the socket (or could not be).
    func submit(_ frames: [ControlFrame], handed: @escaping @Sendable () -> Void = {}) {
        guard !frames.isEmpty else { return handed() }
        let (channel, logger) = (channel, logger)
        channel.eventLoop.execute {
            for frame in frames {
                do {
                    let payload = try frame.encoded()
                    channel.write(WebSocketFrame(fin: true, opcode: .text, data: channel.allocator.buffer(bytes: payload)), promise: nil)
                } catch {
                    logger.error("a message could not be encoded; it is not sent", metadata: ["event": "\(frame.message.event)", "error": "\(error)"])
                }
            }
            channel.flush()
            handed()
        }
    }

    /// Returns once every batch submitted before was handed to the channel: what the channel is given
    /// next (a close frame) follows them out.
    func written() async throws {
        try await channel.eventLoop.submit {}.get()
    }
}
