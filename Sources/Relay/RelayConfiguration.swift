package import Actors
package import TURN

/// Everything `gatehouse relay` is told, validated before anything starts. Built in `main` from flags,
/// then `GATEHOUSE_RELAY_*` environment variables, then these defaults; nothing below reads the
/// environment.
package struct RelayConfiguration: Sendable {
    /// Addresses clients reach the relay at (XOR-RELAYED-ADDRESS carries them); at least one.
    package var publicIPv4: SocketAddress.IP?
    package var publicIPv6: SocketAddress.IP?
    /// Where the sockets bind; by default every address of the family that has a public address.
    package var bindIPv4: SocketAddress.IP?
    package var bindIPv6: SocketAddress.IP?
    /// The STUN/TURN port (RFC 8489 default 3478); 0 lets the kernel choose (tests).
    package var listenPort: UInt16 = 3478
    /// Relayed ports are drawn at random from this range (RFC 8656 section 7.2 suggests 49152-65535).
    package var portRange: ClosedRange<UInt16> = 49152...65535
    package var realm = "gatehouse"
    /// TURN REST API shared secrets; several may be valid at once (rotation). The first one is
    /// current.
    package var authSecrets: [Secret<String>] = []
    /// Peer ranges allowed despite the secure defaults (e.g. loopback for tests), and extra ranges refused.
    package var allowPeers: [String] = []
    package var denyPeers: [String] = []
    /// Allocations one username may hold at once.
    package var allocationsPerUsername = 32
    /// `/healthz`, `/readyz` and `/metrics`.
    package var operationsHost = "127.0.0.1"
    package var operationsPort = 9478
    /// Where the XDP fast path attaches (nil: user space only) and how.
    package var xdpInterface: String?
    package var xdpMode: String = "native"
    /// Permission and channel lifetimes (RFC 8656's unless shortened, e.g. by tests of expiry).
    package var timers = Allocation.Timers.rfc8656

    package init() {}

    /// Checks the whole configuration and says what is wrong in terms of the flags.
    package func validate() throws(ConfigurationError) {
        if publicIPv4 == nil && publicIPv6 == nil {
            throw .invalid("--public-ipv4/--public-ipv6", "at least one public address is required")
        }
        if case .v6 = publicIPv4 { throw .invalid("--public-ipv4", "is an IPv6 address") }
        if case .v4 = publicIPv6 { throw .invalid("--public-ipv6", "is an IPv4 address") }
        if portRange.lowerBound == 0 { throw .invalid("--port-range", "ports must be 1-65535") }
        if portRange.contains(listenPort) {
            throw .invalid("--port-range", "\(portRange.lowerBound)-\(portRange.upperBound) contains the listen port \(listenPort)")
        }
        if authSecrets.isEmpty {
            throw .invalid("--auth-secret", "a TURN REST API secret is required (or GATEHOUSE_RELAY_AUTH_SECRET, or --auth-secret-file)")
        }
        if authSecrets.contains(where: { $0.reveal().isEmpty }) { throw .invalid("--auth-secret", "must not be empty") }
        if realm.isEmpty || realm.utf8.count > 763 { throw .invalid("--realm", "must be 1-763 bytes (RFC 8489 section 14.9)") }
        if allocationsPerUsername < 1 { throw .invalid("--allocations-per-username", "must be at least 1") }
        if !(0...65535).contains(operationsPort) { throw .invalid("--operations-port", "must be 0-65535") }
        if !["native", "generic"].contains(xdpMode) { throw .invalid("--xdp-mode", "must be native or generic") }
        if xdpInterface?.isEmpty == true { throw .invalid("--xdp", "must name a network interface") }
        for (option, value) in [("--permission-lifetime", timers.permissionLifetime), ("--channel-lifetime", timers.channelLifetime)]
        where value < .seconds(1) || value > .seconds(3600) {
            throw .invalid(option, "must be 1-3600 seconds")
        }
        if timers.channelCooldown < .zero || timers.channelCooldown > .seconds(3600) {
            throw .invalid("--channel-cooldown", "must be 0-3600 seconds")
        }
    }

    /// Parses "49152-65535".
    package static func parsePortRange(_ text: String) throws(ConfigurationError) -> ClosedRange<UInt16> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let low = UInt16(parts[0]), let high = UInt16(parts[1]), low > 0 else {
            throw .invalid("--port-range", "\"\(text)\" is not LOW-HIGH with ports 1-65535")
        }
        guard low <= high else { throw .invalid("--port-range", "\"\(text)\": the low port is above the high port") }
        return low...high
    }
}

/// A configuration value is wrong; says which flag and why.
package enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    /// The option named, and what is wrong with it.
    case invalid(String, String)

    package var description: String {
        switch self {
        case let .invalid(option, problem): "\(option): \(problem)"
        }
    }
}
