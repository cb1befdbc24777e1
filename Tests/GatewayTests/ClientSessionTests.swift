import Actors
import Addresses
import BPF
import ControlProtocol
import Foundation
import Gateway
import Identifiers
import Logging
import TestSupport
import Testing

/// A client session against the kernel's trie, with a clock the test steps: flows expire in the
/// gateway itself, a changed resource rewrites only its entry, a resource that does not parse
/// authorises nothing, and a closed session leaves no entry behind.
@Suite(.privileged) struct ClientSessionTests {
    static let interface = Interface(ipv4: "100.64.0.7", ipv6: "fd00:6761:7465::7")

    static func flow(_ resource: GatewayResource, expiresAt: Date) -> FlowAuthorization {
        FlowAuthorization(flowID: AuthorizationID(), clientID: DeviceID(), clientPublicKey: "", clientInterface: interface, presharedKey: "",
                          clientICE: ICECredentials(username: "u", password: "p"), gatewayICE: ICECredentials(username: "u", password: "p"),
                          resource: resource, expiresAt: expiresAt)
    }

    static func lines(_ kernel: KernelRules) throws -> [String] {
        try kernel.readBack().map(GatewayService.describe).sorted()
    }

    @Test func flowsExpireInTheGatewayAndOnlyChangedEntriesAreRewritten() async throws {
        let kernel = KernelRules(program: try GatewayTCProgram())
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let clock = ManualWallClock(start)
        let session = ClientSession(clientID: DeviceID(), interface: Self.interface, kernel: kernel, clock: clock, logger: Logger(label: "test"))
        var web = GatewayResource(id: ResourceID(), name: "web", type: .cidr, address: "10.1.0.0/24", filters: ["tcp:443"])
        let db = GatewayResource(id: ResourceID(), name: "db", type: .ip, address: "10.1.0.5", filters: ["tcp:5432"])
        let broken = GatewayResource(id: ResourceID(), name: "broken", type: .ip, address: "10.9.0.1", filters: ["tcp:99999"])
        await session.replace(with: [Self.flow(web, expiresAt: start + 3600), Self.flow(db, expiresAt: start + 60), Self.flow(broken, expiresAt: start + 3600)])
        #expect(try Self.lines(kernel) == [
            "100.64.0.7 -> 0.0.0.0/0: none", "100.64.0.7 -> 10.1.0.0/24: tcp:443", "100.64.0.7 -> 10.1.0.5/32: tcp:443,5432",
            "fd00:6761:7465::7 -> ::/0: none",
        ], "the db entry carries the covering /24's filter; the resource whose filter does not parse authorises nothing")

        // A filter change rewrites the entries it touches, and only those.
        web.filters = ["tcp:8443"]
        let rewritten = try kernel.replace(await session.rules, with: await session.rules)
        #expect(rewritten.written == 0 && rewritten.deleted == 0, "nothing changed, nothing written")
        await session.update(web)
        #expect(try Self.lines(kernel).contains("100.64.0.7 -> 10.1.0.5/32: tcp:5432,8443"))

        // The db flow expires at its time, with nobody telling the gateway.
        try await Wait.until("the session waits for the first expiry") { clock.sleeperCount == 1 }
        clock.advance(by: 61)
        try await Wait.until("the db entry is gone") { try !Self.lines(kernel).contains { $0.contains("10.1.0.5/32") } }
        #expect(try Self.lines(kernel).contains("100.64.0.7 -> 10.1.0.0/24: tcp:8443"))
        #expect(await session.flows.count == 2)

        await session.close()
        #expect(try kernel.readBack().isEmpty, "a closed session leaves nothing in the kernel")
        #expect(kernel.entryCount == 0)
    }
}
