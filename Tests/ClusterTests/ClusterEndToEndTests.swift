import Foundation
import Testing
import TestSupport

/// Issue #18's proof: the local cluster of `scripts/cluster` (a portal with TLS, two relays with XDP,
/// a site with two gateways, a resource network and a client, each edge behind a router namespace),
/// driven as an operator would: the script, `gatehouse admin` from the host's loopback, `curl` and
/// `iperf3` in the client's namespace. Each scenario prints what it measured.
@Suite(.privileged, .serialized)
struct ClusterEndToEndTests {
    /// One cluster of the suite's own (its name, directory and admin port unique to it).
    final class Cluster: Sendable {
        let name: String
        let directory: URL
        let port: Int

        init() throws {
            // t<pid>x<random>: scripts/clean-test-networks removes the cluster of a test run that died.
            name = "t\(getpid())x" + String(UUID().uuidString.lowercased().filter { $0.isHexDigit }.prefix(3))
            directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-cluster-\(name)")
            port = Int.random(in: 20000...29999)
        }

        var environment: [String] {
            ["GATEHOUSE_CLUSTER_NAME=\(name)", "GATEHOUSE_CLUSTER_DIR=\(directory.path)", "GATEHOUSE_CLUSTER_PORT=\(port)",
             "GATEHOUSE_BINARY=\(Binaries.gatehouse)"]
        }

        var script: String { Binaries.packageRoot.appending(path: "scripts/cluster").path(percentEncoded: false) }

        /// The test process's children inherit its blocked signals (its threads block nearly all), which
        /// a shell cannot unblock: the script, and the services it starts, begin from an empty mask, as
        /// from a terminal (else a service told to stop would only stop when killed).
        static let unblocked = ["python3", "-c",
                                "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])"]

        /// `scripts/cluster ARGS`.
        @discardableResult
        func run(_ arguments: String..., check: Bool = true) async throws -> CommandOutput {
            try await Command.run(environment + Self.unblocked + [script] + arguments, check: check)
        }

        func namespace(_ service: String) -> String { "ghc-\(name)-\(service)" }

        /// A command in a service's namespace.
        @discardableResult
        func exec(_ service: String, _ arguments: [String], check: Bool = true) async throws -> CommandOutput {
            try await Command.run(["ip", "netns", "exec", namespace(service)] + arguments, check: check)
        }

