// The gateway's rules benchmark (bench/gateway.sh runs it): N clients × M resources with filters go
// into the kernel's trie through the session actors, as the portal's `init` would put them; then one
// resource every client has changes its filters (`resource_updated`) and the time until every session
// rewrote its entries is measured; then the TC program's run time per packet, as the kernel's own BPF
// statistics count it (kernel.bpf_stats_enabled), over packets of each verdict with the trie full,
// beside a classifier that only passes packets. Prints figures; asserts nothing. Needs root.
import Actors
import BPF
import ControlProtocol
import Foundation
import Gateway
import Identifiers
import Logging

var clients = 1000
var resourcesPerClient = 100
var repetitions: Int32 = 1_000_000
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--clients": clients = Int(arguments.popFirst() ?? "") ?? clients
    case "--resources": resourcesPerClient = Int(arguments.popFirst() ?? "") ?? resourcesPerClient
    case "--repetitions": repetitions = Int32(arguments.popFirst() ?? "") ?? repetitions
    default:
        FileHandle.standardError.write(Data("gateway-bench: unknown argument \(argument)\n".utf8))
        exit(2)
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Resource k: a /24 inside 10.(k / 250).0.0/16, with a port range and ICMP; every tenth is a /16 that
/// covers nine /24s, so entries carry merged filters as real sets do.
func resource(_ index: Int) -> GatewayResource {
    let covering = index % 10 == 0
    let address = covering ? "10.\(100 + index / 10).0.0/16" : "10.\(100 + index / 10).\(index % 10).0/24"
    let filters = covering ? ["tcp:22", "icmp"] : ["tcp:443", "tcp:8000-8100", "udp:\(5000 + index)"]
    return GatewayResource(id: ResourceID(), name: "r\(index)", type: .cidr, address: address, filters: filters)
}

let logger = Logger(label: "gateway-bench")
let program = try GatewayTCProgram()
let kernel = KernelRules(program: program)
let state = FileManager.default.temporaryDirectory.appending(path: "gateway-bench-\(UUID().uuidString)").path
defer { try? FileManager.default.removeItem(atPath: state) }
let identity = try DeviceIdentity.load(orCreateIn: state)
let control = GatewayControl(identity: .init(device: identity, name: "bench", endpoints: []), kernel: kernel, logger: logger)
let (stream, continuation) = AsyncStream<ControlFrame>.makeStream()
let sender = PortalSender(continuation: continuation)
Task { for await _ in stream {} }

let resources = (0..<resourcesPerClient).map(resource)
var authorizations: [FlowAuthorization] = []
let expiry = Date().addingTimeInterval(3600)
for client in 0..<clients {
    let interface = Interface(ipv4: "100.64.\(client / 250).\(client % 250 + 1)", ipv6: "fd00:6761:7465::\(String(client + 1, radix: 16))")
    let clientID = DeviceID()
    for resource in resources {
        authorizations.append(FlowAuthorization(
            flowID: AuthorizationID(), clientID: clientID, clientPublicKey: "", clientInterface: interface, presharedKey: "",
            clientICE: ICECredentials(username: "u", password: "p"), gatewayICE: ICECredentials(username: "u", password: "p"),
            resource: resource, expiresAt: expiry))
    }
}
print("gateway rules benchmark: \(clients) clients × \(resourcesPerClient) resources (\(authorizations.count) flows), \(ProcessInfo.processInfo.activeProcessorCount) CPUs")

var start = ContinuousClock.now
await control.received(ControlFrame(.gatewayInit(GatewayInit(interface: Interface(ipv4: "100.64.0.1", ipv6: "fd00:6761:7465::1"), relays: [],
                                                               authorizations: authorizations))), sender: sender)
let initTime = ContinuousClock.now - start
let entries = kernel.entryCount
print(String(format: "init: %d sessions compiled and wrote %d kernel entries in %.3f s", await control.sessions.count, entries, seconds(initTime)))

// One change every client sees: the first /24 resource's filters.
var changed = resources[1]
for round in 1...3 {
    changed.filters = ["tcp:443", "tcp:9000-9100", "udp:\(6000 + round)"]
    start = ContinuousClock.now
    await control.received(ControlFrame(.resourceUpdated(changed)), sender: sender)
    let elapsed = ContinuousClock.now - start
    print(String(format: "resource_updated (round %d): %d sessions rewrote their entries in %.1f ms", round, clients, seconds(elapsed) * 1000))
}
let readBack = try kernel.readBack().count
print("kernel entries read back: \(readBack) (sessions' count: \(kernel.entryCount))")

// Per-packet run time with the trie full, by verdict, and of the pass-through classifier.
func ip(_ text: String) -> [UInt8] { text.split(separator: ".").map { UInt8($0) ?? 0 } }
func tcpPacket(from source: String, to destination: String, port: UInt16) -> [UInt8] {
    let tcp: [UInt8] = [0x9c, 0x40, UInt8(port >> 8), UInt8(port & 0xFF), 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0]
    let ipHeader: [UInt8] = [0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0] + ip(source) + ip(destination)
    return [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00] + ipHeader + tcp
}
let packets: [(String, [UInt8])] = [
    ("allowed (tcp 443 to a /24)", tcpPacket(from: "100.64.0.1", to: "10.100.1.7", port: 443)),
    ("allowed (tcp 22, merged from the /16)", tcpPacket(from: "100.64.0.1", to: "10.100.1.7", port: 22)),
    ("filtered (tcp 80)", tcpPacket(from: "100.64.0.1", to: "10.100.1.7", port: 80)),
    ("no rule (another network)", tcpPacket(from: "100.64.0.1", to: "192.0.2.1", port: 443)),
    ("unknown source", tcpPacket(from: "100.127.0.1", to: "10.100.1.7", port: 443)),
]
let statsPath = "/proc/sys/kernel/bpf_stats_enabled"
let statsBefore = (try? String(contentsOfFile: statsPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0"
try "1".write(toFile: statsPath, atomically: false, encoding: .utf8)
defer { try? statsBefore.write(toFile: statsPath, atomically: false, encoding: .utf8) }
func measure(_ program: BPFProgram, _ packet: [UInt8]) throws -> (kernel: Double, testRun: UInt32, verdict: UInt32) {
    let before = try program.runStatistics()
    let result = try program.testRun(packet, repetitions: repetitions)
    let after = try program.runStatistics()
    let runs = after.runs - before.runs
    return (runs == 0 ? 0 : Double(after.nanoseconds - before.nanoseconds) / Double(runs), result.nanoseconds, result.returnValue)
}
let enforcing = try program.program()
let passing = try program.object.program(named: "gateway_tc_pass")
print("per packet, kernel BPF statistics (run_time_ns / run_cnt) over \(repetitions) runs each; verdict 0 = pass, 2 = drop:")
for (name, packet) in packets {
    let rules = try measure(enforcing, packet)
    let pass = try measure(passing, packet)
    let label = name.padding(toLength: 40, withPad: " ", startingAt: 0)
    print(String(format: "  %@ gateway_tc %6.1f ns (verdict %u)   pass-through %6.1f ns", label, rules.kernel, rules.verdict, pass.kernel))
}
