import Actors
import ArgumentParser

@main
struct Gatehouse: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gatehouse",
        abstract: "Zero-trust access: a portal, relays, gateways and clients in one binary.",
        discussion: """
            Run one role per process: `gatehouse portal` for the control plane, `gatehouse relay` for \
            STUN/TURN, `gatehouse gateway` in front of private resources, `gatehouse client` on machines \
            that reach them. `gatehouse admin` drives a portal's admin API from a shell.
            """,
        version: GatehouseVersion.current,
        subcommands: [
            PortalCommand.self, RelayCommand.self, GatewayCommand.self, ClientCommand.self,
            AdminCommand.self, CheckCommand.self,
        ]
    )
}

/// A role that later issues build; until then it says so and exits non-zero, so that no script
/// mistakes it for a running service.
protocol NotYetImplemented: AsyncParsableCommand {}

extension NotYetImplemented {
    func run() async throws {
        throw ValidationErrorExit(message: "\(Self.configuration.commandName ?? "this command") is not yet implemented in \(GatehouseVersion.current)")
    }
}

/// Exits with status 1 and one line on stderr, without ArgumentParser's usage text (the arguments
/// were fine; the command is what is missing).
struct ValidationErrorExit: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
