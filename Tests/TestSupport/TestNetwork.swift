import Foundation
import Synchronization

/// One end of a veth pair: an interface in a namespace with its test addresses.
package struct VethEnd: Sendable {
    package let namespace: NetworkNamespace
    package let interface: String
    package let ipv4: String
    package let ipv6: String
}

/// A veth pair: a cable between two namespaces, numbered from the test ranges.
package struct VethPair: Sendable {
    package let a: VethEnd
    package let b: VethEnd
}

/// Everything one test builds in the kernel: namespaces, veth pairs, addresses, routes and the
/// processes it starts in them. `TestNetwork.with { ... }` removes all of it when the body ends, however
/// it ends; namespaces left behind by a test process that was killed are removed by the next one
/// (`sweepLeftovers()`), since every name carries the process ID that made it.
///
/// Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking) and fd00:6768::/32 (unique local), and
/// exist only inside the namespaces: nothing a test sends can leave them.
package final class TestNetwork: Sendable {
    package static let namePrefix = "gh-"
    private static let sequence = Atomic<Int>(0)

    private struct State {
        var namespaces: [NetworkNamespace] = []
        var processes: [BackgroundProcess] = []
        var pairs = 0
        var interfacesPerNamespace: [String: Int] = [:]
    }
    private let state = Mutex(State())
    private let id: Int

    private init() {
        id = Self.sequence.add(1, ordering: .relaxed).newValue
    }

    /// A device name no other test uses (at most 15 characters): for a device a process of the test
    /// makes outside the test's namespaces, such as a gateway's TUN (which goes with the process).
    package static func uniqueInterfaceName(_ prefix: String) -> String {
        "\(prefix)\(getpid() % 100_000)x\(sequence.add(1, ordering: .relaxed).newValue)"
    }

    /// Runs `body` with a fresh network and removes everything it made afterwards.
    package static func with<T>(_ body: (TestNetwork) async throws -> T) async throws -> T {
        sweepLeftovers()
        let network = TestNetwork()
        do {
            let result = try await body(network)
            network.tearDown()
            return result
        } catch {
            network.tearDown()
            throw error
        }
    }

    /// A new namespace with its loopback up. `role` becomes part of the name ("client", "relay").
    package func namespace(_ role: String) throws -> NetworkNamespace {
        let index = state.withLock { state in state.namespaces.count }
        let name = "\(Self.namePrefix)\(getpid())-\(id)-\(index)-\(role)"
        try Command.runBlocking(["ip", "netns", "add", name])
        let namespace = NetworkNamespace(name: name, role: role)
        state.withLock { $0.namespaces.append(namespace) }
        try namespace.ip("link", "set", "lo", "up")
        // Without duplicate address detection, IPv6 addresses (link-local ones too, which neighbour
        // discovery needs) are usable the moment a link is up, instead of a second or two later.
        try namespace.exec([
            "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
        ])
        return namespace
    }

    /// Connects two namespaces with a veth pair, brings both ends up and numbers them: pair k gets
    /// 198.18.k.1/24 and fd00:6768:0:k::1/64 on `a`, .2 and ::2 on `b`. Interfaces are named like a
    /// host's NICs (`eth0`, `eth1`, ... in each namespace).
    package func connect(_ a: NetworkNamespace, _ b: NetworkNamespace) throws -> VethPair {
        let (pair, nameA, nameB) = state.withLock { state in
            state.pairs += 1
            let nameA = "eth\(state.interfacesPerNamespace[a.name, default: 0])"
            state.interfacesPerNamespace[a.name, default: 0] += 1
            let nameB = "eth\(state.interfacesPerNamespace[b.name, default: 0])"
            state.interfacesPerNamespace[b.name, default: 0] += 1
            return (state.pairs, nameA, nameB)
        }
        precondition(pair < 256, "a test network numbers at most 255 veth pairs")
        try Command.runBlocking([
            "ip", "link", "add", nameA, "netns", a.name, "type", "veth", "peer", "name", nameB, "netns", b.name,
        ])
        let endA = VethEnd(namespace: a, interface: nameA, ipv4: "198.18.\(pair).1", ipv6: "fd00:6768:0:\(pair)::1")
        let endB = VethEnd(namespace: b, interface: nameB, ipv4: "198.18.\(pair).2", ipv6: "fd00:6768:0:\(pair)::2")
        for end in [endA, endB] {
            try end.namespace.ip("addr", "add", "\(end.ipv4)/24", "dev", end.interface)
            try end.namespace.ip("-6", "addr", "add", "\(end.ipv6)/64", "dev", end.interface, "nodad")
            try end.namespace.ip("link", "set", end.interface, "up")
        }
        return VethPair(a: endA, b: endB)
    }

    /// Adds a route in `namespace`: `destination` ("default", a CIDR) via `gateway`.
    package func route(in namespace: NetworkNamespace, to destination: String, via gateway: String) throws {
        let family = gateway.contains(":") ? "-6" : "-4"
        try namespace.ip(family, "route", "add", destination, "via", gateway)
    }

    /// Starts a program inside `namespace`; it is stopped when the network is torn down.
    package func spawn(in namespace: NetworkNamespace, _ arguments: [String]) throws -> BackgroundProcess {
        let process = try BackgroundProcess(arguments: ["ip", "netns", "exec", namespace.name] + arguments)
        state.withLock { $0.processes.append(process) }
        return process
    }

    /// Removes every process, namespace and link this network made. Links go with their namespaces.
    func tearDown() {
        let (processes, namespaces) = state.withLock { state in
            defer { state.processes = []; state.namespaces = [] }
            return (state.processes, state.namespaces)
        }
        for process in processes { process.stop(grace: .seconds(2)) }
        for namespace in namespaces.reversed() { Self.remove(namespace: namespace.name) }
    }

    /// The names of this process's namespaces that still exist (for tests of the harness itself).
    package var namespaceNames: [String] { state.withLock { $0.namespaces.map(\.name) } }

    /// Removes test namespaces whose creating process is gone (a test run that was killed), and the
    /// processes still running in them.
    package static func sweepLeftovers() {
        for name in existingTestNamespaces() {
            let parts = name.dropFirst(namePrefix.count).split(separator: "-")
            guard let pid = parts.first.flatMap({ Int32($0) }) else { continue }
            if kill(pid, 0) == 0 || errno == EPERM { continue }  // its test process is still running
            remove(namespace: name)
        }
    }

    /// Every namespace with the test prefix, whoever made it.
    package static func existingTestNamespaces() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/var/run/netns")) ?? []
        return entries.filter { $0.hasPrefix(namePrefix) }.sorted()
    }

    /// Kills what runs in the namespace, then deletes it (its interfaces go with it).
    static func remove(namespace name: String) {
        if let pids = try? Command.runBlocking(["ip", "netns", "pids", name], check: false) {
            for pid in pids.standardOutput.split(whereSeparator: \.isNewline).compactMap({ Int32($0) }) {
                kill(pid, SIGKILL)
            }
        }
        _ = try? Command.runBlocking(["ip", "netns", "del", name], check: false)
        try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")  // files `ip netns exec` mounts (setHosts)
    }
}
