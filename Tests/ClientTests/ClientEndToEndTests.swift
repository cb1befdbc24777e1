import BPF
import Foundation
import TestSupport
import Testing

/// Issue #17: `gatehouse client` in a network namespace of its own, a real portal over TLS (a
/// throwaway CA), a real `gatehouse gateway` and a resource network with an HTTP server; curl is the
/// application.
@Suite(.privileged) struct ClientEndToEndTests {
    /// The namespaces, the portal, the gateway and the resources, seeded with a site, a group with a
    /// user in it and that user's client token.
    final class Bed: @unchecked Sendable {
        let network: TestNetwork
        let gatewayNamespace: NetworkNamespace
        let resources: NetworkNamespace
        let clientNamespace: NetworkNamespace
        let scratch: URL
        let ca: String
        var admin = ""
        var database = ""
        var portal: BackgroundProcess!
        var portalPort = 0
        var gateway: BackgroundProcess!
        var client: BackgroundProcess?
        var site = ""
        var group = ""
        var actor = ""
        var clientToken = ""
        let gatewayEndpoint: String
        let clientTun = TestNetwork.uniqueInterfaceName("ghc")

        /// Where the portal runs and the admin API is called from.
        let portalNamespace: NetworkNamespace
        /// With `natted`: the core network, and the pass-through XDP program on its end of the relays'
        /// link (veth drops XDP_TX frames unless the receiving end runs one).
        var core: NetworkNamespace?
        var passThrough: [XDPAttachment] = []
        /// With `natted`: the relays' networks, 198.18.3.2 and 198.18.7.2 (none otherwise).
        let relayNamespaces: [NetworkNamespace]
        var relays: [BackgroundProcess] = []

