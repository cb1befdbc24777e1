import Actors
import Foundation
import TestSupport
import Testing

/// The harness later tests stand on: namespaces, links, routes and processes that exist while a test
/// runs and are gone afterwards, whatever happened.
@Suite(.privileged) struct TestNetworkTests {
    @Test func namespacesExistDuringTheBodyAndAreRemovedAfter() async throws {
        let names = try await TestNetwork.with { network in
            let a = try network.namespace("a")
            let b = try network.namespace("b")
            #expect(TestNetwork.existingTestNamespaces().contains(a.name))
            #expect(TestNetwork.existingTestNamespaces().contains(b.name))
            return [a.name, b.name]
        }
        for name in names {
            #expect(!TestNetwork.existingTestNamespaces().contains(name))
        }
    }

    @Test func everythingIsRemovedWhenTheBodyThrows() async throws {
        struct Boom: Error {}
        var made: [String] = []
        var process: BackgroundProcess?
        await #expect(throws: Boom.self) {
            try await TestNetwork.with { network in
                let a = try network.namespace("a")
                let b = try network.namespace("b")
                _ = try network.connect(a, b)
                process = try network.spawn(in: a, ["sleep", "300"])
                made = [a.name, b.name]
                throw Boom()
            }
        }
        #expect(made.count == 2)
        for name in made {
            #expect(!TestNetwork.existingTestNamespaces().contains(name))
        }
        #expect(process?.isRunning == false, "processes started in the network are stopped")
    }

    @Test func vethPairCarriesIPv4AndIPv6Datagrams() async throws {
        try await TestNetwork.with { network in
            let a = try network.namespace("a")
            let b = try network.namespace("b")
            let link = try network.connect(a, b)
            #expect(link.a.interface == "eth0" && link.b.interface == "eth0")
            for ipv6 in [false, true] {
                let (source, destination) = ipv6 ? (link.a.ipv6, link.b.ipv6) : (link.a.ipv4, link.b.ipv4)
                let server = try b.run { try UDPSocket(bindTo: destination) }
                let client = try a.run { try UDPSocket(bindTo: source) }
                try client.send(Array("hello".utf8), to: destination, port: server.localPort)
                let received = try #require(try server.receive(timeout: .seconds(5)))
                #expect(received.bytes == Array("hello".utf8))
                #expect(received.from.address == source)
                #expect(received.from.port == client.localPort)
            }
        }
    }

    @Test func aRouterNamespaceForwardsBetweenTwoLinks() async throws {
        try await TestNetwork.with { network in
            let client = try network.namespace("client")
            let router = try network.namespace("router")
            let server = try network.namespace("server")
            let left = try network.connect(client, router)
            let right = try network.connect(router, server)
            try router.enableForwarding()
            try network.route(in: client, to: "default", via: left.b.ipv4)
            try network.route(in: client, to: "default", via: left.b.ipv6)
            try network.route(in: server, to: "default", via: right.a.ipv4)
            try network.route(in: server, to: "default", via: right.a.ipv6)
            for (from, to) in [(left.a.ipv4, right.b.ipv4), (left.a.ipv6, right.b.ipv6)] {
                let listening = try server.run { try UDPSocket(bindTo: to) }
                let sending = try client.run { try UDPSocket(bindTo: from) }
                try sending.send([1, 2, 3], to: to, port: listening.localPort)
                let received = try #require(try listening.receive(timeout: .seconds(5)), "routed datagram to \(to)")
                #expect(received.from.address == from)
                // And the reply finds its way back.
                try listening.send([4], to: from, port: sending.localPort)
                #expect(try sending.receive(timeout: .seconds(5))?.bytes == [4])
            }
        }
    }

    @Test func namespacesAreIsolatedFromTheHost() async throws {
        try await TestNetwork.with { network in
            let a = try network.namespace("a")
            let routes = try a.ip("route", "show")
            #expect(routes.standardOutput.isEmpty, "a new namespace has no routes: \(routes.standardOutput)")
            let links = try a.ip("-o", "link", "show")
            #expect(links.standardOutput.split(separator: "\n").count == 1, "only loopback: \(links.standardOutput)")
        }
    }

    @Test func runReturnsTheThreadToItsNamespace() async throws {
        func currentNamespace() throws -> String {
            try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self/ns/net")
        }
        try await TestNetwork.with { network in
            let a = try network.namespace("a")
            let before = try currentNamespace()
            let inside = try a.run { try currentNamespace() }
            #expect(inside != before)
            #expect(try currentNamespace() == before)
            struct Inside: Error {}
            #expect(throws: Inside.self) { try a.run { throw Inside() } }
            #expect(try currentNamespace() == before, "a throwing body also returns the thread")
        }
    }

    @Test func leftoversOfADeadTestProcessAreSwept() async throws {
        // A process that has exited: its PID names a namespace nobody will clean up.
        let finished = try await Command.run(["sh", "-c", "echo $$"])
        let deadPID = try #require(Int32(finished.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)))
        try #require(kill(deadPID, 0) != 0)
        let stale = "\(TestNetwork.namePrefix)\(deadPID)-0-0-stale"
        try await Command.run(["ip", "netns", "add", stale])
        defer { _ = try? Command.runBlocking(["ip", "netns", "del", stale], check: false) }
        let mine = try await TestNetwork.with { network in
            let a = try network.namespace("alive")
            TestNetwork.sweepLeftovers()
            #expect(TestNetwork.existingTestNamespaces().contains(a.name), "a live test's namespace stays")
            return a.name
        }
        #expect(!TestNetwork.existingTestNamespaces().contains(stale))
        #expect(!TestNetwork.existingTestNamespaces().contains(mine))
    }
}
