package import Actors
package import TURN
import Addresses

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
    /// How long a nonce lasts, how many requests it serves, and how many are held at once (the spec's
    /// one hour and 10,000 uses; shorter only for tests of staleness and sweeping).
    package var nonceLimits = NonceTable.Limits()

    // Our choice: bounds on what waits for an allocation's actor. Work beyond them is a flood on one
    // allocation; it is dropped and counted (clients retransmit requests; data is best-effort).
    /// Items (requests, datagrams) gathered for one allocation in one turn of the loop.
    static let queuedWorkPerAllocation = 1024
    /// Batches waiting for one allocation's actor.
    static let queuedBatchesPerAllocation = 64

    package init() {}

    /// The front door's configuration. `hostAddresses` are the host's own addresses: refused as peers
    /// like the public addresses (except the hairpin to another allocation), so that a client cannot
    /// reach services on the relay's host through it; `--allow-peer` lifts that as it lifts the others.
    func serverConfiguration(hostAddresses: [SocketAddress.IP]) throws -> RelayServer.Configuration {
        var server = RelayServer.Configuration()
        server.realm = realm
        server.secrets = authSecrets.map { $0.reveal() }
        server.relayIPv4 = publicIPv4
        server.relayIPv6 = publicIPv6
        server.portRange = portRange
        server.allocationsPerUsername = allocationsPerUsername
        server.timers = timers
        server.nonceLimits = nonceLimits
        let own = [publicIPv4, publicIPv6, bindIPv4, bindIPv6].compactMap { $0 } + hostAddresses
        server.peerPolicy = PeerPolicy(
            allow: try allowPeers.map { try AddressRange($0) }, deny: try denyPeers.map { try AddressRange($0) },
            relayAddresses: Set(own.filter { $0 != .v4(0) && $0 != .v6(0, 0) }))
        return server
    }

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
            throw .invalid("--auth-secret", "a TURN REST API secret is required (or GATEHOUSE_RELAY_AUTH_SECRET, or --auth-secret-file), unless the relay joins a portal (--portal-url)")
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
        if nonceLimits.lifetime < .seconds(1) || nonceLimits.lifetime > .seconds(86_400) {
            throw .invalid("--nonce-lifetime", "must be 1-86400 seconds")
        }
        if nonceLimits.uses < 1 { throw .invalid("--nonce-uses", "must be at least 1") }
        if nonceLimits.capacity < 16 { throw .invalid("--nonce-capacity", "must be at least 16") }
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
