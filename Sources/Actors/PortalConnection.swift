import AsyncHTTPClient
package import ControlProtocol
package import Foundation
import Hummingbird
import HummingbirdWSClient
package import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Where a relay, gateway or client finds its portal, and how it proves who it is.
package struct PortalEndpoint: Sendable {
    /// `https://portal.example:8443` or, on loopback or with `insecure`, `http://127.0.0.1:8080`.
    package var url: URL
    package var token: Secret<String>
    /// A PEM file of the certificate authorities the portal's certificate is checked against (default:
    /// the system's).
    package var caFile: String?

    /// Checks the URL: HTTPS, or plain HTTP only to a loopback address or when `insecure` says so.
    package init(url text: String, token: Secret<String>, caFile: String?, insecure: Bool) throws(PortalEndpointError) {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw .malformed(text)
        }
        switch scheme {
        case "https":
            // The certificate names the portal; the WebSocket client also sends the host as TLS SNI,
            // which may not be an IP address.
            guard !Self.isIPLiteral(host) else { throw .ipOverTLS(text) }
        case "http":
            guard insecure || Self.isLoopback(host) else { throw .plainHTTP(text) }
        default: throw .malformed(text)
        }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) { throw .caFile(caFile) }
        self.url = url
        self.token = token
        self.caFile = caFile
    }

    static func isIPLiteral(_ host: String) -> Bool {
        host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    var isTLS: Bool { url.scheme?.lowercased() == "https" }

    /// The WebSocket URL of a peer's path.
    func webSocketURL(_ peer: Peer) -> String {
        var components = URLComponents(url: url, resolvingAgainstBaseURL: false) ?? URLComponents()
        components.scheme = isTLS ? "wss" : "ws"
        components.path = peer.path
        return components.string ?? url.absoluteString
    }

    /// The HTTPS URL of a peer's path, asked without an upgrade to learn why an upgrade was refused.
    func httpURL(_ peer: Peer) -> String {
        var components = URLComponents(url: url, resolvingAgainstBaseURL: false) ?? URLComponents()
        components.path = peer.path
        return components.string ?? url.absoluteString
    }

    /// Client TLS that checks the portal's certificate against the system's roots or `caFile`. A
    /// closing connection waits at most a second for the portal's close_notify (NIO's default, five,
    /// held every shutdown of a relay, gateway or client that long).
    func tlsConfiguration() -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caFile { configuration.trustRoots = .file(caFile) }
        configuration.shutdownTimeout = .seconds(1)
        return configuration
    }
}

extension PortalEndpoint {
    /// One HTTP request to the portal (`path` from the root, with any query), its certificate checked as
    /// the realtime connection checks it; the status and body.
    package func request(_ method: String, path: String, body: Data? = nil, timeout: Duration = .seconds(30)) async throws
        -> (status: Int, body: Data)
    {
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tlsConfiguration()))
        do {
            var components = URLComponents(url: url, resolvingAgainstBaseURL: false) ?? URLComponents()
            components.percentEncodedPath = ""
            components.query = nil
            var request = HTTPClientRequest(url: (components.string ?? url.absoluteString) + path)
            request.method = .init(rawValue: method)
            request.headers.add(name: "Authorization", value: "Bearer \(token.reveal())")
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(bytes: body))
            }
            let response = try await client.execute(request, timeout: .init(timeout))
            let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
            try await client.shutdown()
            return (Int(response.status.code), Data(buffer: bytes))
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

package enum PortalEndpointError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case plainHTTP(String)
    case caFile(String)
    case ipOverTLS(String)

    package var description: String {
        switch self {
        case let .malformed(url): "portal URL \"\(url)\": expected https://HOST[:PORT] (or http:// on loopback)"
        case let .plainHTTP(url):
            "portal URL \"\(url)\": plain HTTP would send the token in the clear; use https://, or --insecure if the network is trusted"
        case let .caFile(path): "CA file \(path) cannot be read"
        case let .ipOverTLS(url): "portal URL \"\(url)\": HTTPS needs the portal's DNS name, as its certificate names it, not an IP address"
        }
    }
}

/// What a relay, gateway or client does over its portal connection.
package protocol PortalSession: Sendable {
    /// The `join` sent at each connection.
    func join() async -> ControlMessage
    /// A frame from the portal (after the `join` was accepted); answers go through `sender`.
    func received(_ frame: ControlFrame, sender: PortalSender) async
    /// The connection was joined (true) or lost (false).
    func connectionChanged(joined: Bool) async
}

