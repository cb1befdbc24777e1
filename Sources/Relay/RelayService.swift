package import Actors
import BPF
import Foundation
package import Logging
package import ServiceLifecycle
import Synchronization
import TURN

/// `gatehouse relay` as a service: the engine on its own thread while `run()` waits for shutdown, and,
/// with `--xdp`, the XDP router following the engine's channel routes. On graceful shutdown (SIGTERM)
/// the engine stops taking traffic, the XDP program is detached and the thread ends.
package final class RelayService: Service, Sendable {
    private let engine: RelayEngine
    private let router: XDPRouter?
    private let routeChanges: AsyncStream<RouteChange>
    private let logger: Logger
    private let running = Atomic<Bool>(false)

    /// Binds the listeners now, so that a port already in use fails start-up with its reason; with an
    /// XDP interface configured, loads, configures and attaches the fast path (or warns once and goes
    /// on in user space).
    package init(configuration: RelayConfiguration, metrics: RelayMetrics, logger: Logger) throws {
        engine = try RelayEngine(configuration: configuration, metrics: metrics, logger: logger)
        self.logger = logger
        let (stream, continuation) = AsyncStream<RouteChange>.makeStream()
        routeChanges = stream
        if let interface = configuration.xdpInterface {
            // The kernel knows one listen port; with --listen-port 0 both families' listeners must have
            // been given the same one.
            let ports = Set(engine.listenerAddresses.map(\.port))
            router = XDPRouter.start(
                interface: interface, mode: XDPMode(rawValue: configuration.xdpMode) ?? .native, relay: configuration,
                listenPort: ports.count == 1 ? ports.first ?? 0 : 0, metrics: metrics, logger: logger)
        } else {
            router = nil
        }
        if router != nil {
            engine.routeChanges = continuation
            metrics.xdpAttached.set(Int64(1))
        } else {
            continuation.finish()
        }
    }

    /// Where the relay listens (with port 0 in the configuration, the ports the kernel chose).
    package var listenerAddresses: [SocketAddress] { engine.listenerAddresses }

    package var isRunning: Bool { running.load(ordering: .relaxed) }

    package func run() async throws {
        let engine = self.engine
        let finished = AsyncStream<Void>.makeStream()
        let thread = Thread {
            engine.run()
            finished.continuation.finish()
        }
        thread.name = "gatehouse-relay"
        running.store(true, ordering: .relaxed)
        logger.info("relay listening", metadata: ["addresses": "\(engine.listenerAddresses.map(\.description).joined(separator: ","))"])
        thread.start()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                if let router {
                    let changes = routeChanges
                    group.addTask { await router.follow(changes) }
                }
                for await _ in finished.stream {}
                // The engine has stopped: no more route changes.
                engine.routeChanges?.finish()
            }
        } onGracefulShutdown: {
            engine.stop()
        }
        if let router { await router.detach() }
        running.store(false, ordering: .relaxed)
        logger.info("relay stopped")
    }

    /// Brings the kernel counters into the metrics (called before `/metrics` answers).
    package func collectStatistics() async {
        await router?.collectStatistics()
    }

    /// The channel routes of user space and, with XDP, of the kernel (read back from its maps) and the
    /// kernel's config slot, as JSON for `GET /routes`.
    package func routesDocument() async -> String {
        func describe(_ route: KernelRoute) -> [String: Any] {
            ["client": route.client.description, "channel": Int(route.channel), "peer": route.peer.description,
             "relayed_port": Int(route.allocationPort)]
        }
        var document: [String: Any] = [
            "user_space": engine.channelRoutes.map(KernelRoute.init).sorted { $0.description < $1.description }.map(describe),
        ]
        if let router {
            document["xdp_interface"] = await router.interface
            do {
                let (routes, inconsistent) = try await router.kernelRoutes()
                document["kernel"] = routes.sorted { $0.description < $1.description }.map(describe)
                document["kernel_inconsistencies"] = inconsistent
                document["kernel_config"] = try router.kernelConfiguration()
            } catch {
                document["kernel_error"] = "\(error)"
            }
        }
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .prettyPrinted])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
