import CGatehouseSystem
import Foundation

/// A network namespace made by a `TestNetwork`: a host of its own with interfaces, addresses and
/// routes, invisible to the machine's real network.
package final class NetworkNamespace: Sendable {
    /// The name under /var/run/netns (`gh-<pid>-<n>-<role>`).
    package let name: String
    /// What the test calls this host ("client", "router", ...).
    package let role: String

    init(name: String, role: String) {
        self.name = name
        self.role = role
    }

    /// Runs `body` on the calling thread with that thread inside this namespace, then moves the thread
    /// back. Sockets and netlink calls made in `body` belong to this namespace for their whole life, so a
    /// socket opened here can be used from anywhere afterwards. `body` must not suspend (it cannot:
    /// it is synchronous), so the thread is never handed to other work while inside.
    package func run<T>(_ body: () throws -> T) throws -> T {
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        guard original >= 0 else { throw NamespaceError.cannotOpen("/proc/thread-self/ns/net", errno) }
        defer { close(original) }
        let target = open("/var/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        guard target >= 0 else { throw NamespaceError.cannotOpen("/var/run/netns/\(name)", errno) }
        defer { close(target) }
        guard gatehouse_setns_net(target) == 0 else { throw NamespaceError.cannotEnter(name, errno) }
        defer {
            if gatehouse_setns_net(original) != 0 {
                // A pooled thread left in a test namespace would send later work to the wrong network.
                fatalError("cannot return the thread to its network namespace: errno \(errno)")
            }
        }
        return try body()
    }

    /// Runs a command inside the namespace (`ip netns exec`) and waits for it, blocking the thread: for
    /// quick commands (`ip`, `sysctl`, `ss`) and synchronous code.
    @discardableResult
    package func exec(_ arguments: [String], check: Bool = true) throws -> CommandOutput {
        try Command.runBlocking(["ip", "netns", "exec", name] + arguments, check: check)
    }

    /// Runs a command inside the namespace and waits for it on a thread of its own (see `Command.run`):
    /// what async code runs that may take a while (peers, clients, scripts).
    @discardableResult
    package func exec(_ arguments: [String], check: Bool = true) async throws -> CommandOutput {
        try await Command.run(["ip", "netns", "exec", name] + arguments, check: check)
    }

    /// `ip ARGS` inside the namespace.
    @discardableResult
    package func ip(_ arguments: String...) throws -> CommandOutput {
        try Command.runBlocking(["ip", "-n", name] + arguments)
    }

    /// What programs started in the namespace (`ip netns exec`) find in /etc/hosts: `ip netns exec`
    /// mounts /etc/netns/NAME/hosts over it (removed with the namespace).
    package func setHosts(_ entries: [(address: String, name: String)]) throws {
        let text = (["127.0.0.1 localhost", "::1 localhost"] + entries.map { "\($0.address) \($0.name)" }).joined(separator: "\n") + "\n"
        try setEtcFile("hosts", text)
    }

    /// What programs started in the namespace find in /etc/`file` (`hosts`, `resolv.conf`): `ip netns
    /// exec` mounts /etc/netns/NAME/`file` over it. Removed with the namespace.
    package func setEtcFile(_ file: String, _ text: String) throws {
        let directory = "/etc/netns/\(name)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try text.write(toFile: directory + "/" + file, atomically: true, encoding: .utf8)
    }

    /// The path of /etc/`file` as programs in the namespace see it (see `setEtcFile`).
    package func etcPath(_ file: String) -> String { "/etc/netns/\(name)/\(file)" }

    /// Sets a sysctl inside the namespace (`net.*` sysctls are per namespace).
    package func sysctl(_ key: String, _ value: String) throws {
        try exec(["sysctl", "-q", "-w", "\(key)=\(value)"])
    }

    /// Forwards IPv4 and IPv6 between the namespace's interfaces: makes it a router.
    package func enableForwarding() throws {
        try sysctl("net.ipv4.ip_forward", "1")
        try sysctl("net.ipv6.conf.all.forwarding", "1")
    }

    /// Turns transmit checksum offload off, so that frames leave with complete checksums, as they do
    /// from a real NIC (veth otherwise leaves the UDP checksum partial for the receiver to finish).
    package func disableChecksumOffload(_ interface: String) throws {
        try exec(["ethtool", "-K", interface, "tx", "off"])
    }
}

package enum NamespaceError: Error, CustomStringConvertible {
    /// A namespace file could not be opened.
    case cannotOpen(String, Int32)
    /// setns(2) refused to enter the namespace.
    case cannotEnter(String, Int32)

    package var description: String {
        switch self {
        case let .cannotOpen(path, code): "cannot open \(path): \(String(cString: strerror(code)))"
        case let .cannotEnter(name, code):
            "cannot enter network namespace \(name): \(String(cString: strerror(code))) (needs root)"
        }
    }
}
