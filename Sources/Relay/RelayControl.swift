package import Actors
import Addresses
package import ControlProtocol
import Foundation
package import Logging

/// The relay's side of the realtime API: joins the portal with its name, its public addresses, its
/// listening port and the secret drawn at this start (the portal derives the TURN REST credentials it
/// hands out from it). TURN service never waits for the portal: the relay listens first, and a lost
/// portal only makes `/readyz` say so.
package struct RelayControl: PortalSession {
    let name: String
    let secret: Secret<String>
    let configuration: RelayConfiguration
    let relay: RelayService
    let logger: Logger

    package init(name: String, secret: Secret<String>, configuration: RelayConfiguration, relay: RelayService, logger: Logger) {
        self.name = name
        self.secret = secret
        self.configuration = configuration
        self.relay = relay
        self.logger = logger
    }

    package func join() async -> ControlMessage {
        // The port clients reach: the one the listeners hold once they run (with --listen-port 0, the kernel's choice).
        while !relay.isRunning && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
        let port = relay.listenerAddresses.first.map { Int($0.port) } ?? Int(configuration.listenPort)
        func text(_ ip: SocketAddress.IP?) -> String? { ip.map { SocketAddress(ip: $0, port: 0).address } }
        return .relayJoin(RelayJoin(name: name, secret: secret.reveal(), ipv4: text(configuration.publicIPv4), ipv6: text(configuration.publicIPv6),
                                    port: port))
    }

    package func received(_ frame: ControlFrame, sender: PortalSender) async {
        if case let .reply(reply) = frame.message, reply.status == .error {
            logger.warning("the portal answered an error", metadata: ["code": "\(reply.code ?? "")", "message": "\(reply.message ?? "")"])
        }
    }

    package func connectionChanged(joined: Bool) async {}

    /// A secret for this start: 32 random bytes, base64.
    package static func drawSecret() -> Secret<String> {
        var generator = SystemRandomNumberGenerator()
        return Secret(Data((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString())
    }
}
