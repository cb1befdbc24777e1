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
        abstract: "Run a gateway in front of private resources: joins the portal and holds the flows it authorises.",
        discussion: """
            Today the gateway's control side runs: it joins the portal with a gateway token (its site's), \
            confirms each flow the portal authorises, and drops flows the portal rejects, logging each. \
            Its WireGuard tunnel and kernel enforcement are being built (issue #10). Its identity (external \
            ID and WireGuard key) is kept in --state-dir and made at the first start.
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
    @Option(help: "Log format: human or json (default human). [GATEHOUSE_LOG_FORMAT]")
    var logFormat: String?

    func run() async throws {
        let environment = Environment()
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
        let directory = environment.string(stateDir, "GATEHOUSE_GATEWAY_STATE_DIR")
            ?? (environment.string(nil, "GATEHOUSE_DATA_DIR") ?? "/var/lib/gatehouse") + "/gateway"
        let identity: DeviceIdentity
        do {
            identity = try DeviceIdentity.load(orCreateIn: directory)
        } catch {
            throw ValidationError("\(error)")
        }
        let name = environment.string(self.name, "GATEHOUSE_GATEWAY_NAME") ?? ProcessInfo.processInfo.hostName
        guard !name.isEmpty, name.count <= 200 else { throw ValidationError("--name must be 1-200 characters") }
        let (host, port) = try ListenAddress.parse(environment.string(operationsAddress, "GATEHOUSE_GATEWAY_OPERATIONS_ADDRESS") ?? "127.0.0.1:9479",
                                                      option: "--operations-address")
        LogSetup.bootstrap(level: .info, format: format)
        let logger = Logger(label: "gatehouse.gateway")

        let control = GatewayControl(identity: .init(device: identity, name: name, endpoints: endpoints), logger: logger)
        let connection = PortalConnection(endpoint: endpoint, peer: .gateway, configuration: try portal.connection(), logger: logger)
        let operations = OperationsServer.application(
            host: host, port: port, registry: PrometheusCollectorRegistry(),
            readiness: { await connection.joined ? .ready : Readiness(isReady: false, reason: "not joined to the portal") },
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