        /// `gatehouse admin ARGS --json` from the host, through the forwarded port, with the cluster's
        /// admin token and CA.
        func admin(_ arguments: [String]) async throws -> Any {
            let admin = try String(contentsOf: directory.appending(path: "admin.env"), encoding: .utf8)
            var environment = ProcessInfo.processInfo.environment
            for line in admin.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                if parts.count == 2 { environment[parts[0]] = parts[1] }
            }
            // The token travels in the environment, never in an argument list a failure would print.
            let output = try await Command.run([Binaries.gatehouse, "admin"] + arguments + ["--json"], environment: environment)
            let text = output.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { return NSNull() }  // a delete answers nothing
            return try JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)
        }

        func pid(_ service: String) throws -> Int32 {
            Int32(try String(contentsOf: directory.appending(path: "pids/\(service)"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }

        /// `gatehouse client status --json` of the cluster's client.
        func status() async throws -> [String: Any] {
            let output = try await exec("client", [Binaries.gatehouse, "client", "status", "--json", "--state-dir",
                                                   directory.appending(path: "state/client").path])
            return try #require(try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [String: Any])
        }

        /// The client's flow to resource `name`, once it has one.
        func flow(_ name: String) async throws -> [String: Any]? {
            (try await status()["flows"] as? [[String: Any]])?.first { $0["resource_name"] as? String == name }
        }

        /// curl from the client's namespace: its exit status, body and time to the first byte.
        func fetch(_ url: String, timeout: Int = 20) async throws -> (status: Int32, body: String, firstByte: Double) {
            let run = try await exec("client", ["curl", "-s", "-m", "\(timeout)", "-w", "\n%{time_starttransfer}", url], check: false)
            let lines = run.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
            return (run.status, lines.dropLast().joined(separator: "\n"), Double(lines.last ?? "") ?? 0)
        }

        /// A relay's counters: packets relayed by its XDP program (to peers, to clients) and in user space.
        func relayCounts(_ relay: String) async throws -> (kernel: Double, userSpace: Double) {
            let metrics = try await exec(relay, ["curl", "-s", "http://127.0.0.1:9100/metrics"]).standardOutput
            func value(_ series: String) -> Double {
                metrics.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            }
            return (value(#"gatehouse_relay_xdp_packets_total{action="relayed",reason="to_peer"}"#)
                        + value(#"gatehouse_relay_xdp_packets_total{action="relayed",reason="to_client"}"#),
                    value(#"gatehouse_relay_relayed_packets_total{path="user_space"}"#))
        }

        /// The namespaces of this cluster that exist now.
        func namespaces() async throws -> [String] {
            try await Command.run(["ip", "netns", "list"]).standardOutput.split(separator: "\n")
                .map { String($0.split(separator: " ").first ?? "") }.filter { $0.hasPrefix("ghc-\(name)-") }
        }

        /// The IDs of the BPF programs attached in this cluster's namespaces (XDP on the relays' and
        /// core's links, TC on the gateways' tunnels).
        func attachedPrograms() async throws -> Set<Int> {
            var ids: Set<Int> = []
            for namespace in try await namespaces() {
                let shown = try await Command.run(["ip", "netns", "exec", namespace, "bpftool", "net", "show"], check: false).standardOutput
                for match in shown.matches(of: /id (\d+)/) { ids.insert(Int(match.1) ?? 0) }
            }
            return ids
        }

        /// Checks that nothing the cluster made is left: namespaces, processes, BPF programs. The kernel
        /// takes a namespace apart (its links, and the programs attached to them) a moment after the
        /// last reference goes, so the programs get a few seconds.
        func expectNothingLeft(processes: [Int32], programs: Set<Int>, _ when: String) async throws {
            let left = try await namespaces()
            #expect(left.isEmpty, "\(when): namespaces left: \(left)")
            for pid in processes where pid > 0 {
                // Gone, or a zombie waiting for whoever inherited it to reap it.
                let state = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: " ").dropFirst(2).first
                #expect(state == nil || state == "Z", "\(when): process \(pid) still runs")
            }
            func loaded() async throws -> [Int] {
                var ids: [Int] = []
                for id in programs where try await Command.run(["bpftool", "prog", "show", "id", "\(id)"], check: false).succeeded { ids.append(id) }
                return ids
            }
            _ = try await ClusterEndToEndTests.timed("\(when): the cluster's BPF programs are unloaded", .seconds(30)) { try await loaded().isEmpty }
            #expect(!FileManager.default.fileExists(atPath: "/etc/netns/ghc-\(name)-client"), "\(when): /etc/netns entries left")
        }

        /// Every process the cluster started (from its pid files and its state file, which also names
        /// what `up --foreground` itself waits on), for the checks after `down`.
        func processes() throws -> [Int32] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.appending(path: "pids").path)) ?? []
            let state = (try? String(contentsOf: directory.appending(path: "cluster.state"), encoding: .utf8)) ?? ""
            let recorded = state.split(separator: "\n").compactMap { line -> Int32? in
                let fields = line.split(separator: " ")
                return fields.count >= 2 && fields[0] == "pid" ? Int32(fields[1]) : nil
            }
            return Array(Set(try names.map { try pid($0) } + recorded))
        }

        func cleanUp() async {
            _ = try? await run("down", check: false)
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// `Wait.until` (the deadline only catches a hang), and how long the condition took to come true.
    static func timed(_ what: String, _ timeout: Duration, _ condition: () async throws -> Bool) async throws -> Duration {
        let start = ContinuousClock.now
        try await Wait.until(what, timeout: timeout, interval: .milliseconds(100), condition)
        return ContinuousClock.now - start
    }

    /// A cluster of the test's own for `body`, brought down afterwards whatever happens.
    static func withCluster(_ body: (Cluster) async throws -> Void) async throws {
        let cluster = try Cluster()
        do {
            try await body(cluster)
        } catch {
            await cluster.cleanUp()
            throw error
        }
        await cluster.cleanUp()
    }

    static func seconds(_ duration: Duration) -> String { String(format: "%.2f s", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18) }

    /// Scenarios 1, 4, 5 and 3 of the issue on one cluster: direct and relayed fetches (XDP counters),
    /// the relay in use killed, the gateway in use killed, the portal killed; then `down` leaves nothing.
    @Test(.timeLimit(.minutes(10))) func theClusterServesItsClientThroughEveryFault() async throws {
        try await Self.withCluster { cluster in
            let up = try await cluster.run("up")
            #expect(up.standardOutput.contains("Try:"), "up says what to try: \(up.standardOutput)")
            let status = try await cluster.run("status").standardOutput
            for service in ["portal", "relay-1", "relay-2", "gateway-1", "gateway-2", "client", "crouter", "grouter", "core", "resources"] {
                #expect(status.split(separator: "\n").contains { $0.hasPrefix(service + " ") && $0.contains("running") }, "\(service) runs: \(status)")
            }
            let programs = try await cluster.attachedPrograms()
            #expect(programs.count >= 6, "XDP on two relays and core's two links, TC on two gateways: \(programs)")

            // The admin API from the host's loopback: both gateways and the client are online.
            let gateways = try #require(try await cluster.admin(["gateway", "list"]) as? [[String: Any]])
            #expect(gateways.filter { $0["online"] as? Bool == true }.count == 2, "two gateways online: \(gateways)")

            // 1. Direct: by address and by DNS name.
            let web = try await cluster.fetch("http://172.20.0.10/")
            #expect(web.status == 0 && web.body.contains("Hello from the resource network"), "web by address: \(web)")
            let app = try await cluster.fetch("http://app.corp.internal/")
            #expect(app.status == 0 && app.body.contains("Hello from the resource network"), "app by name: \(app)")
            // On a loaded machine the relayed pair can answer before hole punching does and be nominated
            // first (ICE waits 300 ms for better pairs); the direct pair then replaces it when it succeeds.
            let toDirect = try? await Self.timed("the pair is direct", .seconds(15)) {
                try await cluster.flow("web")?["path"] as? String == "direct"
            }
            let directFlow = try await cluster.flow("web")
            #expect(directFlow?["path"] as? String == "direct", "a direct pair: \(directFlow ?? [:])")
            print("direct: first byte through a new flow \(String(format: "%.3f", web.firstByte)) s (by address), " +
                  "\(String(format: "%.3f", app.firstByte)) s (by name); pair \(directFlow?["candidate_pair"] ?? "") " +
                  "(direct after the fetches: \(toDirect.map(Self.seconds) ?? "never"))")

            // 1. Relayed: the routers drop UDP between the edges; a client started now finds only relays.
            try await cluster.run("relayed", "on")
            try await cluster.run("restart", "client")
            let before = (try await cluster.relayCounts("relay-1"), try await cluster.relayCounts("relay-2"))
            let relayed = try await cluster.fetch("http://172.20.0.10/")
            #expect(relayed.status == 0 && relayed.body.contains("Hello"), "web through a relay: \(relayed)")
            let relayedFlow = try await cluster.flow("web")
            #expect(relayedFlow?["path"] as? String == "relayed", "a relayed pair: \(relayedFlow ?? [:])")
            let relayInUse = relayedFlow?["relay"] as? String ?? ""
            #expect(relayInUse == "relay-1" || relayInUse == "relay-2", "through which relay: \(relayedFlow ?? [:])")
            let after = (try await cluster.relayCounts("relay-1"), try await cluster.relayCounts("relay-2"))
            let used = relayInUse == "relay-1" ? (before.0, after.0) : (before.1, after.1)
            #expect(used.1.kernel - used.0.kernel >= 10, "the fetch crossed \(relayInUse)'s XDP path: \(used)")
            print("relayed through \(relayInUse): first byte through a new flow \(String(format: "%.3f", relayed.firstByte)) s; " +
                  "\(Int(used.1.kernel - used.0.kernel)) packets relayed in the kernel, \(Int(used.1.userSpace - used.0.userSpace)) in user space")

            // 4. The relay in use killed: the tunnel moves to the other relay.
            kill(try cluster.pid(relayInUse), SIGKILL)
            let other = relayInUse == "relay-1" ? "relay-2" : "relay-1"
            let moved = try await Self.timed("the tunnel moves to \(other)", .seconds(90)) {
                let fetched = try await cluster.fetch("http://172.20.0.10/", timeout: 3)
                guard fetched.status == 0 else { return false }
                return try await cluster.flow("web")?["relay"] as? String == other
            }
            print("\(relayInUse) killed: the fetch works again through \(other) after \(Self.seconds(moved))")
            try await cluster.run("start", relayInUse)
            try await cluster.run("relayed", "off")

            // 5. The gateway in use killed: the next flow lands on the other gateway of the site.
            let gatewayID = try #require(try await cluster.flow("web")?["gateway"] as? String)
            let inUse = try #require(gateways.first { $0["id"] as? String == gatewayID }?["name"] as? String)
            kill(try cluster.pid(inUse), SIGKILL)
            let next = try await cluster.fetch("http://app.corp.internal/")
            #expect(next.status == 0 && next.body.contains("Hello"), "a new flow after \(inUse) died: \(next)")
            let nextGateway = try await cluster.flow("app")?["gateway"] as? String
            #expect(nextGateway != nil && nextGateway != gatewayID, "the new flow is on the other gateway: \(nextGateway ?? "none")")
            print("\(inUse) killed: the next flow landed on the other gateway; first byte \(String(format: "%.3f", next.firstByte)) s")
            try await cluster.run("start", inUse)

            // 3. The portal killed: the tunnels keep passing traffic throughout.
            kill(try cluster.pid("portal"), SIGKILL)
            var passed = 0
            var failed = 0
            let clock = ContinuousClock()
            let outage = clock.now
            while clock.now - outage < .seconds(5) {
                let fetched = try await cluster.fetch("http://app.corp.internal/", timeout: 2)
                if fetched.status == 0 { passed += 1 } else { failed += 1 }
            }
            #expect(failed == 0 && passed > 0, "fetches while the portal is down: \(passed) passed, \(failed) failed")
            try await cluster.run("start", "portal")
            // Right after the restart, before anyone rejoined maybe: the web policy goes.
            let policies = try #require(try await cluster.admin(["policy", "list"]) as? [[String: Any]])
            let webPolicy = try #require(policies.first { ($0["description"] as? String ?? "").hasSuffix("reach web") }?["id"] as? String,
                                         "\(policies)")
            _ = try await cluster.admin(["policy", "delete", webPolicy])
            let cut = try await Self.timed("web is cut after the restart", .seconds(60)) {
                try await cluster.fetch("http://172.20.0.10/", timeout: 2).status != 0
            }
            // A new flow needs a gateway of the site online: the gateways rejoin the restarted portal on
            // their own reconnect backoff, which may end after the client's.
            let rejoined = try await Self.timed("both gateways rejoin the restarted portal", .seconds(60)) {
                let gateways = try await cluster.admin(["gateway", "list"]) as? [[String: Any]] ?? []
                return gateways.filter { $0["online"] as? Bool == true }.count == 2
            }
            let iperf = try await cluster.exec("client", ["iperf3", "-c", "172.20.0.11", "-t", "2", "-J"], check: false)
            let received = ((try? JSONSerialization.jsonObject(with: Data(iperf.standardOutput.utf8)) as? [String: Any])
                .flatMap { ($0["end"] as? [String: Any])?["sum_received"] as? [String: Any] }?["bits_per_second"] as? NSNumber)?.doubleValue
            #expect(iperf.status == 0 && (received ?? 0) > 0, "a new flow after the restart: \(iperf.standardOutput.prefix(300))")
            print("portal killed: \(passed) fetches through established tunnels passed while it was down, \(failed) failed; " +
                  "after the restart the web policy deleted was enforced within \(Self.seconds(cut)), the gateways were back within " +
                  "\(Self.seconds(rejoined)); a new flow (iperf3) " +
                  "carried \(String(format: "%.0f", (received ?? 0) / 1e6)) Mbit/s")

            let processes = try cluster.processes()
            try await cluster.run("down")
            try await cluster.expectNothingLeft(processes: processes, programs: programs, "after down")
        }
    }

    /// Scenario 2: a policy deleted with `gatehouse admin` cuts access; over 20 trials, the time from
    /// the command to the last packet through (a stream of a datagram per millisecond).
    @Test(.timeLimit(.minutes(10))) func aDeletedPolicyCutsAccessQuickly() async throws {
        try await Self.withCluster { cluster in
            try await cluster.run("up")
            try await cluster.exec("resources", ["ip", "addr", "add", "172.20.0.100/24", "dev", "br0"])
            let probe = Binaries.packageRoot.appending(path: "Tests/Interop/udp_probe.py").path(percentEncoded: false)
            let receiver = try BackgroundProcess(arguments: Cluster.unblocked + ["ip", "netns", "exec", cluster.namespace("resources"), "python3", probe,
                                                             "receive", "7000", "7019"])
            defer { _ = receiver.stop() }
            try await receiver.waitForOutput(containing: "listening", timeout: .seconds(20))
            var latencies: [Double] = []
            var commands: [Double] = []  // how long `gatehouse admin policy delete` itself took
            for trial in 0..<20 {
                let port = 7000 + trial
                let resource = try #require(try await cluster.admin(["resource", "create", "--name", "probe-\(trial)", "--type", "ip",
                                                                    "--address", "172.20.0.100", "--site", "hq", "--filter", "udp:\(port)"])
                    as? [String: Any])
                let policy = try #require(try await cluster.admin(["policy", "create", "--group", "engineering", "--resource",
                                                                  "probe-\(trial)"]) as? [String: Any])
                let sender = try BackgroundProcess(arguments: Cluster.unblocked + ["ip", "netns", "exec", cluster.namespace("client"), "python3", probe,
                                                               "send", "172.20.0.100", "\(port)", "30"])
                defer { _ = sender.stop() }
                _ = try await Self.timed("trial \(trial): the probe passes", .seconds(60)) {
                    receiver.output.components(separatedBy: "\n").filter { $0.hasPrefix("\(port) ") }.count >= 50
                }
                let start = Date().timeIntervalSince1970
                _ = try await cluster.admin(["policy", "delete", policy["id"] as? String ?? ""])
                commands.append(Date().timeIntervalSince1970 - start)
                // The sender goes on (a datagram per ms): the stream has stopped once half a second passes
                // without one.
                func lastArrival() -> Double {
                    receiver.output.components(separatedBy: "\n").filter { $0.hasPrefix("\(port) ") }
                        .compactMap { Double($0.split(separator: " ").last ?? "") }.max() ?? start
                }
                try await Wait.until("trial \(trial): the probe's datagrams stop arriving", timeout: .seconds(10), interval: .milliseconds(100)) {
                    lastArrival() < Date().timeIntervalSince1970 - 0.5
                }
                // The stream stopped because the gateway cut it, not because the sender stopped sending.
                #expect(sender.isRunning, "trial \(trial): the sender still sends: \(sender.output)")
                latencies.append(lastArrival() - start)
                _ = try await cluster.admin(["resource", "delete", resource["id"] as? String ?? ""])
            }
            func percentile(_ values: [Double], _ p: Double) -> Double {
                let sorted = values.sorted()
                return sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
            }
            print(String(format: "policy deleted with `gatehouse admin` → last packet through, %d trials: p50 %.0f ms, p99 %.0f ms, max %.0f ms " +
                         "(goal p99 ≤ 100 ms); the command itself (process start, TLS, the request) took p50 %.0f ms, p99 %.0f ms",
                         latencies.count, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000, (latencies.max() ?? 0) * 1000,
                         percentile(commands, 0.5) * 1000, percentile(commands, 0.99) * 1000))
        }
    }

    /// `up --foreground` stops everything on Ctrl-C (SIGINT); killed outright (-9), it leaves its state
    /// file, and `down` clears what it made.
    @Test(.timeLimit(.minutes(5))) func ctrlCOrACrashLeavesNothingBehind() async throws {
        let cluster = try Cluster()
        defer { try? FileManager.default.removeItem(at: cluster.directory) }
        for (signal, how) in [(SIGINT, "Ctrl-C"), (SIGKILL, "a crash and down")] {
            let foreground = try BackgroundProcess(arguments: cluster.environment + Cluster.unblocked + [cluster.script, "up", "--foreground"])
            try await foreground.waitForOutput(containing: "up until Ctrl-C", timeout: .seconds(120))
            let programs = try await cluster.attachedPrograms()
            let processes = try cluster.processes()
            #expect(!programs.isEmpty && !processes.isEmpty, "\(how): the cluster was up")
            kill(foreground.processIdentifier, signal)
            do {
                _ = try await Self.timed("\(how): the script ends", .seconds(30)) { !foreground.isRunning }
            } catch {
                Issue.record("\(error); its output so far:\n\(foreground.output)")
            }
            if signal == SIGKILL {
                let left = try await cluster.namespaces()
                #expect(!left.isEmpty, "a killed script leaves its cluster up")
                try await cluster.run("down")
            }
            try await cluster.expectNothingLeft(processes: processes, programs: programs, "after \(how)")
        }
    }
}

