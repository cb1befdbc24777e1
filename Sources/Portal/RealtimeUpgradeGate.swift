import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import ControlProtocol

/// Why an upgrade is refused: the status and the JSON error body, as the admin API writes errors.
struct UpgradeRefusal: Sendable {
    var status: HTTPResponseStatus
    var body: String
}

/// Refuses a realtime WebSocket upgrade whose token does not do (portal spec: "a bad token is refused
/// during the upgrade (HTTP 401) with a JSON error body"). hummingbird-websocket answers every upgrade
/// it declines with a bare 400, so this handler stands between the HTTP decoder and the upgrader: it
/// holds a connection's first request while the token is checked, then lets it through, or answers 401
/// (or 403 for a token of another kind) with the reason and closes. Other requests pass untouched, and
/// the handler leaves the pipeline after the first request either way (only a first request upgrades).
final class RealtimeUpgradeGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case first
        case checking([HTTPServerRequestPart])
        case refused
    }

    private let check: @Sendable (_ path: String, _ authorization: String?) async -> UpgradeRefusal?
    private var state = State.first

    init(check: @escaping @Sendable (_ path: String, _ authorization: String?) async -> UpgradeRefusal?) {
        self.check = check
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch state {
        case .first:
            guard case let .head(head) = part, head.headers["upgrade"].first?.lowercased() == "websocket",
                  Peer.allCases.contains(where: { head.uri.split(separator: "?").first.map(String.init) == $0.path })
            else {
                context.fireChannelRead(data)
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
            state = .checking([part])
            let path = String(head.uri.split(separator: "?").first ?? "")
            let authorization = head.headers["authorization"].first
            let check = self.check
            let promise = context.eventLoop.makePromise(of: UpgradeRefusal?.self)
            promise.completeWithTask { await check(path, authorization) }
            promise.futureResult.assumeIsolated().whenSuccess { refusal in
                self.decided(context: context, refusal)
            }
        case var .checking(held):
            held.append(part)
            state = .checking(held)
        case .refused:
            break
        }
    }

    private func decided(context: ChannelHandlerContext, _ refusal: UpgradeRefusal?) {
        guard case let .checking(held) = state else { return }
        guard let refusal else {
            state = .first
            for part in held { context.fireChannelRead(wrapInboundOut(part)) }
            context.fireChannelReadComplete()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        state = .refused
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "\(refusal.body.utf8.count)")
        headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: refusal.status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: refusal.body)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}

/// The portal's HTTP/1 server with WebSocket upgrades behind `RealtimeUpgradeGate`.
struct GatedWebSocketChannel: ServerChildChannel {
    typealias Value = HTTP1WebSocketUpgradeChannel.Value

    let base: HTTP1WebSocketUpgradeChannel
    let check: @Sendable (_ path: String, _ authorization: String?) async -> UpgradeRefusal?

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try channel.pipeline.syncOperations.addHandler(RealtimeUpgradeGate(check: check), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
