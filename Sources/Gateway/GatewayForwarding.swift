import Foundation
import Logging

/// What the gateway sets up so that clients reach resources (gateway spec, "Operations"): IP
/// forwarding, and source NAT (masquerade) of what leaves the tunnel device for any other interface,
/// so resources answer the gateway without knowing the tunnel ranges. It puts back what it found on
/// exit. The masquerade is an nftables table of its own (`inet gatehouse-TUN`), made with `nft`.
final class GatewayForwarding: Sendable {
    private let table: String
    private let previous: [(path: String, value: String)]
    private let masquerading: Bool
    private let logger: Logger

    static let forwardingSwitches = ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"]

    /// Turns forwarding on (unless `forwarding` is false: the operator manages it) and, when
    /// `masquerade` is true, adds the masquerade for `tunnel`.
    init(tunnel: String, forwarding: Bool, masquerade: Bool, logger: Logger) throws {
        self.logger = logger
        table = "gatehouse-\(tunnel)"
        var previous: [(String, String)] = []
        for path in forwarding ? Self.forwardingSwitches : [] {
            let value = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "0").trimmingCharacters(in: .whitespacesAndNewlines)
            do {
                if value != "1" { try "1".write(toFile: path, atomically: false, encoding: .utf8) }
            } catch {
                throw GatewayStartError("turning IP forwarding on (\(path)) needs root: \(error.localizedDescription)")
            }
            previous.append((path, value))
        }
        self.previous = previous
        masquerading = masquerade
        guard masquerade else { return }
        let rules = """
            table inet \(table) {
              chain postrouting {
                type nat hook postrouting priority srcnat; policy accept;
                iifname "\(tunnel)" oifname != "\(tunnel)" masquerade
              }
            }
            """
        // A table left by a gateway that was killed is replaced.
        _ = try? Self.nft(["delete", "table", "inet", table])
        do {
            try Self.nft(["-f", "-"], input: rules)
        } catch {
            restoreForwarding()
            throw GatewayStartError("setting up the masquerade for \(tunnel) with nft (package nftables; or --no-masquerade when the resource networks route the tunnel ranges back): \(error)")
        }
    }

    /// Removes the masquerade and puts the forwarding switches back as they were.
    func remove() {
        if masquerading {
            do {
                try Self.nft(["delete", "table", "inet", table])
            } catch {
                logger.warning("removing the masquerade failed", metadata: ["table": "\(table)", "error": "\(error)"])
            }
        }
        restoreForwarding()
    }

    private func restoreForwarding() {
        for (path, value) in previous where value != "1" {
            try? value.write(toFile: path, atomically: false, encoding: .utf8)
        }
    }

    private struct NFTError: Error, CustomStringConvertible {
        let description: String
    }

    private static func nft(_ arguments: [String], input: String? = nil) throws {
        let process = Process()
        guard let path = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw NFTError(description: "the nft command is not installed")
        }
        process.executableURL = URL(filePath: path)
        process.arguments = arguments
        let errors = Pipe()
        let feed = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = feed
        try process.run()
        if let input { feed.fileHandleForWriting.write(Data(input.utf8)) }
        try? feed.fileHandleForWriting.close()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NFTError(description: "nft \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }
}