        /// `natted` false: the client's network meets the gateway's directly (the portal in the
        /// gateway's namespace). True: the client and the gateway each sit behind a router namespace that
        /// masquerades and lets in only what belongs to flows that went out (stateful), both routers on
        /// a core network with the portal and a relay network:
        ///
        ///     client (198.18.4.2) - crouter - core (portal, 198.18.1.1) - grouter - gateway (198.18.5.2) - resources
        ///                                      |         |
        ///                        relay (198.18.3.2)    relay2 (198.18.7.2)
        init(network: TestNetwork, natted: Bool = false) async throws {
            self.network = network
            let portalAddress: String
            if natted {
                let core = try network.namespace("core")
                let crouter = try network.namespace("crouter")
                let grouter = try network.namespace("grouter")
                let relayNet = try network.namespace("relay")
                clientNamespace = try network.namespace("client")
                gatewayNamespace = try network.namespace("gw")
                resources = try network.namespace("res")
                _ = try network.connect(core, crouter)  // 1: core .1, crouter .2 (its eth0, the uplink)
                _ = try network.connect(core, grouter)  // 2: core .1, grouter .2 (eth0)
                _ = try network.connect(core, relayNet)  // 3: core .1, relay .2
                _ = try network.connect(crouter, clientNamespace)  // 4: crouter .1 (eth1), client .2
                _ = try network.connect(grouter, gatewayNamespace)  // 5: grouter .1 (eth1), gateway .2
                _ = try network.connect(gatewayNamespace, resources)  // 6: gateway .1, resources .2
                let relay2 = try network.namespace("relay2")
                _ = try network.connect(core, relay2)  // 7: core .1 (its eth3), relay2 .2
                for host in 10...29 { try resources.ip("addr", "add", "198.18.6.\(host)/24", "dev", "eth0") }
                for (namespace, via) in [(crouter, "198.18.1.1"), (grouter, "198.18.2.1"), (relayNet, "198.18.3.1"), (relay2, "198.18.7.1"),
                                         (clientNamespace, "198.18.4.1"), (gatewayNamespace, "198.18.5.1")] {
                    try network.route(in: namespace, to: "default", via: via)
                }
                for router in [core, crouter, grouter, gatewayNamespace] { try router.enableForwarding() }
                for router in [crouter, grouter] { try Self.masquerade(router, uplink: "eth0") }
                // The relay's link as from a real NIC (full checksums), for its XDP program.
                for interface in ["eth2", "eth3"] { try core.disableChecksumOffload(interface) }
                for relay in [relayNet, relay2] { try relay.disableChecksumOffload("eth0") }
                self.core = core
                portalNamespace = core
                relayNamespaces = [relayNet, relay2]
                portalAddress = "198.18.1.1"
                gatewayEndpoint = "198.18.5.2:51820"
                try core.setHosts([("127.0.0.1", "portal.test")])
                for namespace in [clientNamespace, gatewayNamespace, relayNet, relay2] { try namespace.setHosts([(portalAddress, "portal.test")]) }
            } else {
                gatewayNamespace = try network.namespace("gw")
                resources = try network.namespace("res")
                clientNamespace = try network.namespace("client")
                _ = try network.connect(gatewayNamespace, resources)  // 198.18.1.1 (gw) - 198.18.1.2 (res)
                let uplink = try network.connect(clientNamespace, gatewayNamespace)  // 198.18.2.1 (client) - 198.18.2.2 (gw)
                for host in 10...29 { try resources.ip("addr", "add", "198.18.1.\(host)/24", "dev", "eth0") }
                try gatewayNamespace.enableForwarding()
                gatewayEndpoint = "\(uplink.b.ipv4):51820"
                // The portal is portal.test: itself in the gateway's namespace, its uplink address for the client.
                portalNamespace = gatewayNamespace
                relayNamespaces = []
                portalAddress = uplink.b.ipv4
                try gatewayNamespace.setHosts([("127.0.0.1", "portal.test")])
                try clientNamespace.setHosts([(portalAddress, "portal.test")])
            }
            // The client's resolver file before the client takes it over: an upstream resolver (for
            // names that are not resources).
            try clientNamespace.setEtcFile("resolv.conf", Self.originalResolvConf)
            scratch = FileManager.default.temporaryDirectory.appending(path: "gatehouse-client-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            let tls = try await ThrowawayCA.make(in: scratch, names: ["DNS:portal.test"])
            ca = tls.ca
            let database = scratch.appending(path: "portal.sqlite").path
            let initialised = try await Command.run([Binaries.gatehouse, "portal", "init", "--db", database, "--admin-email", "admin@acme.test"])
            admin = initialised.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
            self.database = database
            portal = try network.spawn(in: portalNamespace, [Binaries.gatehouse, "portal", "--db", database, "--listen", "0.0.0.0:0",
                                                               "--tls-certificate", tls.certificate, "--tls-key", tls.key, "--heartbeat-interval", "0.5"])
            let address = try await portal.waitForMatch(#""?address"?[=:]"?([0-9.]+:\d+).*portal listening"#, timeout: .seconds(30))
            portalPort = Int(address.split(separator: ":").last ?? "") ?? 0
            site = id(try await api("POST", "/sites", #"{"name": "hq"}"#, expect: 201))
            group = id(try await api("POST", "/groups", #"{"name": "engineering"}"#, expect: 201))
            actor = id(try await api("POST", "/actors", #"{"type": "user", "name": "Ada", "email": "ada@acme.test"}"#, expect: 201))
            try await api("PUT", "/groups/\(group)/members/\(actor)", expect: 201)
            clientToken = try await api("POST", "/tokens", #"{"kind": "client", "actor_id": "\#(actor)"}"#, expect: 201)["secret"] as? String ?? ""
        }

        deinit {
            for attachment in passThrough { try? attachment.detach() }
            try? FileManager.default.removeItem(at: scratch)
        }

        /// The core network drops every UDP datagram between the client's and the gateway's routers:
        /// only the relays are reachable from both.
        func blockUDPBetweenEdges() throws {
            try dropUDPInCore(table: "gatehouse_test_block", [
                "ip saddr 198.18.1.0/24 ip daddr 198.18.2.0/24", "ip saddr 198.18.2.0/24 ip daddr 198.18.1.0/24",
            ])
        }

        /// An nftables table `table` in the core dropping forwarded UDP that matches any of `matches`
        /// (`nft delete table inet TABLE` in the core lifts it).
        func dropUDPInCore(table: String, _ matches: [String]) throws {
            guard let core else { return }
            let rules = """
                table inet \(table) {
                    chain forward { type filter hook forward priority 0; policy accept;
                \(matches.map { "        \($0) meta l4proto udp drop;" }.joined(separator: "\n")) }
                }
                """
            let file = scratch.appending(path: "\(table).nft")
            try rules.write(to: file, atomically: true, encoding: .utf8)
            try core.exec(["nft", "-f", file.path])
        }

        /// No direct path and `relays` relays (1 or 2), the resource "web" (198.18.6.10, tcp:8080) and the
        /// gateway started: the bring-up of the relayed tests.
        func startRelayedOnly(relays: Int = 1) async throws -> (resource: String, policy: String) {
            try blockUDPBetweenEdges()
            for index in 0..<relays { try await startRelay(name: "relay-\(index + 1)", port: 3478, index: index) }
            let web = try await resource("web", address: "198.18.6.10", filters: ["tcp:8080"])
            try await startGateway()
            return web
        }

        /// The relay's counters from its `/metrics`: packets relayed in the kernel (to peers, to
        /// clients) and in user space.
        func relayCounts(_ index: Int = 0) async throws -> (toPeer: Double, toClient: Double, userSpace: Double) {
            let values = try await relayMetrics([#"gatehouse_relay_xdp_packets_total{action="relayed",reason="to_peer"}"#,
                                                 #"gatehouse_relay_xdp_packets_total{action="relayed",reason="to_client"}"#,
                                                 #"gatehouse_relay_relayed_packets_total{path="user_space"}"#], index)
            return (values[0], values[1], values[2])
        }

        /// Series from a relay's /metrics (0 when absent).
        func relayMetrics(_ series: [String], _ index: Int = 0) async throws -> [Double] {
            guard index < relayOperations.count, let operations = relayOperations[index] else { return series.map { _ in 0 } }
            let metrics = try await relayNamespaces[index].exec(["curl", "-s", "http://\(operations)/metrics"]).standardOutput
            return series.map { name in
                metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            }
        }

        /// A home router: what leaves by `uplink` is masqueraded (Linux keeps the source port where it
        /// can), and what comes in by it, to the router itself or through it, passes only when it
        /// belongs to a flow that went out. (Unsolicited datagrams are dropped, not answered: one taken
        /// in and refused would hold the mapping's port, and the next mapping would get another.)
        static func masquerade(_ router: NetworkNamespace, uplink: String) throws {
            let rules = """
                table ip gatehouse_test_nat {
                    chain postrouting { type nat hook postrouting priority 100; oifname "\(uplink)" masquerade; }
                    chain forward { type filter hook forward priority 0; policy accept; iifname "\(uplink)" ct state established,related accept; iifname "\(uplink)" drop; }
                    chain input { type filter hook input priority 0; policy accept; iifname "\(uplink)" ct state established,related accept; iifname "\(uplink)" drop; }
                }
                """
            let file = FileManager.default.temporaryDirectory.appending(path: "gatehouse-nft-\(UUID().uuidString)")
            try rules.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            try router.exec(["nft", "-f", file.path])
        }

        var relayOperations: [String?] = [nil, nil]

        /// Starts relay `index` (0: 198.18.3.2, 1: 198.18.7.2) joined to the portal, on `port`, with its
        /// XDP fast path on its link.
        func startRelay(name: String, port: Int, index: Int = 0) async throws {
            guard index < relayNamespaces.count, let core else { return }
            let relayNamespace = relayNamespaces[index]
            let counter = try CounterProgram()
            passThrough.append(try core.run { try counter.attachXDP(to: index == 0 ? "eth2" : "eth3", mode: .native) })
            let made = try await Command.run([Binaries.gatehouse, "portal", "relay-token", "create", "--db", database])
            let token = made.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
            let relay = try network.spawn(in: relayNamespace, [
                "env", "GATEHOUSE_TOKEN=\(token)", Binaries.gatehouse, "relay", "--public-ipv4", index == 0 ? "198.18.3.2" : "198.18.7.2",
                "--listen-port", "\(port)",
                "--allow-peer", "198.18.0.0/15", "--operations-address", "127.0.0.1:0", "--portal-url", url, "--ca-file", ca, "--name", name,
                "--portal-heartbeat-interval", "0.5", "--xdp", "eth0",
            ])
            try await relay.waitForOutput(containing: "XDP fast path attached", timeout: .seconds(30))
            relayOperations[index] = try await relay.waitForMatch(#""?address"?[=:]"?([0-9.]+:\d+).*operations listening"#, timeout: .seconds(30))
            try await relay.waitForOutput(containing: "joined the portal", timeout: .seconds(30))
            relays.append(relay)
        }

        static let originalResolvConf = "# the test's own\nnameserver 198.18.2.2\nsearch corp.test\noptions timeout:2\n"

        var url: String { "https://portal.test:\(portalPort)" }

        @discardableResult
        func api(_ method: String, _ path: String, _ body: String = "", expect status: Int? = nil) async throws -> [String: Any] {
            let answer = try await AdminAPIRequest.perform(url: url, token: admin, method, path, body, in: portalNamespace, caFile: ca)
            if let status { #expect(answer.status == status, "\(method) \(path) \(body): \(answer.status) \(answer.text)") }
            return answer.object
        }

        func id(_ object: [String: Any]) -> String { object["id"] as? String ?? "" }

        /// A resource of the site granted to the group; its ID and its policy's.
        func resource(_ name: String, type: String = "ip", address: String, filters: [String] = [], conditions: [String] = []) async throws
            -> (resource: String, policy: String) {
            let filterList = filters.map { "\"\($0)\"" }.joined(separator: ",")
            let resource = id(try await api("POST", "/resources", #"{"name": "\#(name)", "type": "\#(type)", "address": "\#(address)", "site_id": "\#(site)", "filters": [\#(filterList)]}"#, expect: 201))
            let conditionList = conditions.map { "\"\($0)\"" }.joined(separator: ",")
            let policy = id(try await api("POST", "/policies", #"{"group_id": "\#(group)", "resource_id": "\#(resource)", "conditions": [\#(conditionList)]}"#, expect: 201))
            return (resource, policy)
        }

        func startGateway(extraArguments: [String] = []) async throws {
            let token = try await api("POST", "/tokens", #"{"kind": "gateway", "site_id": "\#(site)"}"#, expect: 201)["secret"] as? String ?? ""
            gateway = try network.spawn(in: gatewayNamespace, [
                "env", "GATEHOUSE_TOKEN=\(token)", Binaries.gatehouse, "gateway", "--portal-url", url, "--ca-file", ca, "--name", "gw",
                "--endpoint", gatewayEndpoint, "--state-dir", scratch.appending(path: "gateway").path, "--operations-address", "127.0.0.1:0",
                "--tun-name", TestNetwork.uniqueInterfaceName("ght"), "--portal-heartbeat-interval", "0.5",
            ] + extraArguments)
            try await gateway.waitForMatch(#"()\[Gateway\] init"#, timeout: .seconds(30))
        }

        var clientState: String { scratch.appending(path: "client").path }

        /// Starts `gatehouse client` in the client's namespace with the user's token in a file of mode 600.
        func startClient(extraArguments: [String] = []) async throws {
            let tokenFile = scratch.appending(path: "client-token").path
            try clientToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            _ = try await Command.run(["chmod", "600", tokenFile])
            let process = try network.spawn(in: clientNamespace, [
                Binaries.gatehouse, "client", "--portal-url", url, "--ca-file", ca, "--token-file", tokenFile, "--state-dir", clientState,
                "--tun-name", clientTun, "--name", "ada-laptop", "--portal-heartbeat-interval", "0.5",
            ] + extraArguments)
            client = process
            try await process.waitForMatch(#"()\[Client\] init"#, timeout: .seconds(30))
        }

        /// An HTTP server on port 8080 of the resources' namespace serving `directory`, listening.
        func serveHTTP(_ directory: String) async throws {
            _ = try network.spawn(in: resources, ["python3", "-m", "http.server", "8080", "--bind", "::", "--directory", directory])
            try await Wait.until("the HTTP server listens", timeout: .seconds(10)) {
                try self.resources.exec(["ss", "-tln"]).standardOutput.contains(":8080")
            }
        }

        /// `gatehouse client status --json`, read.
        func status() async throws -> [String: Any] {
            let output = try await clientNamespace.exec([Binaries.gatehouse, "client", "status", "--json", "--state-dir", clientState])
            return try #require(try JSONSerialization.jsonObject(with: Data(output.standardOutput.utf8)) as? [String: Any], "\(output.standardOutput)")
        }

        /// curl from the client's namespace: its exit status, the body, and the time to the first byte.
        func fetch(_ target: String, timeout: Int = 30) async throws -> (status: Int32, body: String, firstByte: Double, error: String) {
            let run = try await clientNamespace.exec(["curl", "-s", "-S", "-m", "\(timeout)", "-w", "\n%{time_starttransfer}", target], check: false)
            let lines = run.standardOutput.split(separator: "\n", omittingEmptySubsequences: false)
            return (run.status, lines.dropLast().joined(separator: "\n"), Double(lines.last ?? "") ?? 0, run.standardError)
        }
    }

    /// The client reaches an HTTP resource through the gateway, its first packet making the flow;
    /// `status` shows the flow and its traffic; a resource the portal refuses is answered at once with
    /// ICMP (curl fails to connect instead of timing out); a resource covering the gateway's and the
    /// portal's addresses does not capture them; deleting the policy cuts access and `status` says so;
    /// SIGTERM leaves no device, route or socket behind.
    @Test func aClientReachesAResourceThroughTheGatewayAndLosesItWithThePolicy() async throws {
        try await TestNetwork.with { network in
            let bed = try await Bed(network: network)
            let web = try await bed.resource("web", address: "198.18.1.10", filters: ["tcp:8080", "icmp"])
            // A resource of a site with no gateway: the portal answers its flow with `offline`.
            let lab = bed.id(try await bed.api("POST", "/sites", #"{"name": "lab"}"#, expect: 201))
            let offline = bed.id(try await bed.api("POST", "/resources", #"{"name": "lab-printer", "type": "ip", "address": "198.18.1.20", "site_id": "\#(lab)", "filters": []}"#, expect: 201))
            try await bed.api("POST", "/policies", #"{"group_id": "\#(bed.group)", "resource_id": "\#(offline)"}"#, expect: 201)
            try await bed.startGateway()
            let content = scratch(bed, "hello.txt", "hello through the tunnel\n")
            try await bed.serveHTTP(content)

            // A token on the command line is refused (every user of the host could read it there).
            let flagged = try await bed.clientNamespace.exec([Binaries.gatehouse, "client", "--portal-url", bed.url, "--token", bed.clientToken],
                                                             check: false)
            #expect(flagged.status != 0 && flagged.standardError.contains("--token-file or GATEHOUSE_TOKEN"), "\(flagged.standardError)")
            let notRunning = try await bed.clientNamespace.exec([Binaries.gatehouse, "client", "status", "--state-dir", bed.clientState], check: false)
            #expect(notRunning.status != 0 && notRunning.standardError.contains("is the client running"), "\(notRunning.standardError)")

            try await bed.startClient()
            let fetched = try await bed.fetch("http://198.18.1.10:8080/hello.txt")
            #expect(fetched.status == 0 && fetched.body == "hello through the tunnel\n", "\(fetched)")
            print("first packet to first byte through a new flow (debug build, plain WireGuard): \(String(format: "%.0f", fetched.firstByte * 1000)) ms")
            let again = try await bed.fetch("http://198.18.1.10:8080/hello.txt")
            #expect(again.status == 0 && again.body == "hello through the tunnel\n")
            print("the same over the flow made: \(String(format: "%.1f", again.firstByte * 1000)) ms")

            // ICE finds the direct way meanwhile (checks, then the nomination): the client's host address
            // and the gateway's.
            func webFlow() async throws -> [String: Any]? {
                (try await bed.status()["flows"] as? [[String: Any]] ?? []).first { $0["resource"] as? String == web.resource }
            }
            try await Wait.until("ICE selects a pair", timeout: .seconds(15)) {
                (try await webFlow()?["candidate_pair"] as? String ?? "").hasPrefix("host ")
            }
            var status = try await bed.status()
            let flow = try await webFlow()
            #expect(flow?["established"] as? Bool == true, "\(status)")
            // Either family's host pair on the link they share (whichever was best when the client nominated).
            let endpoint = flow?["endpoint"] as? String ?? ""
            #expect(["198.18.2.2:51820", "[fd00:6768:0:2::2]:51820"].contains(endpoint), "\(flow ?? [:])")
            #expect(flow?["path"] as? String == "direct", "\(flow ?? [:])")
            let pair = flow?["candidate_pair"] as? String ?? ""
            #expect((pair.hasPrefix("host 198.18.2.1:") || pair.hasPrefix("host [fd00:6768:0:2::1]:")) && pair.hasSuffix("host \(endpoint)"), "\(pair)")
            #expect((flow?["bytes_received"] as? Int ?? 0) > 0 && (flow?["bytes_sent"] as? Int ?? 0) > 0, "\(flow ?? [:])")
            #expect((status["portal"] as? [String: Any])?["connected"] as? Bool == true)
            let text = try await bed.clientNamespace.exec([Binaries.gatehouse, "client", "status", "--state-dir", bed.clientState]).standardOutput
            #expect(text.contains("web (ip 198.18.1.10): via gateway") && text.contains("tunnel up"), "\(text)")

            // No gateway of the lab site is online: ICMP unreachable says so at once.
            #expect((status["routes"] as? [String] ?? []).contains("198.18.1.20/32"), "\(status)")
            let refused = try await bed.fetch("http://198.18.1.20:8080/hello.txt", timeout: 30)
            #expect(refused.status == 7, "curl could not connect (exit 7), not a timeout (28): \(refused)")
            status = try await bed.status()
            let offlineEntry = (status["resources"] as? [[String: Any]] ?? []).first { $0["id"] as? String == offline }
            #expect(offlineEntry?["failure"] as? String == "offline", "\(status)")
            #expect(status["refused_packets"] as? Int ?? 0 > 0)

            // A resource covering the whole test network, the gateway's and portal's address among it:
            // the tunnel does not capture its own way out, and the fetch still goes through the gateway.
            let everything = try await bed.resource("everything", type: "cidr", address: "198.18.0.0/16", filters: ["tcp:8080"])
            try await Wait.until("the covering resource is routed", timeout: .seconds(20)) {
                (try await bed.status()["routes"] as? [String] ?? []).contains("198.18.0.0/23")
            }
            let way = try bed.clientNamespace.ip("route", "get", "198.18.2.2").standardOutput
            #expect(!way.contains(bed.clientTun), "the gateway's address is not routed into the tunnel: \(way)")
            let viaTunnel = try bed.clientNamespace.ip("route", "get", "198.18.1.11").standardOutput
            #expect(viaTunnel.contains(bed.clientTun), "\(viaTunnel)")
            let covered = try await bed.fetch("http://198.18.1.11:8080/hello.txt")
            #expect(covered.status == 0 && covered.body == "hello through the tunnel\n", "through the covering resource: \(covered)")
            let stillWeb = try await bed.fetch("http://198.18.1.10:8080/hello.txt")
            #expect(stillWeb.status == 0, "\(stillWeb)")

            // The policies deleted: the client's access ends, and status says so.
            try await bed.api("DELETE", "/policies/\(web.policy)", expect: 204)
            try await bed.api("DELETE", "/policies/\(everything.policy)", expect: 204)
            try await Wait.until("the client hears the resources are gone", timeout: .seconds(20)) {
                Set((try await bed.status()["revoked"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }).isSuperset(of: ["web", "everything"])
            }
            let cut = try await bed.fetch("http://198.18.1.10:8080/hello.txt", timeout: 5)
            #expect(cut.status != 0, "no access after the policy is deleted: \(cut)")
            let revokedText = try await bed.clientNamespace.exec([Binaries.gatehouse, "client", "status", "--state-dir", bed.clientState]).standardOutput
            #expect(revokedText.contains("web: access removed"), "\(revokedText)")

            // SIGTERM: the device, its routes and the status socket go.
            let client = try #require(bed.client)
            let stopping = ContinuousClock.now
            _ = client.stop(grace: .seconds(10))
            print("the client exited \(ContinuousClock.now - stopping) after SIGTERM")
            #expect(client.output.contains("tunnel device removed"), "\(client.output.suffix(600))")
            let link = try await bed.clientNamespace.exec(["ip", "link", "show", bed.clientTun], check: false)
            #expect(link.status != 0, "no TUN device left")
            let routes = try bed.clientNamespace.ip("route", "show").standardOutput + (try bed.clientNamespace.ip("-6", "route", "show").standardOutput)
            #expect(!routes.contains(bed.clientTun), "no route left: \(routes)")
            #expect(!FileManager.default.fileExists(atPath: bed.clientState + "/client.sock"), "the status socket is removed")
            let resolver = try String(contentsOfFile: bed.clientNamespace.etcPath("resolv.conf"), encoding: .utf8)
            #expect(resolver == Bed.originalResolvConf, "the resolver file is restored")
            let stub = try bed.clientNamespace.ip("addr", "show", "dev", "lo").standardOutput
            #expect(!stub.contains("100.96.0.53"), "the DNS stub's address is gone: \(stub)")
        }
    }

    /// DNS resources: the client's stub answers names of a DNS resource with proxy addresses (IPv4
    /// and IPv6), the gateway resolves the name itself and the HTTP resource is fetched by name over
    /// both families; other names go to the upstream resolver unchanged, and no resource's name leaks
    /// to it; the resolver file is restored on exit.
    @Test func aClientReachesADNSResourceByNameAndOtherNamesResolveAsBefore() async throws {
        try await TestNetwork.with { network in
            let bed = try await Bed(network: network)
            try bed.resources.ip("-6", "addr", "add", "fd00:6768:0:1::15/64", "dev", "eth0", "nodad")
            // The resource network's DNS server (the gateway's), and the client's upstream one.
            let resourceLog = bed.scratch.appending(path: "dnsmasq-resources.log").path
            let upstreamLog = bed.scratch.appending(path: "dnsmasq-upstream.log").path
            try await bed.resources.exec([
                "dnsmasq", "--no-resolv", "--no-hosts", "--pid-file=", "--user=root", "--log-facility=\(resourceLog)", "--log-queries",
                "--listen-address=198.18.1.2", "--bind-interfaces", "--host-record=wiki.corp.test,198.18.1.15,fd00:6768:0:1::15",
            ])
            try await bed.gatewayNamespace.exec([
                "dnsmasq", "--no-resolv", "--no-hosts", "--pid-file=", "--user=root", "--log-facility=\(upstreamLog)", "--log-queries",
                "--listen-address=198.18.2.2", "--bind-interfaces", "--host-record=www.public.test,198.18.2.2",
                // An answer too big for plain UDP (three strings of 250 bytes): truncated there, whole over TCP.
                "--txt-record=big.public.test," + (0..<3).map { _ in String(repeating: "t", count: 250) }.joined(separator: ","),
            ])
            _ = try await bed.resource("corp", type: "dns", address: "*.corp.test", filters: ["tcp:8080", "icmp"])
            try await bed.startGateway(extraArguments: ["--dns-server", "198.18.1.2"])
            let content = scratch(bed, "hello.txt", "hello by name\n")
            _ = try network.spawn(in: bed.resources, ["python3", "-m", "http.server", "8080", "--bind", "::", "--directory", content])
            try await Wait.until("the HTTP server and both DNS servers listen", timeout: .seconds(10)) {
                let resources = try bed.resources.exec(["ss", "-tuln"]).standardOutput
                let gateway = try bed.gatewayNamespace.exec(["ss", "-uln"]).standardOutput
                return resources.contains(":8080") && resources.contains("198.18.1.2:53") && gateway.contains("198.18.2.2:53")
            }
            try await bed.startClient()
            let taken = try String(contentsOfFile: bed.clientNamespace.etcPath("resolv.conf"), encoding: .utf8)
            #expect(taken.contains("nameserver 100.96.0.53") && taken.contains("search corp.test") && !taken.contains("198.18.2.2"), "\(taken)")

            // By name: the stub's proxy address, then the gateway's translation to the real one.
            let addresses = try await bed.clientNamespace.exec(["getent", "ahosts", "wiki.corp.test"]).standardOutput
            #expect(addresses.contains("100.96.") && addresses.contains("fd00:6761:7465:8000:"), "proxy addresses: \(addresses)")
            let fetched = try await bed.fetch("http://wiki.corp.test:8080/hello.txt")
            #expect(fetched.status == 0 && fetched.body == "hello by name\n", "\(fetched)")
            print("first packet to first byte through a new DNS resource flow (debug build): \(String(format: "%.0f", fetched.firstByte * 1000)) ms")
            for family in ["-4", "-6"] {
                let run = try await bed.clientNamespace.exec(["curl", "-sS", family, "-m", "20", "http://wiki:8080/hello.txt"], check: false)
                #expect(run.status == 0 && run.standardOutput == "hello by name\n", "\(family) by the search domain: \(run.standardError)")
            }
            // Another name: the upstream resolver answers, as before the client.
            let other = try await bed.clientNamespace.exec(["getent", "ahostsv4", "www.public.test"]).standardOutput
            #expect(other.contains("198.18.2.2"), "\(other)")
            let unknown = try await bed.clientNamespace.exec(["getent", "hosts", "nothing.public.test"], check: false)
            #expect(unknown.status != 0, "a name nobody knows stays unknown")
            let upstreamAsked = (try? String(contentsOfFile: upstreamLog, encoding: .utf8)) ?? ""
            #expect(upstreamAsked.contains("www.public.test") && !upstreamAsked.contains("wiki.corp.test"),
                    "the upstream resolver got the other names and none of the resource's: \(upstreamAsked)")
            let gatewayAsked = (try? String(contentsOfFile: resourceLog, encoding: .utf8)) ?? ""
            #expect(gatewayAsked.contains("query[A] wiki.corp.test"), "the gateway resolved the name itself: \(gatewayAsked)")

            // DNS over TCP to the stub (what a resolver asks again after a truncated answer), with dnspython.
            let overTCP = try await bed.clientNamespace.exec([Binaries.python, "-c", """
                import dns.flags, dns.message, dns.query
                big = dns.message.make_query("big.public.test", "TXT")
                print("udp_truncated", bool(dns.query.udp(big, "100.96.0.53", timeout=5).flags & dns.flags.TC))
                answer = dns.query.tcp(big, "100.96.0.53", timeout=5)
                print("tcp_txt", sum(len(s) for rrset in answer.answer for item in rrset for s in item.strings))
                name = dns.query.tcp(dns.message.make_query("wiki.corp.test", "A"), "100.96.0.53", timeout=5)
                print("tcp_a", ",".join(item.address for rrset in name.answer for item in rrset))
                """])
            #expect(overTCP.standardOutput.contains("udp_truncated True") && overTCP.standardOutput.contains("tcp_txt 750"),
                    "a big answer: truncated over UDP, whole over TCP through the stub: \(overTCP.standardOutput) \(overTCP.standardError)")
            #expect(overTCP.standardOutput.contains("tcp_a 100.96."), "a resource's name over TCP: \(overTCP.standardOutput)")

            let status = try await bed.status()
            let flow = (status["flows"] as? [[String: Any]] ?? []).first { $0["dns_name"] as? String == "wiki.corp.test" }
            #expect(flow?["established"] as? Bool == true, "\(status)")
            let dns = status["dns"] as? [String: Any]
            #expect((dns?["answered"] as? Int ?? 0) >= 2 && (dns?["forwarded"] as? Int ?? 0) >= 2 && (dns?["failed"] as? Int ?? -1) == 0,
                    "status counts what the stub answered and passed upstream: \(String(describing: dns))")

            _ = bed.client?.stop(grace: .seconds(10))
            let restored = try String(contentsOfFile: bed.clientNamespace.etcPath("resolv.conf"), encoding: .utf8)
            #expect(restored == Bed.originalResolvConf, "the resolver file is restored: \(restored)")
            #expect(!FileManager.default.fileExists(atPath: bed.clientState + "/resolv.conf.original"))
        }
    }

    /// Both edges behind masquerading, stateful routers: the gateway's announced endpoint (a private
    /// address) cannot be reached, and no router lets in what did not go out first. Server-reflexive
    /// candidates from the relay (as a STUN server) and checks from both ends punch the hole: the pair
    /// is direct, between the two routers' public addresses.
    @Test func behindNATsBothEdgesPunchAHoleWithServerReflexiveCandidates() async throws {
        try await TestNetwork.with { network in
            let bed = try await Bed(network: network, natted: true)
            try await bed.startRelay(name: "relay-1", port: 3478)
            let web = try await bed.resource("web", address: "198.18.6.10", filters: ["tcp:8080"])
            try await bed.startGateway()
            let content = scratch(bed, "hello.txt", "hello through two NATs\n")
            try await bed.serveHTTP(content)
            try await bed.startClient()
            let direct = try await bed.clientNamespace.exec(["curl", "-sS", "-m", "3", "http://198.18.5.2:51820/"], check: false)
            #expect(direct.status != 0, "the gateway's private address is out of the client's reach")
            let fetched = try await bed.fetch("http://198.18.6.10:8080/hello.txt")
            #expect(fetched.status == 0 && fetched.body == "hello through two NATs\n", "\(fetched)")
            print("first packet to first byte through two NATs (debug build, ICE with server-reflexive candidates): \(String(format: "%.0f", fetched.firstByte * 1000)) ms")
            func webFlow() async throws -> [String: Any]? {
                (try await bed.status()["flows"] as? [[String: Any]] ?? []).first { $0["resource"] as? String == web.resource }
            }
            try await Wait.until("ICE selects a pair", timeout: .seconds(15)) { (try await webFlow()?["candidate_pair"] as? String ?? "").hasPrefix("host ") }
            let flow = try await webFlow()
            let pair = flow?["candidate_pair"] as? String ?? ""
            #expect(flow?["path"] as? String == "direct" && pair.hasPrefix("host 198.18.4.2:") && pair.contains("198.18.2.2:"),
                    "from the client's address to the gateway router's public one: \(pair)")
            #expect(pair.contains("srflx 198.18.2.2:51820") || pair.contains("prflx 198.18.2.2:"), "\(pair)")
            let again = try await bed.fetch("http://198.18.6.10:8080/hello.txt")
            #expect(again.status == 0, "\(again)")
        }
    }

    /// The routers also drop every UDP datagram between the client's and the gateway's networks: no
    /// hole can be punched, and only the relay is reachable from both. The client's relayed candidate
    /// (a TURN allocation on the relay, with a channel bound to the gateway) wins, and the relay's
    /// kernel counters show the data crossed its XDP path, not user space.
    @Test func withNoDirectPathTheTunnelGoesThroughTheRelaysKernelPath() async throws {
        try await TestNetwork.with { network in
            let bed = try await Bed(network: network, natted: true)
            let web = try await bed.startRelayedOnly()
            let content = scratch(bed, "hello.txt", String(repeating: "relayed in the kernel\n", count: 2000))
            try await bed.serveHTTP(content)
            try await bed.startClient()
            let fetched = try await bed.fetch("http://198.18.6.10:8080/hello.txt")
            #expect(fetched.status == 0 && fetched.body.count == 44_000, "\(fetched.status) \(fetched.error) \(fetched.body.prefix(100))")
            print("first packet to first byte through the relay (debug build, ICE with a relayed candidate): \(String(format: "%.0f", fetched.firstByte * 1000)) ms")
            let flow = (try await bed.status()["flows"] as? [[String: Any]] ?? []).first { $0["resource"] as? String == web.resource }
            let pair = flow?["candidate_pair"] as? String ?? ""
            #expect(flow?["path"] as? String == "relayed" && flow?["relay"] as? String == "relay-1" && pair.hasPrefix("relay 198.18.3.2:"),
                    "\(flow ?? [:])")
            let before = try await bed.relayCounts()
            let again = try await bed.fetch("http://198.18.6.10:8080/hello.txt")
            #expect(again.status == 0 && again.body.count == 44_000)
            let after = try await bed.relayCounts()
            print("relay counters for one 44 kB fetch: kernel to peer \(after.toPeer - before.toPeer), to client \(after.toClient - before.toClient), user space \(after.userSpace - before.userSpace)")
            #expect(after.toPeer - before.toPeer >= 3 && after.toClient - before.toClient >= 20, "the data crossed the XDP path: \(before) -> \(after)")
            #expect(after.userSpace == before.userSpace, "none of it through the relay's user space: \(before) -> \(after)")

            // The client deletes its allocation when it stops: else the relay would keep it for its whole
            // lifetime and refuse (437) a client started again on the same port.
            #expect(try await bed.relayMetrics(["gatehouse_relay_allocations"]) == [1], "the client's allocation")
            _ = try #require(bed.client).stop(grace: .seconds(10))
            try await Wait.until("the relay has no allocation left", timeout: .seconds(5)) {
                try await bed.relayMetrics(["gatehouse_relay_allocations"]) == [0]
            }
        }
    }

    /// Failover: with two relays and no direct path, the relay in use is stopped in the middle of a
    /// download; the client finds the way through the other relay (a fresh establishment), the same
    /// WireGuard session goes on over it, and the download completes whole.
    @Test func whenTheRelayInUseStopsTheTunnelMovesToTheOther() async throws {
        try await TestNetwork.with { network in
            let bed = try await Bed(network: network, natted: true)
            let web = try await bed.startRelayedOnly(relays: 2)
            let content = scratch(bed, "big.bin", String(repeating: "0123456789abcdef", count: 256 * 1024))  // 4 MiB
            try await bed.serveHTTP(content)
            try await bed.startClient(extraArguments: ["--test-ice-keepalive-seconds", "1"])
            func webFlow() async throws -> [String: Any]? {
                (try await bed.status()["flows"] as? [[String: Any]] ?? []).first { $0["resource"] as? String == web.resource }
            }
            // About 8 s at 512 kB/s: the relay goes in the middle.
            let output = bed.scratch.appending(path: "downloaded.bin").path
            let download = try network.spawn(in: bed.clientNamespace, ["curl", "-sS", "--limit-rate", "512k", "-m", "90", "-o", output,
                                                                        "http://198.18.6.10:8080/big.bin"])
            try await Wait.until("the download goes through a relay", timeout: .seconds(20)) {
                (try await webFlow()?["relay"] as? String) != nil
            }
            let first = try #require(try await webFlow()?["relay"] as? String)
            // A quarter of it in first, so that the relay goes in the middle.
            try await Wait.until("a quarter of the download came", timeout: .seconds(30)) {
                ((try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0) >= 1024 * 1024
            }
            let stopped = ContinuousClock.now
            let exit = bed.relays[first == "relay-1" ? 0 : 1].stop()
            #expect(exit == 0, "the relay stops cleanly on SIGTERM")
            let other = first == "relay-1" ? "relay-2" : "relay-1"
            try await Wait.until("the tunnel moves to \(other)", timeout: .seconds(30)) {
                (try await webFlow()?["relay"] as? String) == other
            }
            print("moved from \(first) to \(other) \(ContinuousClock.now - stopped) after \(first) stopped")
            try await Wait.until("the download completes", timeout: .seconds(60)) { !download.isRunning }
            let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
            #expect(download.stop() == 0 && size == 4 * 1024 * 1024, "the download completed whole: \(size) bytes, \(download.output)")
            let flow = try await webFlow()
            #expect(flow?["path"] as? String == "relayed" && (flow?["candidate_pair"] as? String ?? "").hasPrefix("relay 198.18."), "\(flow ?? [:])")
        }
    }

    /// An outage of the only way: with no direct path and one relay, the core drops everything to and
    /// from the relay for a while. The pair is lost, and the fresh establishments made during the
    /// outage fail too; the client keeps trying (1 s, then doubling up to 15 s), so once the relay is
    /// reachable again the tunnel comes back through it without anyone restarting anything.
    @Test func afterAnOutageOfTheOnlyRelayTheTunnelComesBack() async throws {
        try await TestNetwork.with { network in
            let bed = try await Bed(network: network, natted: true)
            let web = try await bed.startRelayedOnly()
            let content = scratch(bed, "hello.txt", "through the relay again\n")
            try await bed.serveHTTP(content)
            try await bed.startClient(extraArguments: ["--test-ice-keepalive-seconds", "1"])
            let client = try #require(bed.client)
            func webFlow() async throws -> [String: Any]? {
                (try await bed.status()["flows"] as? [[String: Any]] ?? []).first { $0["resource"] as? String == web.resource }
            }
            func failedEstablishments() async throws -> Int { (try await bed.status()["dropped"] as? [String: Int])?["ice_failed"] ?? 0 }
            let fetched = try await bed.fetch("http://198.18.6.10:8080/hello.txt")
            #expect(fetched.status == 0 && fetched.body == "through the relay again\n", "\(fetched)")
            #expect(try await webFlow()?["relay"] as? String == "relay-1")

            let core = try #require(bed.core)
            try bed.dropUDPInCore(table: "gatehouse_test_outage", ["ip daddr 198.18.3.2", "ip saddr 198.18.3.2"])
            // The pair lost, then at least two fresh establishments that found nothing.
            try await Wait.until("two establishments failed during the outage", timeout: .seconds(40)) {
                try await failedEstablishments() >= 2
            }
            #expect(client.output.contains("no pair answered in the last establishment"))
            let during = try await webFlow()
            #expect(during?["path"] as? String == "searching" && (during?["candidate_pair"] as? String ?? "").hasPrefix("none: the last one stopped answering"),
                    "status says the way is being looked for: \(during ?? [:])")
            _ = try await core.exec(["nft", "delete", "table", "inet", "gatehouse_test_outage"])
            let lifted = ContinuousClock.now
            try await Wait.until("the tunnel is relayed again", timeout: .seconds(40)) {
                (try await webFlow()?["candidate_pair"] as? String ?? "").hasPrefix("relay 198.18.3.2:")
            }
            print("the tunnel came back through the relay \(ContinuousClock.now - lifted) after the outage ended")
            let again = try await bed.fetch("http://198.18.6.10:8080/hello.txt")
            #expect(again.status == 0 && again.body == "through the relay again\n", "after the outage: \(again)")
        }
    }

    /// A network change: SIGHUP, then an address the client's host gains (seen over rtnetlink), each
    /// bind the client's sockets again (a new port), make the portal connection and the way to the
    /// gateway again, and keep the flows: the next fetch needs no new flow.
    @Test func aNetworkChangeRebindsAndKeepsTheFlows() async throws {
        try await TestNetwork.with { network in
            let bed = try await Bed(network: network)
            let web = try await bed.resource("web", address: "198.18.1.10", filters: ["tcp:8080"])
            try await bed.startGateway()
            let content = scratch(bed, "hello.txt", "still here\n")
            try await bed.serveHTTP(content)
            try await bed.startClient()
            let client = try #require(bed.client)
            func pair() async throws -> String {
                ((try await bed.status()["flows"] as? [[String: Any]] ?? []).first { $0["resource"] as? String == web.resource }?["candidate_pair"] as? String) ?? ""
            }
            func localPort(_ pair: String) -> String { pair.split(separator: " ").dropFirst().first.map { String($0.split(separator: ":").last ?? "") } ?? "" }
            func count(_ text: String) -> Int { client.output.components(separatedBy: text).count - 1 }
            let fetched = try await bed.fetch("http://198.18.1.10:8080/hello.txt")
            #expect(fetched.status == 0 && fetched.body == "still here\n", "\(fetched)")
            try await Wait.until("ICE selects a pair", timeout: .seconds(15)) { try await pair().hasPrefix("host ") }
            var port = localPort(try await pair())
            let flowsAsked = count("[Client] create_flow")
            for (change, act) in [("SIGHUP", { () async throws in _ = kill(client.processIdentifier, SIGHUP) }),
                                  ("a new address", { () async throws in try bed.clientNamespace.ip("addr", "add", "198.18.2.9/24", "dev", "eth0") })] {
                let joins = count("joined the portal")
                try await act()
                try await Wait.until("after \(change), a pair from a new port", timeout: .seconds(20)) {
                    let now = try await pair()
                    return now.hasPrefix("host ") && localPort(now) != port
                }
                port = localPort(try await pair())
                let again = try await bed.fetch("http://198.18.1.10:8080/hello.txt")
                #expect(again.status == 0 && again.body == "still here\n", "after \(change): \(again)")
                try await Wait.until("after \(change), the portal connection is made again", timeout: .seconds(20)) { count("joined the portal") > joins }
                #expect(client.output.contains("the network changed"), "after \(change)")
            }
            #expect(count("[Client] create_flow") == flowsAsked, "the flow was kept: no new one asked")
        }
    }

    /// A directory under the bed's scratch with one file.
    func scratch(_ bed: Bed, _ name: String, _ text: String) -> String {
        let directory = bed.scratch.appending(path: "www")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? text.write(to: directory.appending(path: name), atomically: true, encoding: .utf8)
        return directory.path
    }
}
