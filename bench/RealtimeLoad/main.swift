// realtime-load: the realtime API benchmark's peers. Opens one WebSocket per simulated gateway and
// client (PortalConnection, as `gatehouse gateway` uses it) to a portal seeded by `portal-bench
// seed-realtime`, waits until every gateway holds its flows, deletes the one policy that grants them
// all, and reports how long each gateway took to receive all its `reject_access` (p50, p99, max over
// gateways) and the portal's resident memory per connection. bench/realtime.sh runs it.
//
//   realtime-load --url http://127.0.0.1:PORT --plan FILE --admin-token TOKEN --portal-pid PID
import Actors
import ControlProtocol
import Foundation
import Logging
import Synchronization

func argument(_ name: String) -> String {
    guard let index = CommandLine.arguments.firstIndex(of: "--" + name), index + 1 < CommandLine.arguments.count else {
        FileHandle.standardError.write(Data("realtime-load: --\(name) is required\n".utf8))
        exit(2)
    }
    return CommandLine.arguments[index + 1]
}

func residentKiB(_ pid: String) -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

/// CPU time (user + system) a process has used, in milliseconds.
func cpuMilliseconds(_ pid: String) -> Double {
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    // Fields after the command name (which ends with the last ')'): utime and stime are the 12th and 13th.
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return .nan }
    return (user + system) * 1000 / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

/// What every simulated device saw, by index: behind a lock, so that a device notes a frame without
/// waiting its turn behind the other 1,999 (real gateways share nothing; an actor shared by every
/// simulated device made each one's tenth `reject_access` wait for nine hops through it).
final class Tally: Sendable {
    struct State {
        var flows: [Int: Int] = [:]
        var rejected: [Int: Int] = [:]
        var finished: [Int: ContinuousClock.Instant] = [:]
        var clientsJoined = 0
        var resourceDeleted: [Int: ContinuousClock.Instant] = [:]
        var first: ContinuousClock.Instant?
    }

    private let state = Mutex(State())

    var flows: [Int: Int] { state.withLock { $0.flows } }
    var finished: [Int: ContinuousClock.Instant] { state.withLock { $0.finished } }
    var clientsJoined: Int { state.withLock { $0.clientsJoined } }
    var resourceDeleted: [Int: ContinuousClock.Instant] { state.withLock { $0.resourceDeleted } }
    var first: ContinuousClock.Instant? { state.withLock { $0.first } }

    func initialised(_ gateway: Int, flows count: Int) { state.withLock { $0.flows[gateway] = count } }
    func clientJoined() { state.withLock { $0.clientsJoined += 1 } }
    /// `at`: when the device's connection handed the frame over.
    func reject(_ gateway: Int, at: ContinuousClock.Instant) {
        state.withLock { state in
            if state.first.map({ at < $0 }) ?? true { state.first = at }
            state.rejected[gateway, default: 0] += 1
            if state.rejected[gateway] == state.flows[gateway] { state.finished[gateway] = max(state.finished[gateway] ?? at, at) }
        }
    }
    func deleted(_ client: Int, at: ContinuousClock.Instant) { state.withLock { $0.resourceDeleted[client] = at } }
}

struct SimulatedGateway: PortalSession {
    let index: Int
    let key: String
    let tally: Tally

    func join() async -> ControlMessage {
        .join(DeviceJoin(externalID: "bench-gateway-\(index)", name: "gateway-\(index)", publicKey: key, endpoints: ["127.0.0.1:51820"]))
    }

    func received(_ frame: ControlFrame, sender: PortalSender) async {
        switch frame.message {
        case let .gatewayInit(initial): tally.initialised(index, flows: initial.authorizations.count)
        case .rejectAccess: tally.reject(index, at: .now)
        case let .authorizeFlow(flow): sender.send(.flowAuthorized(FlowAuthorized(flowID: flow.flowID)), ref: frame.ref)
        default: break
        }
    }

    func connectionChanged(joined: Bool) async {}
}

struct SimulatedClient: PortalSession {
    let index: Int
    let key: String
    let tally: Tally

    func join() async -> ControlMessage {
        .join(DeviceJoin(externalID: "bench-client-\(index)", name: "client-\(index)", publicKey: key))
    }

    func received(_ frame: ControlFrame, sender: PortalSender) async {
        switch frame.message {
        case .clientInit: tally.clientJoined()
        case .resourceDeleted: tally.deleted(index, at: .now)
        default: break
        }
    }

    func connectionChanged(joined: Bool) async {}
}

