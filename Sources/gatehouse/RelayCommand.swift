import Actors
import ArgumentParser
import Foundation
import Logging
import Relay
import ServiceLifecycle

struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Run a STUN/TURN relay (RFC 8489, RFC 8656) for UDP.",
        discussion: """
            Standalone, with time-limited TURN REST API credentials derived from a shared secret \
            (username "<unix-expiry>:<id>", password base64(HMAC-SHA1(secret, username))). Every option \
            can also come from a GATEHOUSE_RELAY_* environment variable (shown in each option's help); \
            flags win. The secret is best given through GATEHOUSE_RELAY_AUTH_SECRET or \
            --auth-secret-file, which keeps it out of the process list. With --portal-url (and a relay             token the operator made with `gatehouse portal relay-token create`) the relay also joins the             portal with a secret drawn at each start, and the portal hands clients and gateways credentials             for it; TURN service never waits for the portal, and /readyz says whether it is joined.
            """
    )

    @Option(name: .customLong("public-ipv4"), help: "Public IPv4 address clients reach the relay at. [GATEHOUSE_RELAY_PUBLIC_IPV4]")
    var publicIPv4: String?
    @Option(name: .customLong("public-ipv6"), help: "Public IPv6 address clients reach the relay at. [GATEHOUSE_RELAY_PUBLIC_IPV6]")
    var publicIPv6: String?
    @Option(name: .customLong("bind-ipv4"), help: "Address the IPv4 sockets bind to (default: all). [GATEHOUSE_RELAY_BIND_IPV4]")
    var bindIPv4: String?
    @Option(name: .customLong("bind-ipv6"), help: "Address the IPv6 sockets bind to (default: all). [GATEHOUSE_RELAY_BIND_IPV6]")
    var bindIPv6: String?
    @Option(help: "STUN/TURN port (default 3478). [GATEHOUSE_RELAY_LISTEN_PORT]")
    var listenPort: UInt16?
    @Option(help: "Relayed ports, LOW-HIGH (default 49152-65535). [GATEHOUSE_RELAY_PORT_RANGE]")
    var portRange: String?
    @Option(help: "Realm (default gatehouse). [GATEHOUSE_RELAY_REALM]")
    var realm: String?
    @Option(help: "TURN REST API secret; repeat to accept several during a rotation. [GATEHOUSE_RELAY_AUTH_SECRET, comma-separated]")
    var authSecret: [String] = []
    @Option(help: "File holding the secret (mode 600). [GATEHOUSE_RELAY_AUTH_SECRET_FILE]")
    var authSecretFile: String?
    @Option(help: "Peer range to allow despite the secure defaults (e.g. 127.0.0.0/8 for tests); repeatable. [GATEHOUSE_RELAY_ALLOW_PEER]")
    var allowPeer: [String] = []
    @Option(help: "Peer range to refuse; repeatable. [GATEHOUSE_RELAY_DENY_PEER]")
    var denyPeer: [String] = []
    @Option(help: "Allocations one username may hold (default 32). [GATEHOUSE_RELAY_ALLOCATIONS_PER_USERNAME]")
    var allocationsPerUsername: Int?
    @Option(name: .customLong("xdp"), help: ArgumentHelp(
        "Network interface to attach the XDP fast path to; ChannelData on bound channels is then relayed in the kernel. Without privileges or XDP support: one warning and user space only. [GATEHOUSE_RELAY_XDP]",
        valueName: "iface"))
    var xdpInterface: String?
    @Option(help: "XDP mode: native (in the driver) or generic (any interface, slower) (default native). [GATEHOUSE_RELAY_XDP_MODE]")
    var xdpMode: String?
    @Option(help: "Seconds a permission lasts (default 300, RFC 8656; shorter only for tests). [GATEHOUSE_RELAY_PERMISSION_LIFETIME]")
    var permissionLifetime: Int?
    @Option(help: "Seconds a channel binding lasts (default 600, RFC 8656; shorter only for tests). [GATEHOUSE_RELAY_CHANNEL_LIFETIME]")
    var channelLifetime: Int?
    @Option(help: "Seconds a nonce stays valid (default 3600; shorter only for tests). [GATEHOUSE_RELAY_NONCE_LIFETIME]")
    var nonceLifetime: Int?
    @Option(help: "Requests one nonce may authenticate before it is stale (default 10000). [GATEHOUSE_RELAY_NONCE_USES]")
    var nonceUses: Int?
    @Option(help: "Nonces held at once for clients; the oldest goes beyond (default 65536). [GATEHOUSE_RELAY_NONCE_CAPACITY]")
    var nonceCapacity: Int?
    @Option(help: "Seconds an expired channel's number and peer stay reserved (default 300, RFC 8656). [GATEHOUSE_RELAY_CHANNEL_COOLDOWN]")
    var channelCooldown: Int?
    @Option(help: "Where /healthz, /readyz and /metrics listen, HOST:PORT (default 127.0.0.1:9478). [GATEHOUSE_RELAY_OPERATIONS_ADDRESS]")
    var operationsAddress: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default info). [GATEHOUSE_LOG_LEVEL]")
    var logLevel: String?
    @Option(help: "Log format: human or json (default human). [GATEHOUSE_LOG_FORMAT]")
    var logFormat: String?
    @OptionGroup(title: "Portal") var portal: PortalConnectionOptions
    @Option(help: "Name the portal shows for this relay (default: the host name). [GATEHOUSE_RELAY_NAME]")
    var name: String?

    func run() async throws {
        let environment = Environment()
        let level = try environment.value(logLevel.map { Logger.Level(rawValue: $0) ?? .info }, "GATEHOUSE_LOG_LEVEL") {
            Logger.Level(rawValue: $0)
        } ?? .info
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level \"\(logLevel)\": must be one of trace, debug, info, notice, warning, error, critical")
        }
        guard let format = LogFormat(rawValue: environment.string(logFormat, "GATEHOUSE_LOG_FORMAT") ?? "human") else {
            throw ValidationError("--log-format: must be human or json")
        }
        LogSetup.bootstrap(level: level, format: format)
        let logger = Logger(label: "gatehouse.relay")

        let endpoint = try portal.endpoint(environment)
        let drawn = endpoint.map { _ in RelayControl.drawSecret() }
        let configuration = try makeConfiguration(environment, drawnSecret: drawn)
        let name = environment.string(self.name, "GATEHOUSE_RELAY_NAME") ?? ProcessInfo.processInfo.hostName
        guard !name.isEmpty, name.count <= 200 else { throw ValidationError("--name must be 1-200 characters") }
        let metrics = RelayMetrics()
        let relay = try RelayService(configuration: configuration, metrics: metrics, logger: logger)
        let connection = try endpoint.map { PortalConnection(endpoint: $0, peer: .relay, configuration: try portal.connection(), logger: logger) }
        let operations = OperationsServer.application(
            host: configuration.operationsHost, port: configuration.operationsPort, registry: metrics.registry,
            readiness: {
                guard relay.isRunning else { return Readiness(isReady: false, reason: "relay not listening") }
                if let connection, !(await connection.joined) { return Readiness(isReady: false, reason: "not joined to the portal") }
                return .ready
            },
            collect: { await relay.collectStatistics() },
            documents: ["routes": { await relay.routesDocument() }],
            logger: logger,
            onListening: { address in logger.info("operations listening", metadata: ["address": "\(address)"]) })
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: relay), .init(service: operations)]
        if let connection, let drawn {
            let control = RelayControl(name: name, secret: drawn, configuration: configuration, relay: relay, logger: logger)
            services.append(.init(service: PortalConnectionService(connection: connection, session: control)))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    func makeConfiguration(_ environment: Environment, drawnSecret: Secret<String>? = nil) throws -> RelayConfiguration {
        var configuration = RelayConfiguration()
        func ip(_ flag: String?, _ variable: String, option: String) throws -> SocketAddress.IP? {
            guard let text = environment.string(flag, variable) else { return nil }
            do {
                return try SocketAddress(text, port: 0).ip
            } catch {
                throw ValidationError("\(option) \"\(text)\": not an IP address")
            }
        }
        configuration.publicIPv4 = try ip(publicIPv4, "GATEHOUSE_RELAY_PUBLIC_IPV4", option: "--public-ipv4")
        configuration.publicIPv6 = try ip(publicIPv6, "GATEHOUSE_RELAY_PUBLIC_IPV6", option: "--public-ipv6")
        configuration.bindIPv4 = try ip(bindIPv4, "GATEHOUSE_RELAY_BIND_IPV4", option: "--bind-ipv4")
        configuration.bindIPv6 = try ip(bindIPv6, "GATEHOUSE_RELAY_BIND_IPV6", option: "--bind-ipv6")
        if let port = try environment.value(listenPort, "GATEHOUSE_RELAY_LISTEN_PORT", parse: { UInt16($0) }) {
            configuration.listenPort = port
        }
        if let range = environment.string(portRange, "GATEHOUSE_RELAY_PORT_RANGE") {
            configuration.portRange = try RelayConfiguration.parsePortRange(range)
        }
        if let realm = environment.string(realm, "GATEHOUSE_RELAY_REALM") { configuration.realm = realm }
        var secrets = environment.list(authSecret, "GATEHOUSE_RELAY_AUTH_SECRET")
        if let file = environment.string(authSecretFile, "GATEHOUSE_RELAY_AUTH_SECRET_FILE") {
            secrets.append(try Environment.readSecretFile(file, option: "--auth-secret-file"))
        }
        // The secret drawn for the portal is current; configured ones stay valid beside it.
        configuration.authSecrets = (drawnSecret.map { [$0] } ?? []) + secrets.map(Secret.init)
        configuration.allowPeers = environment.list(allowPeer, "GATEHOUSE_RELAY_ALLOW_PEER")
        configuration.denyPeers = environment.list(denyPeer, "GATEHOUSE_RELAY_DENY_PEER")
        for range in configuration.allowPeers + configuration.denyPeers {
            do {
                _ = try AddressRange(range)
            } catch {
                throw ValidationError("--allow-peer/--deny-peer: \(error)")
            }
        }
        if let quota = try environment.value(allocationsPerUsername, "GATEHOUSE_RELAY_ALLOCATIONS_PER_USERNAME", parse: { Int($0) }) {
            configuration.allocationsPerUsername = quota
        }
        configuration.xdpInterface = environment.string(xdpInterface, "GATEHOUSE_RELAY_XDP")
        if let mode = environment.string(xdpMode, "GATEHOUSE_RELAY_XDP_MODE") { configuration.xdpMode = mode }
        if let seconds = try environment.value(permissionLifetime, "GATEHOUSE_RELAY_PERMISSION_LIFETIME", parse: { Int($0) }) {
            configuration.timers.permissionLifetime = .seconds(seconds)
        }
        if let seconds = try environment.value(channelLifetime, "GATEHOUSE_RELAY_CHANNEL_LIFETIME", parse: { Int($0) }) {
            configuration.timers.channelLifetime = .seconds(seconds)
        }
        if let seconds = try environment.value(channelCooldown, "GATEHOUSE_RELAY_CHANNEL_COOLDOWN", parse: { Int($0) }) {
            configuration.timers.channelCooldown = .seconds(seconds)
        }
        if let seconds = try environment.value(nonceLifetime, "GATEHOUSE_RELAY_NONCE_LIFETIME", parse: { Int($0) }) {
            configuration.nonceLimits.lifetime = .seconds(seconds)
        }
        if let uses = try environment.value(nonceUses, "GATEHOUSE_RELAY_NONCE_USES", parse: { Int($0) }) {
            configuration.nonceLimits.uses = uses
        }
        if let capacity = try environment.value(nonceCapacity, "GATEHOUSE_RELAY_NONCE_CAPACITY", parse: { Int($0) }) {
            configuration.nonceLimits.capacity = capacity
        }
        if let address = environment.string(operationsAddress, "GATEHOUSE_RELAY_OPERATIONS_ADDRESS") {
            (configuration.operationsHost, configuration.operationsPort) = try ListenAddress.parse(address, option: "--operations-address")
        }
        do {
            try configuration.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return configuration
    }
}
