package import BPFMaps

/// The user-space side of `bpf/relay.bpf.c`, the relay's ChannelData fast path: the program, its
/// config slot, its two route maps and its statistics, with the layouts of `gatehouse_maps.h`.
///
/// Nothing is relayed in the kernel until `apply` wrote a config: the slot starts zeroed and the
/// program reads zeros as "not configured". The caller (the relay's `XDPRouter`) writes the whole
/// config at every apply and never skips a write because the value "did not change".
package final class RelayXDPProgram: Sendable {
    package let object: BPFObject
    private let config: BPFMap<UInt32, relay_config>
    /// Client → peer routes: (client, channel) → (peer, allocation port).
    package let toPeer: BPFMap<relay_channel, relay_peer>
    /// Peer → client routes: (peer, allocation port) → (client, channel).
    package let toClient: BPFMap<relay_peer, relay_channel>
    private let stats: BPFPerCPUMap<UInt32, relay_stats>

    /// Loads the embedded program through the verifier. Needs CAP_BPF (root).
    package init() throws(BPFError) {
        object = try BPFObject(.relay)
        config = try object.map(named: "relay_config")
        toPeer = try object.map(named: "relay_to_peer")
        toClient = try object.map(named: "relay_to_client")
        stats = try object.perCPUMap(named: "relay_stats")
    }

    /// Writes `value` to the config slot, always.
    package func apply(_ value: relay_config) throws(BPFError) {
        try config.update(value, forKey: 0)
    }

    /// What the kernel holds in the config slot (zeros until the first `apply`).
    package func kernelConfig() throws(BPFError) -> relay_config? {
        try config.lookup(0)
    }

    /// The kernel's counters by reason, summed over CPUs.
    package func statistics() throws(BPFError) -> [RelayXDPReason: RelayXDPCount] {
        var result: [RelayXDPReason: RelayXDPCount] = [:]
        for reason in RelayXDPReason.allCases {
            let perCPU = try stats.lookup(reason.rawValue) ?? []
            result[reason] = RelayXDPCount(
                packets: perCPU.reduce(0) { $0 + $1.packets }, bytes: perCPU.reduce(0) { $0 + $1.bytes })
        }
        return result
    }

    /// Attaches the XDP entry point to `interface` (in the calling thread's network namespace).
    package func attach(to interface: String, mode: XDPMode) throws(BPFError) -> XDPAttachment {
        try XDPAttachment.attach(try object.program(named: "gatehouse_relay_xdp"), to: interface, mode: mode)
    }
}

/// Packets and received frame bytes of one statistics reason.
package typealias RelayXDPCount = BPFCount

/// The reasons of `relay_stats` (`enum relay_stat` in `gatehouse_maps.h`), with the names metrics use.
package enum RelayXDPReason: UInt32, CaseIterable, Sendable {
    case toPeer, toClient, hairpin
    case passNotConfigured, passNotIP, passNotUDP, passIPOptions, passFragment, passMalformed
    case passNotRelayAddress, passNotRelayPort, passSourcePort, passSTUN, passNotChannelData
    case passChannelDataLength, passNoRoute, passTTL, passTooBig, passUnsafe
    case dropped

    /// The C enumerator's value; the cases are declared in the header's order, and `layouts.c` plus
    /// `RelayXDPProgramTests` check the count.
    package static let kernelCount = Int(RELAY_STAT_COUNT.rawValue)

    /// Relayed in the kernel (as opposed to passed up or dropped).
    package var isRelayed: Bool { self == .toPeer || self == .toClient || self == .hairpin }

    /// What the program did: "relayed", "passed" or "dropped".
    package var action: String {
        switch self {
        case .toPeer, .toClient, .hairpin: "relayed"
        case .dropped: "dropped"
        default: "passed"
        }
    }

    /// The metric label: the C name without its prefix, lower case.
    package var label: String {
        switch self {
        case .toPeer: "to_peer"
        case .toClient: "to_client"
        case .hairpin: "hairpin"
        case .passNotConfigured: "not_configured"
        case .passNotIP: "not_ip"
        case .passNotUDP: "not_udp"
        case .passIPOptions: "ip_options"
        case .passFragment: "fragment"
        case .passMalformed: "malformed"
        case .passNotRelayAddress: "not_relay_address"
        case .passNotRelayPort: "not_relay_port"
        case .passSourcePort: "source_port"
        case .passSTUN: "stun"
        case .passNotChannelData: "not_channel_data"
        case .passChannelDataLength: "channel_data_length"
        case .passNoRoute: "no_route"
        case .passTTL: "ttl"
        case .passTooBig: "too_big"
        case .passUnsafe: "unsafe"
        case .dropped: "dropped"
        }
    }
}