// One socket per simulated device: the open-file limit raised to the hard limit.
setvbuf(stdout, nil, _IOLBF, 0)  // lines appear as they are printed, also into a file
var limit = rlimit()
getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
limit.rlim_cur = limit.rlim_max
if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 { print("realtime-load: could not raise the open-file limit") }
var logger = Logger(label: "realtime-load")
logger.logLevel = .error
let url = argument("url")
let pid = argument("portal-pid")
let plan = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: argument("plan")))) as? [String: Any] ?? [:]
let gatewayKeys = plan["gateway_keys"] as? [String] ?? []
let clientKeys = plan["client_keys"] as? [String] ?? []
let clientTokens = plan["client_tokens"] as? [String] ?? []
let policy = plan["policy_id"] as? String ?? ""
let gatewayEndpoint = try PortalEndpoint(url: url, token: Secret(plan["gateway_token"] as? String ?? ""), caFile: nil, insecure: false)
let admin = try PortalEndpoint(url: url, token: Secret(argument("admin-token")), caFile: nil, insecure: false)
let tally = Tally()
let before = residentKiB(pid)
let connected = ContinuousClock.now
let connections = Task {
    await withTaskGroup(of: Void.self) { group in
        for (index, key) in gatewayKeys.enumerated() {
            group.addTask {
                await PortalConnection(endpoint: gatewayEndpoint, peer: .gateway, logger: logger)
                    .run(SimulatedGateway(index: index, key: key, tally: tally))
            }
        }
        for (index, key) in clientKeys.enumerated() {
            let endpoint = try? PortalEndpoint(url: url, token: Secret(clientTokens[index]), caFile: nil, insecure: false)
            guard let endpoint else { continue }
            group.addTask {
                await PortalConnection(endpoint: endpoint, peer: .client, logger: logger).run(SimulatedClient(index: index, key: key, tally: tally))
            }
        }
    }
}
// Every gateway's init (with its flows) and every client's init.
let deadline = ContinuousClock.now + .seconds(300)
while ContinuousClock.now < deadline {
    let (gateways, clients) = (tally.flows.count, tally.clientsJoined)
    if gateways == gatewayKeys.count && clients == clientKeys.count { break }
    try await Task.sleep(for: .milliseconds(100))
}
let joinedIn = ContinuousClock.now - connected
try await Task.sleep(for: .seconds(2))  // settle: the portal's allocations after the joins
let after = residentKiB(pid)
let flows = tally.flows.values.reduce(0, +)
let connectionsCount = gatewayKeys.count + clientKeys.count
print("joined: \(tally.flows.count) gateways holding \(flows) flows and \(tally.clientsJoined) clients in \(joinedIn)")
print(String(format: "portal resident memory: %.1f MiB before the connections, %.1f MiB with %d; %.1f KiB per connection (goal <= 100 KiB)",
             Double(before) / 1024, Double(after) / 1024, connectionsCount, Double(after - before) / Double(connectionsCount)))

// Delete the policy; time until each gateway has every reject_access it is owed.
let portalCPUBefore = cpuMilliseconds(pid)
let ownCPUBefore = cpuMilliseconds("self")
let start = ContinuousClock.now
let answer = try await admin.request("DELETE", path: "/api/v1/policies/\(policy)")
let answered = ContinuousClock.now - start
let expected = tally.flows.filter { $0.value > 0 }.count
let waitUntil = ContinuousClock.now + .seconds(60)
while ContinuousClock.now < waitUntil, tally.finished.count < expected || tally.resourceDeleted.count < clientKeys.count {
    try await Task.sleep(for: .milliseconds(5))
}
let portalCPU = cpuMilliseconds(pid) - portalCPUBefore
let ownCPU = cpuMilliseconds("self") - ownCPUBefore
func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}
let times = tally.finished.values.map { milliseconds($0 - start) }
let firstReject = tally.first.map { milliseconds($0 - start) } ?? .nan
let clientTimes = tally.resourceDeleted.values.map { milliseconds($0 - start) }
print("DELETE /api/v1/policies/...: HTTP \(answer.status) in \(String(format: "%.1f", milliseconds(answered))) ms")
print(String(format: "first reject_access received after %.1f ms (the change committed and evaluated)", firstReject))
print(String(format: "reject_access complete at %d of %d gateways: p50 %.1f ms, p99 %.1f ms, max %.1f ms (goal p99 <= 100 ms)",
             times.count, expected, percentile(times, 0.5), percentile(times, 0.99), times.max() ?? .nan))
print(String(format: "resource_deleted at %d of %d clients: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
             clientTimes.count, clientKeys.count, percentile(clientTimes, 0.5), percentile(clientTimes, 0.99), clientTimes.max() ?? .nan))
print(String(format: "CPU time from the request until every device was told: portal %.0f ms, this load generator %.0f ms (%d cores)",
             portalCPU, ownCPU, ProcessInfo.processInfo.activeProcessorCount))
connections.cancel()
exit(times.count == expected ? 0 : 1)
