package import Actors
import Foundation
package import Logging
package import ServiceLifecycle
import Synchronization

/// `gatehouse relay` as a service: the engine on its own thread while `run()` waits for shutdown. On
/// graceful shutdown (SIGTERM) the engine stops taking traffic and the thread ends.
package final class RelayService: Service, Sendable {
    private let engine: RelayEngine
    private let logger: Logger
    private let running = Atomic<Bool>(false)

    /// Binds the listeners now, so that a port already in use fails start-up with its reason.
    package init(configuration: RelayConfiguration, metrics: RelayMetrics, logger: Logger) throws {
        engine = try RelayEngine(configuration: configuration, metrics: metrics, logger: logger)
        self.logger = logger
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
            for await _ in finished.stream {}
        } onGracefulShutdown: {
            engine.stop()
        }
        running.store(false, ordering: .relaxed)
        logger.info("relay stopped")
    }
}
