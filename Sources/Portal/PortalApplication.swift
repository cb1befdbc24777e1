import AdminAPI
import ControlProtocol
import Foundation
import NIOCore
package import Hummingbird
import HummingbirdWebSocket
package import Logging
package import Persistence
import Identifiers
package import Prometheus
package import ServiceLifecycle
import HummingbirdTLS
import HummingbirdCore
package import NIOSSL

/// How the portal is run.
package struct PortalConfiguration: Sendable {
    package var host = "127.0.0.1"
    package var port = 8080
    /// The realtime API's settings (heartbeat interval).
    package var realtime = RealtimeEndpoint.Configuration()
    /// Flows, relay credentials.
    package var hub = RealtimeHub.Configuration()
    /// HTTPS and WSS with this certificate and key; plain HTTP without (loopback, or `--insecure`).
    package var tls: TLSConfiguration?

    package init() {}
}

/// The portal's HTTP application: `/healthz`, `/readyz` and the admin API under `/api/v1`.
package enum PortalApplication {
    /// The largest request body the admin API reads.
    static let maximumBody = 64 * 1024

    package static func build(
        configuration: PortalConfiguration, repository: any PortalRepository, logger: Logger,
        evaluator: PolicyEvaluator? = nil, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        presence: RelayPresence = RelayPresence(), hub: RealtimeHub? = nil, onListening: @escaping @Sendable (String) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let evaluator = evaluator ?? PolicyEvaluator(repository: repository)
        // Without a hub of the caller's (which runs it), devices can join but hear no live changes.
        let hub = hub ?? RealtimeHub(repository: repository, evaluator: evaluator, presence: presence, secrets: .ephemeral(),
                                     configuration: configuration.hub, logger: logger)
        let server = RealtimeEndpoint.server(repository: repository, presence: presence, hub: hub, configuration: configuration.realtime,
                                             tls: configuration.tls)
        return Application(
            router: router(repository: repository, evaluator: evaluator, registry: registry, presence: presence, hub: hub),
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "gatehouse-portal"),
            onServerRunning: { channel in
                let address = channel.localAddress
                await onListening("\(address?.ipAddress ?? configuration.host):\(address?.port ?? configuration.port)")
            },
            logger: logger)
    }

    /// Every route of the portal, over `repository`.
    package static func router(
        repository: any PortalRepository, evaluator: PolicyEvaluator? = nil, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        presence: RelayPresence = RelayPresence(), hub: RealtimeHub? = nil
    ) -> Router<PortalRequestContext> {
        let evaluator = evaluator ?? PolicyEvaluator(repository: repository)
        let hub = hub ?? RealtimeHub(repository: repository, evaluator: evaluator, presence: presence, secrets: .ephemeral(),
                                     logger: Logger(label: "gatehouse.portal"))
        let router = Router(context: PortalRequestContext.self)
        router.add(middleware: RequestMetrics(registry: registry))
        router.add(middleware: MethodNotAllowed())
        router.get("healthz") { _, _ in "ok\n" }
        // The realtime paths reached without a WebSocket upgrade: the upgrade was refused (no token, a bad
        // one, one of another kind) or never asked for. Say which, as JSON.
        for peer in Peer.allCases {
            router.get(RouterPath(peer.path)) { request, _ -> Response in
                _ = try await RealtimeEndpoint.authenticate(request, as: peer, repository: repository)
                throw APIError(.upgradeRequired, code: "upgrade_required", message: "\(peer.path) is a WebSocket endpoint: upgrade the connection")
            }
        }
        router.get("readyz") { _, _ -> Response in
            // Ready when the database answers.
            do {
                _ = try await repository.account(id: AccountID())
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
            } catch {
                return Response(status: .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: "database unavailable\n")))
            }
        }
        router.get("metrics") { _, _ -> Response in
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.get("api/v1/openapi.json") { _, _ -> Response in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: AdminAPI.OpenAPIDocument.json)))
        }
        let api = router.group("api/v1")
            .add(middleware: AdminAuthentication(repository: repository, evaluator: evaluator,
                                                 notifications: registry.makeCounter(name: "gatehouse_portal_access_notifications_total")))
        AccountController(repository: repository).add(to: api.group("account"))
        ActorsController(repository: repository).add(to: api.group("actors"))
        GroupsController(repository: repository).add(to: api.group("groups"))
        SitesController(repository: repository).add(to: api.group("sites"))
        ResourcesController(repository: repository).add(to: api.group("resources"))
        PoliciesController(repository: repository).add(to: api.group("policies"))
        AccessController(repository: repository, evaluator: evaluator).add(to: api.group("access"))
        TokensController(repository: repository).add(to: api.group("tokens"))
        DevicesController(repository: repository, hub: hub, kind: .client).add(to: api.group("clients"))
        DevicesController(repository: repository, hub: hub, kind: .gateway).add(to: api.group("gateways"))
        AuditController(repository: repository).add(to: api.group("audit"))
        RelaysController(presence: presence).add(to: api.group("relays"))
        return router
    }
}

/// Runs the realtime hub's deliveries for as long as the portal runs.
package struct RealtimeService: Service {
    let hub: RealtimeHub

    package init(hub: RealtimeHub) {
        self.hub = hub
    }

    package func run() async throws {
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown { await hub.run() }
        } onGracefulShutdown: {}
    }
}
