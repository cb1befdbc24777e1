import Actors
import ArgumentParser
import Foundation
import Identifiers
import Logging
import Persistence
import Portal
import ServiceLifecycle
import NIOSSL

struct PortalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "portal",
        abstract: "Run the control plane (admin API on one SQLite file); `portal init` bootstraps a new install.",
        subcommands: [PortalServeCommand.self, PortalInitCommand.self, PortalAccountCommand.self, PortalRelayTokenCommand.self],
        defaultSubcommand: PortalServeCommand.self
    )
}

/// Where the database lives unless `--db` says otherwise.
struct DatabaseOptions: ParsableArguments {
    @Option(help: "SQLite database file (default: $GATEHOUSE_DATA_DIR/portal.sqlite, data directory /var/lib/gatehouse). [GATEHOUSE_PORTAL_DB]")
    var db: String?

    func path(_ environment: Environment) throws -> String {
        if let path = environment.string(db, "GATEHOUSE_PORTAL_DB") { return path }
        let directory = environment.string(nil, "GATEHOUSE_DATA_DIR") ?? "/var/lib/gatehouse"
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("cannot create the data directory \(directory): \(error.localizedDescription); set --db or GATEHOUSE_DATA_DIR")
        }
        return directory + "/portal.sqlite"
    }

    func open(_ environment: Environment) throws -> AppDatabase {
        let path = try path(environment)
        do {
            return try AppDatabase(path: path)
        } catch {
            throw ValidationError("cannot open the database \(path): \(error)")
        }
    }
}

struct PortalServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve the admin API (the default of `gatehouse portal`).")

    @OptionGroup var database: DatabaseOptions
    @Option(help: "HOST:PORT to listen on (default 127.0.0.1:8080). [GATEHOUSE_PORTAL_LISTEN]")
    var listen: String?
    @Option(help: "Log format: human or json (default human). [GATEHOUSE_LOG_FORMAT]")
    var logFormat: String?
    @Option(help: "Seconds between heartbeats on the realtime API (0.1-60, default 10); three silent intervals close a connection.")
    var heartbeatInterval: Double?
    @Option(help: "Seconds a gateway has to confirm a flow before the client is told offline (0.1-60, default 15).")
    var flowConfirmationTimeout: Double?
    @Option(help: "PEM certificate (chain) to serve HTTPS and WSS with. [GATEHOUSE_PORTAL_TLS_CERTIFICATE]")
    var tlsCertificate: String?
    @Option(help: "PEM private key of --tls-certificate (mode 600). [GATEHOUSE_PORTAL_TLS_KEY]")
    var tlsKey: String?
    @Flag(help: "Serve plain HTTP on an address that is not loopback (tokens then cross the network in the clear).")
    var insecure = false

    func run() async throws {
        // Two malloc arenas, not glibc's eight per core: with thousands of connections served from a
        // few threads, per-thread arenas held freed memory apart (bench/realtime.sh: 110 KiB resident
        // per connection with the default, 84 KiB with two, and faster revocations too).
        MemorySetup.limitMallocArenas()
        let environment = Environment()
        guard let format = LogFormat(rawValue: environment.string(logFormat, "GATEHOUSE_LOG_FORMAT") ?? "human") else {
            throw ValidationError("--log-format: must be human or json")
        }
        LogSetup.bootstrap(level: .info, format: format)
        let logger = Logger(label: "gatehouse.portal")
        var configuration = PortalConfiguration()
        if let address = environment.string(listen, "GATEHOUSE_PORTAL_LISTEN") {
            (configuration.host, configuration.port) = try ListenAddress.parse(address, option: "--listen")
        }
        if let heartbeatInterval {
            guard (0.1...60).contains(heartbeatInterval) else { throw ValidationError("--heartbeat-interval must be 0.1-60 seconds") }
            configuration.realtime.heartbeatInterval = .milliseconds(Int(heartbeatInterval * 1000))
        }
        if let flowConfirmationTimeout {
            guard (0.1...60).contains(flowConfirmationTimeout) else { throw ValidationError("--flow-confirmation-timeout must be 0.1-60 seconds") }
            configuration.hub.flowConfirmationTimeout = .milliseconds(Int(flowConfirmationTimeout * 1000))
        }
        configuration.tls = try tls(environment, host: configuration.host)
        let databasePath = try database.path(environment)
        let repository = SQLitePortalRepository(database: try database.open(environment))
        // The secret flows' keys derive from, next to the database (made at the first start, mode 600).
        let secretPath = URL(fileURLWithPath: databasePath).deletingLastPathComponent().appendingPathComponent("portal.secret").path
        let secrets: FlowSecrets
        do {
            secrets = try FlowSecrets.load(orCreateAt: secretPath)
        } catch {
            throw ValidationError("\(error)")
        }
        let evaluator = PolicyEvaluator(repository: repository)
        let presence = RelayPresence()
        let hub = RealtimeHub(repository: repository, evaluator: evaluator, presence: presence, secrets: secrets,
                              configuration: configuration.hub, logger: logger)
        let application = PortalApplication.build(
            configuration: configuration, repository: repository, logger: logger, evaluator: evaluator, presence: presence, hub: hub,
            onListening: { address in logger.info("portal listening", metadata: ["address": "\(address)"]) })
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: application), .init(service: ExpiryService(evaluator: evaluator, logger: logger)),
                                            .init(service: RealtimeService(hub: hub))],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