/// The compose file needs no privileges: it is only parsed.
@Suite struct ComposeFileTests {
    /// The compose file parses with the real Compose CLI and gives every service the role and the
    /// environment the namespace cluster gives it; a compose file that drifts is caught.
    @Test func theComposeFileIsTheNamespaceClusterForDocker() async throws {
        let check = Binaries.packageRoot.appending(path: "compose/check").path(percentEncoded: false)
        let passed = try await Command.run([Binaries.python, check], check: false)
        #expect(passed.status == 0, "\(passed.standardOutput)\(passed.standardError)")
        print(passed.standardOutput)
        // One variable changed in a copy: the check fails and says which.
        let original = try String(contentsOf: Binaries.packageRoot.appending(path: "compose/compose.yaml"), encoding: .utf8)
        let drifted = original.replacingOccurrences(of: "GATEHOUSE_GATEWAY_DNS_SERVER: 172.20.0.53", with: "GATEHOUSE_GATEWAY_DNS_SERVER: 172.20.0.54")
        #expect(drifted != original, "the compose file sets the gateways' DNS server as expected by this test")
        let copy = FileManager.default.temporaryDirectory.appending(path: "gatehouse-compose-drifted-\(UUID().uuidString).yaml")
        try drifted.write(to: copy, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: copy) }
        let failed = try await Command.run([Binaries.python, check, "--compose-file", copy.path], check: false)
        #expect(failed.status != 0 && (failed.standardOutput + failed.standardError).contains("GATEHOUSE_GATEWAY_DNS_SERVER"),
                "\(failed.standardOutput)\(failed.standardError)")
    }
}
