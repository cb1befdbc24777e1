import Actors
import Addresses
import ArgumentParser
import Foundation
import Gateway
import Logging
import Prometheus
import ServiceLifecycle

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run a gateway in front of private resources: joins the portal and enforces what it authorises.",
        discussion: """
            The gateway joins the portal with a gateway token (its site's, from --token-file or \
            GATEHOUSE_TOKEN, never a flag), keeps one session per client with the flows the portal \
            authorises, and writes each client's rules into the kernel: a TC program on the ingress of \
            the tunnel device (--tun-name) drops every packet from a client that no rule allows, and \
            counts it by reason. A flow is confirmed to the portal once its rules are in the kernel; a \
            revocation, an expiry or a filter change rewrites them at once; while the portal is \
            unreachable the rules stay as they are, and its init after a reconnect is authoritative. \
            Needs root (CAP_NET_ADMIN and CAP_BPF). The WireGuard tunnel itself comes with issue #15. \
            Its identity (external ID and WireGuard key) is kept in --state-dir (mode 700), made at the \
            first start. GET /rules on the operations address shows each session's rules beside the \
            kernel's.
            """)

    @OptionGroup var portal: PortalConnectionOptions
    @Option(help: "Name shown to admins (default: the host name). [GATEHOUSE_GATEWAY_NAME]")
    var name: String?
    @Option(help: "Where clients reach this gateway, HOST:PORT (IPv6 in brackets); repeatable. [GATEHOUSE_GATEWAY_ENDPOINT, comma-separated]")
    var endpoint: [String] = []
    @Option(help: "Directory for the gateway's identity (default: $GATEHOUSE_DATA_DIR/gateway, data directory /var/lib/gatehouse). [GATEHOUSE_GATEWAY_STATE_DIR]")
    var stateDir: String?
    @Option(help: "Where /healthz, /readyz and /metrics listen, HOST:PORT (default 127.0.0.1:9479). [GATEHOUSE_GATEWAY_OPERATIONS_ADDRESS]")
    var operationsAddress: String?
    @Option(help: "Name of the tunnel (TUN) device, made if missing (default gatehouse0). [GATEHOUSE_GATEWAY_TUN]")
    var tunName: String?
    @Option(help: "MTU of the tunnel device (default 1280). [GATEHOUSE_GATEWAY_MTU]")
    var mtu: Int?
    @Option(help: "UDP port WireGuard listens on, all IPv4 and IPv6 addresses (default 51820; 0: any free port). [GATEHOUSE_GATEWAY_LISTEN_PORT]")
    var listenPort: Int?
    @Flag(help: "Do not masquerade what clients send to resources (the resource networks then route the tunnel ranges back to this gateway).")
    var noMasquerade = false
    @Flag(help: "Leave IP forwarding and NAT to the host's own configuration (implies --no-masquerade).")
    var noForwarding = false
    @Flag(help: .hidden) var testNoUserSpaceChecks = false
    @Option(help: "DNS server that resolves DNS resources' names, IP[:PORT] (IPv6 in brackets with a port); repeatable (default: the nameservers of /etc/resolv.conf). [GATEHOUSE_GATEWAY_DNS_SERVER, comma-separated]")
    var dnsServer: [String] = []
    @Option(help: .hidden) var testTranslationIdleSeconds: Double?
    @Option(help: "The flow log: a JSON line per flow allowed or refused, rotated at 64 MiB with five kept (default: flows.jsonl in the state directory; \"off\": none). [GATEHOUSE_GATEWAY_FLOW_LOG]")
    var flowLog: String?
    @Option(help: "Log format: human or json (default human). [GATEHOUSE_LOG_FORMAT]")
    var logFormat: String?

    func run() async throws {
        let environment = Environment()
        if portal.token != nil {
            throw ValidationError("--token: a gateway takes its token from --token-file or GATEHOUSE_TOKEN, never the command line (every user of the host sees it)")
        }
        guard let format = LogFormat(rawValue: environment.string(logFormat, "GATEHOUSE_LOG_FORMAT") ?? "human") else {
            throw ValidationError("--log-format: must be human or json")
        }
        guard let endpoint = try portal.endpoint(environment) else {
            throw ValidationError("the portal URL is required: --portal-url or GATEHOUSE_PORTAL_URL")
        }
        let endpoints = environment.list(self.endpoint, "GATEHOUSE_GATEWAY_ENDPOINT")
        for text in endpoints where SocketAddress(endpoint: text) == nil {
            throw ValidationError("--endpoint \"\(text)\": expected HOST:PORT with an IP address (IPv6 in brackets)")
        }
        let tunName = environment.string(self.tunName, "GATEHOUSE_GATEWAY_TUN") ?? "gatehouse0"
        let mtuText = environment.string(self.mtu.map(String.init), "GATEHOUSE_GATEWAY_MTU") ?? "1280"
        guard let mtu = Int(mtuText), (1280...65535).contains(mtu) else {
            throw ValidationError("--mtu \(mtuText): must be 1280-65535 (IPv6 needs at least 1280)")
        }
        let portText = environment.string(self.listenPort.map(String.init), "GATEHOUSE_GATEWAY_LISTEN_PORT") ?? "51820"
        guard let listenPort = UInt16(portText) else {
            throw ValidationError("--listen-port \(portText): must be 0-65535 (0: any free port)")
        }
        var dnsServers: [SocketAddress] = []
        for text in environment.list(self.dnsServer, "GATEHOUSE_GATEWAY_DNS_SERVER") {
            guard let server = SocketAddress(endpoint: text) ?? (try? SocketAddress(text, port: 53)) else {
                throw ValidationError("--dns-server \"\(text)\": expected an IP address, or IP:PORT (IPv6 in brackets with a port)")
            }
            dnsServers.append(server)
        }
        if let seconds = testTranslationIdleSeconds, !(seconds > 0) { throw ValidationError("--test-translation-idle-seconds must be above 0") }
        let directory = environment.string(stateDir, "GATEHOUSE_GATEWAY_STATE_DIR")
            ?? (environment.string(nil, "GATEHOUSE_DATA_DIR") ?? "/var/lib/gatehouse") + "/gateway"
        let identity: DeviceIdentity
        do {
            identity = try DeviceIdentity.load(orCreateIn: directory)
        } catch {
            throw ValidationError("\(error)")
        }
        let flowLogPath = environment.string(flowLog, "GATEHOUSE_GATEWAY_FLOW_LOG") ?? directory + "/flows.jsonl"
        let name = environment.string(self.name, "GATEHOUSE_GATEWAY_NAME") ?? ProcessInfo.processInfo.hostName
        guard !name.isEmpty, name.count <= 200 else { throw ValidationError("--name must be 1-200 characters") }
        let (host, port) = try ListenAddress.parse(environment.string(operationsAddress, "GATEHOUSE_GATEWAY_OPERATIONS_ADDRESS") ?? "127.0.0.1:9479",
                                                      option: "--operations-address")
        LogSetup.bootstrap(level: .info, format: format)
        let logger = Logger(label: "gatehouse.gateway")

        let registry = PrometheusCollectorRegistry()
        let service: GatewayService
        do {
            service = try GatewayService(identity: .init(device: identity, name: name, endpoints: endpoints), tunName: tunName, mtu: mtu,
                                         listenPort: listenPort, forwarding: !noForwarding, masquerade: !noMasquerade && !noForwarding,
                                         userSpaceChecks: !testNoUserSpaceChecks, flowLogPath: flowLogPath == "off" ? nil : flowLogPath,
                                         resolver: dnsServers.isEmpty ? .system() : NameResolver(servers: dnsServers),
                                         natIdleLimit: testTranslationIdleSeconds, registry: registry, logger: logger)
        } catch {
            throw ValidationError("\(error)")
        }
        defer { service.shutdown() }
        let control = service.control
        let connection = PortalConnection(endpoint: endpoint, peer: .gateway, configuration: try portal.connection(), logger: logger)
        let operations = OperationsServer.application(
            host: host, port: port, registry: registry,
            readiness: { await connection.joined ? .ready : Readiness(isReady: false, reason: "not joined to the portal") },
            collect: { await service.collect() },
            documents: ["rules": { await service.rulesDocument() }],
            logger: logger,
            onListening: { address in logger.info("operations listening", metadata: ["address": "\(address)"]) })
        logger.info("gateway starting", metadata: ["external_id": "\(identity.externalID)", "public_key": "\(identity.publicKey)"])
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: PortalConnectionService(connection: connection, session: control)), .init(service: operations)],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

/// Runs a portal connection until shutdown.
struct PortalConnectionService<Session: PortalSession>: Service {
    let connection: PortalConnection
    let session: Session

    func run() async throws {
        await cancelWhenGracefulShutdown { await connection.run(session) }
    }
}

/// HOST:PORT of a listener (`--listen`, `--operations-address`); an IPv6 host may be in brackets.
enum ListenAddress {
    static func parse(_ text: String, option: String) throws -> (host: String, port: Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option) \"\(text)\": expected HOST:PORT")
        }
        return (String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }
}
