package import Hummingbird
package import Logging
package import Prometheus

/// Whether a service is ready to take traffic, and if not, why (shown by `/readyz`).
package struct Readiness: Sendable, Equatable {
    package var isReady: Bool
    package var reason: String

    package init(isReady: Bool, reason: String) {
        self.isReady = isReady
        self.reason = reason
    }

    package static let ready = Readiness(isReady: true, reason: "ready")
}

/// The operations endpoints every Gatehouse service serves: `GET /healthz` (the process is alive),
/// `GET /readyz` (it can take traffic: 200 or 503 with the reason), `GET /metrics` (Prometheus text),
/// and whatever JSON documents a service adds (the relay's `/routes`).
package enum OperationsServer {
    /// Builds the HTTP application; run it in the service group. `collect` runs before `/metrics`
    /// answers (to bring counters kept elsewhere, such as the kernel's, up to date); `documents` maps
    /// extra GET paths to JSON bodies. `onListening` gets the bound address (useful with port 0).
    package static func application(
        host: String, port: Int, registry: PrometheusCollectorRegistry,
        readiness: @escaping @Sendable () async -> Readiness,
        collect: @escaping @Sendable () async -> Void = {},
        documents: [String: @Sendable () async -> String] = [:],
        logger: Logger,
        onListening: @escaping @Sendable (String) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("healthz") { _, _ in
            "ok\n"
        }
        router.get("readyz") { _, _ -> Response in
            let state = await readiness()
            return Response(
                status: state.isReady ? .ok : .serviceUnavailable,
                headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: state.reason + "\n")))
        }
        router.get("metrics") { _, _ -> Response in
            await collect()
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        for (path, document) in documents {
            router.get(RouterPath(path)) { _, _ -> Response in
                Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: await document())))
            }
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "gatehouse"),
            onServerRunning: { channel in
                await onListening(channel.localAddress.map { "\($0.ipAddress ?? host):\($0.port ?? port)" } ?? "\(host):\(port)")
            },
            logger: logger
        )
    }
}
