package import Addresses
import Actors
package import DNS
import Foundation

/// The gateway's own stub resolver for DNS resources (gateway spec, "DNS resources"): A and AAAA
/// queries over UDP to the servers of `/etc/resolv.conf` (or those given with `--dns-server`), each
/// tried in turn, twice, with a 1.5-second wait; A and AAAA asked at once (a flow waits for its name
/// before the gateway confirms it, so a dead server costs 3 s, not the portal's 15 s confirmation
/// timeout). The blocking socket work runs off the cooperative pool.
package struct NameResolver: Sendable {
    /// The IPv4 and IPv6 addresses of a name, and how long they may be kept.
    package struct Resolved: Equatable, Sendable {
        package var ipv4: [SocketAddress.IP]
        package var ipv6: [SocketAddress.IP]
        package var ttl: UInt32

        package init(ipv4: [SocketAddress.IP], ipv6: [SocketAddress.IP], ttl: UInt32) {
            self.ipv4 = ipv4
            self.ipv6 = ipv6
            self.ttl = ttl
        }
    }

    package enum Failure: Error, Equatable, CustomStringConvertible {
        case noServers
        case noAnswer(String)
        case refused(String, DNSError)

        package var description: String {
            switch self {
            case .noServers: "no DNS server is configured (none in /etc/resolv.conf and no --dns-server)"
            case let .noAnswer(name): "no DNS server answered for \(name)"
            case let .refused(name, error): "resolving \(name): \(error)"
            }
        }
    }

    package let servers: [SocketAddress]
    package var timeout: Duration = .milliseconds(1500)

    package init(servers: [SocketAddress]) {
        self.servers = servers
    }

    /// The name servers of a resolv.conf (`nameserver ADDRESS` lines; port 53).
    package static func servers(inResolvConf text: String) -> [SocketAddress] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver" else { return nil }
            // A link-local IPv6 server with a zone (fe80::1%eth0) is not taken.
            return try? SocketAddress(String(fields[1]), port: 53)
        }
    }

    /// The system's name servers.
    package static func system(resolvConf path: String = "/etc/resolv.conf") -> NameResolver {
        NameResolver(servers: servers(inResolvConf: (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""))
    }

    /// The A and AAAA addresses of `name`. One family failing (many servers refuse or fail AAAA
    /// queries for names they only hold an A record for) leaves that family empty; both failing throws.
    package func resolve(_ name: String) async throws(Failure) -> Resolved {
        guard !servers.isEmpty else { throw .noServers }
        async let a = answer(name, .a)
        async let aaaa = answer(name, .aaaa)
        let (v4, v6) = try Self.either(await a, await aaaa)
        let ttls = [v4, v6].filter { !$0.addresses.isEmpty }.map(\.ttl)
        return Resolved(ipv4: v4.addresses, ipv6: v6.addresses, ttl: ttls.min() ?? 0)
    }

    /// Both answers, a failed one as no addresses; the first failure when both failed.
    package static func either(_ a: Result<DNSAddresses, Failure>, _ aaaa: Result<DNSAddresses, Failure>) throws(Failure)
        -> (DNSAddresses, DNSAddresses) {
        switch (a, aaaa) {
        case (.failure(let error), .failure): throw error
        case (.success(let v4), .success(let v6)): return (v4, v6)
        case (.success(let v4), .failure): return (v4, DNSAddresses(addresses: [], ttl: 0))
        case (.failure, .success(let v6)): return (DNSAddresses(addresses: [], ttl: 0), v6)
        }
    }

    private func answer(_ name: String, _ type: DNSRecordType) async -> Result<DNSAddresses, Failure> {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Result { () throws(Failure) -> DNSAddresses in try ask(name, type) })
            }
        }
    }

    private func ask(_ name: String, _ type: DNSRecordType) throws(Failure) -> DNSAddresses {
        var lastError: DNSError?
        for _ in 0..<2 {
            for server in servers {
                let id = UInt16.random(in: 0...UInt16.max)
                let query: [UInt8]
                do {
                    query = try DNSMessage.query(id: id, name: name, type: type)
                } catch {
                    throw .refused(name, error)
                }
                guard let socket = try? UDPSocket(bindTo: SocketAddress(ip: server.isIPv6 ? .v6(0, 0) : .v4(0), port: 0)),
                      (try? socket.send(query, to: server)) != nil else { continue }
                let deadline = ContinuousClock.now + timeout
                while deadline > ContinuousClock.now {
                    guard let (bytes, source) = (try? socket.receive(timeout: deadline - ContinuousClock.now)) ?? nil else { break }
                    guard source == server else { continue }
                    do {
                        return try DNSMessage.addresses(in: bytes, id: id, name: name, type: type)
                    } catch .malformed {
                        continue  // not the answer to this query: keep waiting for it
                    } catch {
                        lastError = error
                        break
                    }
                }
            }
        }
        if let lastError { throw .refused(name, lastError) }
        throw .noAnswer(name)
    }
}
