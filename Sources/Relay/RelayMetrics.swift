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
    let droppedPeerDatagrams: Counter
    let droppedWork: Counter
    let relayedBindFailures: Counter
    let nonces: Gauge
    let rateLimitedSources: Gauge
    let backlogged: Gauge
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
        droppedPeerDatagrams = registry.makeCounter(
            name: "gatehouse_relay_dropped_peer_datagrams_total", help: "Datagrams from peers without a permission, dropped on arrival")
        droppedWork = registry.makeCounter(
            name: "gatehouse_relay_dropped_session_work_total",
            help: "Requests and datagrams dropped because an allocation's queue was full (a flood on one allocation)")
        relayedBindFailures = registry.makeCounter(
            name: "gatehouse_relay_relayed_bind_failures_total", help: "Relayed ports that were free in the relay's table but would not bind")
        nonces = registry.makeGauge(name: "gatehouse_relay_nonces", help: "Nonces held for clients (bounded)")
        rateLimitedSources = registry.makeGauge(
            name: "gatehouse_relay_rate_limited_sources", help: "Source addresses the 401 rate limiter tracks (bounded)")
        backlogged = registry.makeGauge(
            name: "gatehouse_relay_send_backlog_datagrams", help: "Datagrams waiting for a full send buffer")
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

    /// Why a datagram was not sent.
    enum DropReason: String {
        case backlogFull = "backlog_full", socketFailed = "socket_failed", tooBig = "too_big", closed = "closed"
    }

    func droppedSends(_ reason: DropReason) -> Counter {
        registry.makeCounter(
            name: "gatehouse_relay_dropped_sends_total", labels: [("reason", reason.rawValue)],
            help: "Datagrams not sent: the per-socket backlog was full, the socket failed, the datagram was too big, or its socket closed")
    }

    /// Relayed ports reserved for an RTCP allocation (EVEN-PORT with R), by what became of them.
    func reservations(_ event: String) -> Counter {
        registry.makeCounter(
            name: "gatehouse_relay_reservations_total", labels: [("event", event)],
            help: "Port reservations (RFC 8656 RESERVATION-TOKEN): made, redeemed by a later Allocate, or expired unused")
    }

    func requests(method: String, code: Int) -> Counter {
        registry.makeCounter(
            name: "gatehouse_relay_requests_total", labels: [("method", method), ("code", String(code))],
            help: "STUN/TURN requests answered, by method and result code")
    }
}