/// Sends frames over the current connection (in order, without waiting for the socket).
package struct PortalSender: Sendable {
    let continuation: AsyncStream<ControlFrame>.Continuation

    /// A sender that yields into `continuation` (the connection's own, or a benchmark's).
    package init(continuation: AsyncStream<ControlFrame>.Continuation) {
        self.continuation = continuation
    }

    package func send(_ message: ControlMessage, ref: String? = nil) {
        continuation.yield(ControlFrame(message, ref: ref))
    }
}

/// A relay's, gateway's or client's connection to the portal (portal spec, "Realtime API"): joins,
/// keeps the heartbeat (three silent intervals and the connection is given up), hands frames to the
/// session, and reconnects after any loss with exponential backoff and jitter. A refused token or join
/// is reported once per attempt, clearly, and retried only at the longest backoff: never in a tight loop.
package actor PortalConnection {
    package struct Configuration: Sendable {
        package var heartbeatInterval: Duration = .seconds(10)
        package var initialBackoff: Duration = .milliseconds(500)
        package var maximumBackoff: Duration = .seconds(30)

        package init() {}
    }

    private let endpoint: PortalEndpoint
    private let peer: Peer
    private let configuration: Configuration
    private let logger: Logger
    package private(set) var joined = false

    package init(endpoint: PortalEndpoint, peer: Peer, configuration: Configuration = .init(), logger: Logger) {
        self.endpoint = endpoint
        self.peer = peer
        self.configuration = configuration
        self.logger = logger
    }

    private enum Ending: Error {
        /// The portal refused the token (HTTP 401/403) or the join: retrying soon would not help.
        case refused(String)
        /// Anything else: the network, the portal going away, silence.
        case lost(String)
    }

    /// Connects and reconnects until the task is cancelled.
    package nonisolated func run(_ session: some PortalSession) async {
        var backoff = configuration.initialBackoff
        while !Task.isCancelled {
            let started = ContinuousClock.now
            let ending = await connectOnce(session)
            await session.connectionChanged(joined: false)
            await setJoined(false)
            if Task.isCancelled { return }
            let wait: Duration
            switch ending {
            case let .refused(reason):
                logger.error("the portal refused this \(peer.rawValue): \(reason); retrying in \(configuration.maximumBackoff)")
                wait = configuration.maximumBackoff
                backoff = configuration.maximumBackoff
            case let .lost(reason):
                // A connection that lasted a while starts the backoff over.
                if ContinuousClock.now - started > configuration.maximumBackoff { backoff = configuration.initialBackoff }
                wait = backoff * Double.random(in: 0.5...1.0)
                logger.notice("portal connection lost: \(reason); reconnecting", metadata: ["in": "\(wait)"])
                backoff = min(backoff * 2, configuration.maximumBackoff)
            }
            try? await Task.sleep(for: wait)
        }
    }

    private func setJoined(_ value: Bool) {
        joined = value
    }

    /// Ends the current connection at once; `run` connects again (after a network change: the old one
    /// may be bound to an address that is gone, and would take three heartbeats to notice).
    package func reconnect() {
        kick?.yield()
    }

    private var kick: AsyncStream<Void>.Continuation?

    private func setKick(_ continuation: AsyncStream<Void>.Continuation?) {
        kick = continuation
    }

    private nonisolated func connectOnce(_ session: some PortalSession) async -> Ending {
        let (outgoing, continuation) = AsyncStream<ControlFrame>.makeStream()
        let sender = PortalSender(continuation: continuation)
        let result: Result<Ending, any Error>
        do {
            var headers = HTTPFields()
            headers[.authorization] = "Bearer \(endpoint.token.reveal())"
            let ending = Box(Ending.lost("the portal closed the connection"))
            let client = WebSocketClient(
                url: endpoint.webSocketURL(peer),
                configuration: .init(maxFrameSize: 4 * ControlFrame.maximumSize, additionalHeaders: headers, closeTimeout: .seconds(1), validateUTF8: true),
                tlsConfiguration: endpoint.isTLS ? endpoint.tlsConfiguration() : nil, logger: logger
            ) { inbound, outbound, _ in
                let result = await self.converse(session, inbound: inbound, outbound: outbound, outgoing: outgoing, sender: sender)
                ending.value = result
            }
            try await client.run()
            result = .success(ending.value)
        } catch {
            result = .failure(error)
        }
        continuation.finish()
        switch result {
        case let .success(ending): return ending
        case let .failure(error):
            if "\(error)".contains("upgrade failed"), let refusal = await refusal() { return .refused(refusal) }
            return .lost("\(error)")
        }
    }

    /// One connection's life after the upgrade: `join`, then frames both ways and heartbeats.
    private nonisolated func converse(_ session: some PortalSession, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
                                      outgoing: AsyncStream<ControlFrame>, sender: PortalSender) async -> Ending
    {
        let joinRef = "join"
        sender.send(await session.join(), ref: joinRef)
        let lastHeard = LastHeard()
        let interval = configuration.heartbeatInterval
        let (kicks, kick) = AsyncStream<Void>.makeStream()
        await setKick(kick)
        return await withTaskGroup(of: Ending.self) { group in
            group.addTask {
                for await _ in kicks { return .lost("reconnecting after a network change") }
                return .lost("stopped")
            }
            group.addTask {
                for await frame in outgoing {
                    do {
                        try await outbound.write(.text(String(decoding: try frame.encoded(), as: UTF8.self)))
                    } catch {
                        return .lost("write failed: \(error)")
                    }
                }
                return .lost("stopped")
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if lastHeard.silence >= interval * 3 { return .lost("no heartbeat from the portal for three intervals") }
                    sender.send(.heartbeat)
                }
                return .lost("stopped")
            }
            group.addTask { [peer] in
                var joined = false
                do {
                    for try await message in inbound.messages(maxSize: 4 * ControlFrame.maximumSize) {
                        lastHeard.touch()
                        let data: Data = switch message {
                        case let .text(text): Data(text.utf8)
                        case let .binary(buffer): Data(buffer: buffer)
                        }
                        guard let frame = try? ControlFrame.decode(data, .fromPortal(to: peer)) else {
                            self.logger.warning("ignored a frame from the portal that does not fit the protocol")
                            continue
                        }
                        if !joined, frame.ref == joinRef, case let .reply(reply) = frame.message {
                            guard reply.status == .ok else {
                                return .refused("join: \(reply.code ?? "error"): \(reply.message ?? "")")
                            }
                            joined = true
                            await self.setJoined(true)
                            self.logger.info("joined the portal", metadata: ["url": "\(self.endpoint.url)"])
                            await session.connectionChanged(joined: true)
                            continue
                        }
                        if case .heartbeat = frame.message { continue }
                        await session.received(frame, sender: sender)
                    }
                } catch {
                    return .lost("read failed: \(error)")
                }
                return .lost("the portal closed the connection")
            }
            let first = await group.next() ?? .lost("stopped")
            kick.finish()
            await self.setKick(nil)
            group.cancelAll()
            try? await outbound.close(.normalClosure, reason: nil)
            return first
        }
    }

    /// Why the portal refused the upgrade, asked again without one (it answers 401 or 403 with a JSON
    /// message); nil when it was not a refusal of the token.
    private nonisolated func refusal() async -> String? {
        var tls = endpoint.tlsConfiguration()
        tls.certificateVerification = endpoint.isTLS ? .fullVerification : .none
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        defer { Task { try? await client.shutdown() } }
        var request = HTTPClientRequest(url: endpoint.httpURL(peer))
        request.headers.add(name: "Authorization", value: "Bearer \(endpoint.token.reveal())")
        guard let response = try? await client.execute(request, timeout: .seconds(10)),
              response.status == .unauthorized || response.status == .forbidden
        else { return nil }
        let body = (try? await response.body.collect(upTo: 64 * 1024)).map { String(buffer: $0) } ?? ""
        return "HTTP \(response.status.code) \(body.trimmingCharacters(in: .whitespacesAndNewlines))"
    }
}

/// When a frame was last heard.
private final class LastHeard: Sendable {
    private let instant = Mutex(ContinuousClock.now)

    func touch() {
        instant.withLock { $0 = .now }
    }

    var silence: Duration { ContinuousClock.now - instant.withLock { $0 } }
}

/// A value set in one task and read in another.
private final class Box<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>

    init(_ value: Value) {
        storage = Mutex(value)
    }

    var value: Value {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}
