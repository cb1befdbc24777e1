package import BPFMaps

/// The user-space side of `bpf/gateway.bpf.c`, the gateway's kernel enforcement: the TC program, its
/// LPM trie of per-client rules and its counters, with the layouts of `gatehouse_maps.h`.
///
/// With an empty trie the program drops every packet (no source is a client's): a gateway allows only
/// what its session actors wrote.
package final class GatewayTCProgram: Sendable {
    package let object: BPFObject
    /// (family, client address, destination prefix) → what packets may be.
    package let rules: BPFMap<gateway_rule_key, gateway_rule>
    private let stats: BPFPerCPUMap<UInt32, gateway_stats>

    /// Loads the embedded program through the verifier. Needs CAP_BPF (root).
    package init() throws(BPFError) {
        object = try BPFObject(.gateway)
        rules = try object.map(named: "gateway_rules")
        stats = try object.perCPUMap(named: "gateway_stats")
    }

    /// The classifier itself (for `testRun`).
    package func program() throws(BPFError) -> BPFProgram {
        try object.program(named: "gateway_tc")
    }

    /// Attaches the program to the ingress of `interface` (the tunnel device, where clients' packets
    /// enter the stack), in the calling thread's network namespace. Detach it on shutdown.
    package func attach(to interface: String) throws(BPFError) -> TCAttachment {
        try TCAttachment.attach(try program(), to: interface, direction: .ingress)
    }

    /// The kernel's counters by reason, summed over CPUs.
    package func statistics() throws(BPFError) -> [GatewayTCReason: BPFCount] {
        var result: [GatewayTCReason: BPFCount] = [:]
        for reason in GatewayTCReason.allCases {
            let perCPU = try stats.lookup(reason.rawValue) ?? []
            result[reason] = BPFCount(packets: perCPU.reduce(0) { $0 + $1.packets }, bytes: perCPU.reduce(0) { $0 + $1.bytes })
        }
        return result
    }
}

/// Packets and bytes of one statistics reason.
package struct BPFCount: Equatable, Sendable {
    package var packets: UInt64
    package var bytes: UInt64

    package init(packets: UInt64, bytes: UInt64) {
        self.packets = packets
        self.bytes = bytes
    }
}

/// The reasons of `gateway_stats` (`enum gateway_stat` in `gatehouse_maps.h`), in the header's order.
package enum GatewayTCReason: UInt32, CaseIterable, Sendable {
    case allowed, unknownSource, noRule, filtered, malformed

    package static let kernelCount = Int(GATEWAY_STAT_COUNT.rawValue)

    /// The metric label.
    package var label: String {
        switch self {
        case .allowed: "allowed"
        case .unknownSource: "unknown_source"
        case .noRule: "no_rule"
        case .filtered: "filtered"
        case .malformed: "malformed"
        }
    }
}