extension PortalServeCommand {
    /// The TLS the portal serves with; nil for plain HTTP, which only loopback or `--insecure` gets.
    func tls(_ environment: Environment, host: String) throws -> TLSConfiguration? {
        let certificate = environment.string(tlsCertificate, "GATEHOUSE_PORTAL_TLS_CERTIFICATE")
        let key = environment.string(tlsKey, "GATEHOUSE_PORTAL_TLS_KEY")
        switch (certificate, key) {
        case (nil, nil):
            let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
            guard loopback || insecure else {
                throw ValidationError("--listen \(host): plain HTTP off loopback would send tokens in the clear; give --tls-certificate and --tls-key, or --insecure")
            }
            return nil
        case let (certificate?, key?):
            var status = stat()
            if stat(key, &status) == 0, status.st_mode & 0o077 != 0 {
                throw ValidationError("--tls-key \(key): others may read it; chmod 600 it")
            }
            do {
                let chain = try NIOSSLCertificate.fromPEMFile(certificate)
                guard !chain.isEmpty else { throw ValidationError("--tls-certificate \(certificate): no certificate in the file") }
                let configuration = TLSConfiguration.makeServerConfiguration(
                    certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
                _ = try NIOSSLContext(configuration: configuration)  // the key must match the certificate
                return configuration
            } catch let error as ValidationError {
                throw error
            } catch {
                throw ValidationError("--tls-certificate/--tls-key: cannot use \(certificate) with \(key): \(error)")
            }
        default:
            throw ValidationError("--tls-certificate and --tls-key go together")
        }
    }
}

struct PortalInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the first account, an admin and an admin API token (printed once).",
        discussion: "Writes directly to the database, so a new install can start. Run it once; the token is never shown again.")

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var newAccount: NewAccountOptions

    func run() async throws {
        try await newAccount.create(in: database, conflict: "an account with slug \"\(newAccount.slug)\" exists already; `portal init` runs once per install")
    }
}

/// What a new account is made of: its name and slug, and its first admin.
struct NewAccountOptions: ParsableArguments {
    @Option(help: "Account name.") var account: String = "Default"
    @Option(help: "Account slug (lower-case letters, digits and dashes).") var slug: String = "default"
    @Option(help: "The admin's name.") var adminName: String = "Admin"
    @Option(help: "The admin's email.") var adminEmail: String

    /// Creates the account, its admin, its Everyone group and an admin API token, and prints the token
    /// once, as the last line.
    func create(in database: DatabaseOptions, conflict: String) async throws {
        let repository = SQLitePortalRepository(database: try database.open(Environment()))
        let secret = TokenSecret.generate()
        do {
            let created = try await repository.bootstrap(
                account: account, slug: slug, adminName: adminName, adminEmail: adminEmail,
                tokenHash: TokenSecret.hash(secret), now: Date())
            print("account \(created.account.slug) (\(created.account.id)) and admin \(created.admin.email ?? "") created")
            print("admin API token (shown once; store it now):")
            print(secret)
        } catch RepositoryError.conflict {
            throw ValidationError(conflict)
        } catch {
            throw ValidationError("cannot create the account: \(error)")
        }
    }
}

struct PortalAccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "Accounts of this installation (operator commands, direct to the database).",
        subcommands: [PortalAccountCreateCommand.self])
}

struct PortalAccountCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create another account with its first admin and an admin API token (printed once).",
        discussion: """
            Each account is isolated from every other: its admins see and change only its own actors, groups, \
            sites, resources, policies, tokens and devices. Writes directly to the database, like `portal init`.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var newAccount: NewAccountOptions

    func run() async throws {
        try await newAccount.create(in: database, conflict: "an account with slug \"\(newAccount.slug)\" exists already")
    }
}

struct PortalRelayTokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay-token",
        abstract: "Relay tokens: relays belong to the installation, not to an account (operator commands, direct to the database).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a relay token and print it once, as the last line.",
            discussion: "Give it to `gatehouse relay --portal-url ...` (in a file or GATEHOUSE_TOKEN). Every account's clients and gateways may use every relay.")
        @OptionGroup var database: DatabaseOptions
        @Option(help: "Lifetime in seconds (60 to ten years); none means it does not expire.") var expiresIn: Int?

        func run() async throws {
            if let expiresIn, !(60...(10 * 365 * 24 * 3600)).contains(expiresIn) {
                throw ValidationError("--expires-in must be 60 seconds to ten years")
            }
            let repository = SQLitePortalRepository(database: try database.open(Environment()))
            let secret = TokenSecret.generate(prefix: "gh_relay")
            let token = try await repository.createRelayToken(
                secretHash: TokenSecret.hash(secret), expiresAt: expiresIn.map { Date().addingTimeInterval(TimeInterval($0)) }, now: Date())
            print("relay token \(token.id) created; its secret is shown only now:")
            print(secret)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List relay tokens (never their secrets).")
        @OptionGroup var database: DatabaseOptions

        func run() async throws {
            let repository = SQLitePortalRepository(database: try database.open(Environment()))
            let dates = ISO8601DateFormatter()
            printTable(["ID", "CREATED", "EXPIRES", "LAST USED"], try await repository.listRelayTokens().map { token in
                [token.id.description, dates.string(from: token.createdAt), token.expiresAt.map(dates.string) ?? "never",
                 token.lastUsedAt.map(dates.string) ?? ""]
            })
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a relay token: it stops working for new connections.")
        @OptionGroup var database: DatabaseOptions
        @Argument(help: "The relay token's ID.") var id: String

        func run() async throws {
            guard let tokenID = TokenID(id) else { throw ValidationError("\"\(id)\" is not a token ID") }
            let repository = SQLitePortalRepository(database: try database.open(Environment()))
            guard try await repository.deleteRelayToken(id: tokenID) else { throw ValidationError("no relay token \(id)") }
            print("revoked relay token \(id)")
        }
    }
}
