import Actors
import ArgumentParser
import Client
import Foundation
import Logging
import ServiceLifecycle

struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "The headless client: reach the resources the portal grants you through their gateways.",
        subcommands: [ClientRunCommand.self, ClientStatusCommand.self],
        defaultSubcommand: ClientRunCommand.self)
}

/// Where the client keeps its identity and its status socket.
struct ClientStateOptions: ParsableArguments {
    @Option(help: "Directory for the client's identity and status socket (default: $GATEHOUSE_DATA_DIR/client, data directory /var/lib/gatehouse). [GATEHOUSE_CLIENT_STATE_DIR]")
    var stateDir: String?

    func directory(_ environment: Environment) -> String {
        environment.string(stateDir, "GATEHOUSE_CLIENT_STATE_DIR")
            ?? (environment.string(nil, "GATEHOUSE_DATA_DIR") ?? "/var/lib/gatehouse") + "/client"
    }

    static func socketPath(_ directory: String) -> String { directory + "/client.sock" }
}

struct ClientRunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the client (the default): join the portal and route its resources through a tunnel device.",
        discussion: """
            The client signs in with a client token (a user's or a service account's) from --token-file \
            (mode 600) or GATEHOUSE_TOKEN, never the command line. It keeps its external ID and \
            WireGuard key in --state-dir (mode 700), joins the portal, and routes every CIDR and IP \
            resource it may reach into its tunnel device (--tun-name), leaving out the addresses of the \
            portal, the relays and the gateways. It takes over DNS (--resolv-conf, restored on exit): \
            names of DNS resources resolve to proxy addresses in 100.96.0.0/11 and \
            fd00:6761:7465:8000::/64, every other name goes to the resolvers the file named before. \
            The first packet to a resource asks the portal for a \
            flow; packets wait (up to 20 s) until the tunnel to the resource's gateway is up, and get \
            ICMP unreachable when the portal refuses. A network change (links or addresses, from \
            rtnetlink) or SIGHUP binds the sockets again, makes the portal connection, candidates and \
            relay allocations again and finds every gateway's way again; flows stay. \
            `gatehouse client status` asks the running client \
            what it is doing. SIGINT or SIGTERM removes the device and its routes. Needs root \
            (CAP_NET_ADMIN). The way to each gateway is found with ICE (RFC 8445): host, \
            server-reflexive and relayed candidates (TURN allocations on the portal's relays), direct \
            before relayed; keepalive checks every 25 s; a lost pair or a relay that goes makes a fresh \
            establishment.
            """)

    @OptionGroup var portal: PortalConnectionOptions
    @OptionGroup var state: ClientStateOptions
    @Option(help: "Name shown to admins (default: the host name). [GATEHOUSE_CLIENT_NAME]")
    var name: String?
    @Option(help: "Name of the tunnel (TUN) device, made if missing (default gatehouse-c0). [GATEHOUSE_CLIENT_TUN]")
    var tunName: String?
    @Option(help: "MTU of the tunnel device (default 1280). [GATEHOUSE_CLIENT_MTU]")
    var mtu: Int?
    @Option(help: "Resolver file to take over for DNS resources, written in place and restored on exit (default /etc/resolv.conf; \"off\": leave DNS alone, and DNS resources unreachable by name). [GATEHOUSE_CLIENT_RESOLV_CONF]")
    var resolvConf: String?
    @Option(help: "Log format: human or json (default human). [GATEHOUSE_LOG_FORMAT]")
    var logFormat: String?
    @Option(help: .hidden) var testICEKeepaliveSeconds: Double?

    func run() async throws {
        let environment = Environment()
        if portal.token != nil {
            throw ValidationError("--token: the client takes its token from --token-file or GATEHOUSE_TOKEN, never the command line (every user of the host sees it)")
        }
        guard let format = LogFormat(rawValue: environment.string(logFormat, "GATEHOUSE_LOG_FORMAT") ?? "human") else {
            throw ValidationError("--log-format: must be human or json")
        }
        guard let endpoint = try portal.endpoint(environment) else {
            throw ValidationError("the portal URL is required: --portal-url or GATEHOUSE_PORTAL_URL")
        }
        let tunName = environment.string(self.tunName, "GATEHOUSE_CLIENT_TUN") ?? "gatehouse-c0"
        let mtuText = environment.string(self.mtu.map(String.init), "GATEHOUSE_CLIENT_MTU") ?? "1280"
        guard let mtu = Int(mtuText), (1280...65535).contains(mtu) else {
            throw ValidationError("--mtu \(mtuText): must be 1280-65535 (IPv6 needs at least 1280)")
        }
        let name = environment.string(self.name, "GATEHOUSE_CLIENT_NAME") ?? ProcessInfo.processInfo.hostName
        guard !name.isEmpty, name.count <= 200 else { throw ValidationError("--name must be 1-200 characters") }
        if let seconds = testICEKeepaliveSeconds, !(seconds > 0) { throw ValidationError("--test-ice-keepalive-seconds must be above 0") }
        let directory = state.directory(environment)
        let resolverFile = environment.string(resolvConf, "GATEHOUSE_CLIENT_RESOLV_CONF") ?? "/etc/resolv.conf"
        let identity: DeviceIdentity
        do {
            identity = try DeviceIdentity.load(orCreateIn: directory)
        } catch {
            throw ValidationError("\(error)")
        }
        LogSetup.bootstrap(level: .info, format: format)
        let logger = Logger(label: "gatehouse.client")
        let service: ClientService
        do {
            service = try ClientService(identity: .init(device: identity, name: name), tunName: tunName, mtu: mtu,
                                        portalHost: endpoint.url.host ?? "", resolverFile: resolverFile == "off" ? nil : resolverFile,
                                        stateDirectory: directory, keepaliveInterval: testICEKeepaliveSeconds ?? 25, logger: logger)
        } catch {
            throw ValidationError("\(error)")
        }
        defer { service.shutdown() }
        let control = service.control
        let tunnel = service.tunnel
        let portalURL = endpoint.url.absoluteString
        let socket: LocalSocketServer
        do {
            socket = try LocalSocketServer(path: ClientStateOptions.socketPath(directory)) { request in
                guard request == "status" else { return "{\"error\": \"unknown request\"}\n" }
                let status = await control.status(counters: tunnel.statistics, portalURL: portalURL)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                return String(decoding: (try? encoder.encode(status)) ?? Data("{}".utf8), as: UTF8.self) + "\n"
            }
        } catch {
            throw ValidationError("\(error)")
        }
        defer { socket.close() }
        let connection = PortalConnection(endpoint: endpoint, peer: .client, configuration: try portal.connection(), logger: logger)
        service.onNetworkChange { await connection.reconnect() }
        // SIGHUP: the network changed (as rtnetlink events also say by themselves).
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { tunnel.networkChanged(reason: "SIGHUP") }
        hangup.resume()
        defer { hangup.cancel() }
        logger.info("client starting", metadata: ["external_id": "\(identity.externalID)", "public_key": "\(identity.publicKey)",
                                                  "status_socket": "\(socket.path)"])
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: PortalConnectionService(connection: connection, session: control))],
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("client stopping")
    }
}

struct ClientStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Ask the running client what it is doing: portal connection, resources, flows, paths and traffic.")

    @OptionGroup var state: ClientStateOptions
    @Flag(help: "Print the status as JSON.")
    var json = false

    func run() throws {
        let path = ClientStateOptions.socketPath(state.directory(Environment()))
        let answer: String
        do {
            answer = try LocalSocketClient.request(path: path, "status")
        } catch {
            throw ValidationErrorExit(message: "\(error)")
        }
        if json {
            print(answer, terminator: "")
            return
        }
        guard let status = try? JSONDecoder().decode(ClientStatus.self, from: Data(answer.utf8)) else {
            throw ValidationErrorExit(message: "the client's answer could not be read: \(answer.prefix(200))")
        }
        print(status.text, terminator: "")
    }
}
