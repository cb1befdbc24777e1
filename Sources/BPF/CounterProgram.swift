package import BPFMaps

/// The user-space side of `bpf/counter.bpf.c`, the foundation's test program. It follows the rules
/// every Gatehouse BPF controller follows: the whole config goes to the map on every apply (never
/// skipped because it "did not change": the slot starts zeroed, and the kernel reads zeros as "not
/// configured"), and statistics are summed over CPUs in user space.
package final class CounterProgram: Sendable {
    package let object: BPFObject
    private let config: BPFMap<UInt32, counter_config>
    private let stats: BPFPerCPUMap<UInt32, counter_stats>
    /// Per-flow counters (IPv4 UDP to the configured port), written by the kernel.
    package let flows: BPFMap<counter_flow_key, counter_stats>

    /// Loads the embedded program. Nothing is configured until `apply` is called.
    package init() throws(BPFError) {
        object = try BPFObject(.counter)
        config = try object.map(named: "counter_config")
        stats = try object.perCPUMap(named: "counter_stats")
        flows = try object.map(named: "counter_flows")
    }

    /// Writes `configuration` to the kernel, always.
    package func apply(_ configuration: CounterConfig) throws(BPFError) {
        try config.update(configuration.kernelValue, forKey: 0)
    }

    /// What the kernel holds in the config slot (zeros until the first `apply`).
    package func kernelConfig() throws(BPFError) -> counter_config? {
        try config.lookup(0)
    }

    /// The kernel's counters, summed over CPUs.
    package func statistics() throws(BPFError) -> CounterStatistics {
        func total(_ reason: counter_reason) throws(BPFError) -> CounterStatistics.Count {
            let perCPU = try stats.lookup(reason.rawValue) ?? []
            return CounterStatistics.Count(
                packets: perCPU.reduce(0) { $0 + $1.packets }, bytes: perCPU.reduce(0) { $0 + $1.bytes })
        }
        return CounterStatistics(
            matched: try total(COUNTER_MATCHED),
            notConfigured: try total(COUNTER_NOT_CONFIGURED),
            other: try total(COUNTER_OTHER))
    }

    /// Attaches the XDP entry point to `interface`.
    package func attachXDP(to interface: String, mode: XDPMode) throws(BPFError) -> XDPAttachment {
        try XDPAttachment.attach(try object.program(named: "counter_xdp"), to: interface, mode: mode)
    }

    /// Attaches the TC entry point to one direction of `interface`.
    package func attachTC(to interface: String, direction: TCDirection) throws(BPFError) -> TCAttachment {
        try TCAttachment.attach(try object.program(named: "counter_tc"), to: interface, direction: direction)
    }
}

/// What the counter program counts.
package struct CounterConfig: Equatable, Sendable {
    /// UDP destination port to count, host byte order.
    package var udpPort: UInt16

    package init(udpPort: UInt16) {
        self.udpPort = udpPort
    }

    /// The defaults: a config equal to these must reach the kernel like any other.
    package static let defaults = CounterConfig(udpPort: 3478)

    /// The kernel's layout: marked configured, port in network byte order.
    package var kernelValue: counter_config {
        counter_config(configured: 1, pad0: 0, udp_port: udpPort.bigEndian, pad1: 0)
    }
}

/// The counter program's statistics, summed over CPUs.
package struct CounterStatistics: Equatable, Sendable {
    package struct Count: Equatable, Sendable {
        package var packets: UInt64
        package var bytes: UInt64
    }

    package var matched: Count
    package var notConfigured: Count
    package var other: Count
}
