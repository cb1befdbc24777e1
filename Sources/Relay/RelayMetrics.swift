package import Prometheus

/// The relay's metrics, in Prometheus form (`GET /metrics`).
package final class RelayMetrics: Sendable {
    package let registry: PrometheusCollectorRegistry
    let allocations: Gauge
    let channels: Gauge
    let permissions: Gauge
    let userSpacePackets: Counter
    let userSpaceBytes: Counter
    let droppedSends: Counter

    package init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        allocations = registry.makeGauge(name: "gatehouse_relay_allocations", help: "Active TURN allocations")
        channels = registry.makeGauge(name: "gatehouse_relay_channels", help: "Active channel bindings")
        permissions = registry.makeGauge(name: "gatehouse_relay_permissions", help: "Installed permissions")
        userSpacePackets = registry.makeCounter(
            name: "gatehouse_relay_relayed_packets_total", labels: [("path", "user_space")],
            help: "Packets relayed between clients and peers")
        userSpaceBytes = registry.makeCounter(
            name: "gatehouse_relay_relayed_bytes_total", labels: [("path", "user_space")],
            help: "Payload bytes relayed between clients and peers")
        droppedSends = registry.makeCounter(
            name: "gatehouse_relay_dropped_sends_total", help: "Datagrams dropped because a send buffer was full")
    }

    func requests(method: String, code: Int) -> Counter {
        registry.makeCounter(
            name: "gatehouse_relay_requests_total", labels: [("method", method), ("code", String(code))],
            help: "STUN/TURN requests answered, by method and result code")
    }
}
