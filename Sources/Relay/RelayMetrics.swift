import BPF
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
    let kernelPackets: Counter
    let xdpMapErrors: Counter
    let xdpAttached: Gauge

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
            name: "gatehouse_relay_dropped_sends_total", help: "Datagrams dropped because a send buffer stayed full past the per-socket backlog bound, or the socket failed")
        kernelPackets = registry.makeCounter(
            name: "gatehouse_relay_relayed_packets_total", labels: [("path", "kernel")],
            help: "Packets relayed between clients and peers")
        xdpMapErrors = registry.makeCounter(
            name: "gatehouse_relay_xdp_map_errors_total",
            help: "Kernel route writes that failed (those routes are relayed in user space)")
        xdpAttached = registry.makeGauge(
            name: "gatehouse_relay_xdp_attached", help: "1 while the XDP fast path is attached, else 0")
    }

    /// What the XDP program did, by reason (`relay_stats`): packets, and bytes of the frames received.
    func xdp(_ reason: RelayXDPReason) -> (packets: Counter, bytes: Counter) {
        let labels = [("action", reason.action), ("reason", reason.label)]
        return (
            registry.makeCounter(name: "gatehouse_relay_xdp_packets_total", labels: labels, help: "Packets the XDP program handled, by action and reason"),
            registry.makeCounter(name: "gatehouse_relay_xdp_bytes_total", labels: labels, help: "Received frame bytes the XDP program handled, by action and reason"))
    }

    func requests(method: String, code: Int) -> Counter {
        registry.makeCounter(
            name: "gatehouse_relay_requests_total", labels: [("method", method), ("code", String(code))],
            help: "STUN/TURN requests answered, by method and result code")
    }
}
