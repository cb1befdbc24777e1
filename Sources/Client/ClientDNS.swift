package import Actors
package import Addresses
import DNS
package import Foundation
package import Identifiers
package import Logging
import Glibc
import Policy
import Synchronization

/// The client's DNS stub (client spec, "Headless client"): it listens on two addresses of the tunnel
/// device that the resolver file names. A name that matches a DNS resource gets proxy addresses from
/// the spec's ranges (one per family, the same for as long as the client runs), and the tunnel learns
/// which name each stands for before the answer goes; every other question goes to the upstream
/// resolvers unchanged, and their answer back unchanged.
package final class ClientDNS: @unchecked Sendable {
    /// Where the stub listens: the first /24 of the IPv4 proxy range and the first addresses of the
    /// IPv6 one are the client's own, never handed out as proxies.
    package static let stubAddresses = ["100.96.0.53", "fd00:6761:7465:8000::53"]
    /// How long askers may keep a proxy answer.
    package static let ttl: UInt32 = 60
    /// How long an upstream resolver has to answer, per try.
    static let upstreamTimeout: Duration = .seconds(2)

    package struct Proxies: Sendable, Equatable {
        package var ipv4: SocketAddress.IP
        package var ipv6: SocketAddress.IP
        package var all: [SocketAddress.IP] { [ipv4, ipv6] }
    }

    private struct State {
        var patterns: [DNSPattern: ResourceID] = [:]
        var byName: [String: Proxies] = [:]
        var nextIPv4: UInt32 = 0x6460_0100  // 100.96.1.0
        var nextIPv6: UInt64 = 0x1_0000  // fd00:6761:7465:8000::1:0
        var answered = 0
        var forwarded = 0
        var failed = 0
    }

    private let sockets: [UDPSocket]
    private let loop: EventLoop
    private let upstreams: [SocketAddress]
    private let tunnel: ClientTunnel
    private let logger: Logger
    private let state = Mutex(State())
    private let stopped = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let forwarders = DispatchQueue(label: "gatehouse-dns-forward", attributes: .concurrent)
    private let tcpListeners = Mutex<[Int32]>([])

    /// `sockets`: bound to the stub addresses (port 53), after those were put on the tunnel device.
    package init(sockets: [UDPSocket], upstreams: [SocketAddress], tunnel: ClientTunnel, logger: Logger) throws(SocketError) {
        self.sockets = sockets
        self.upstreams = upstreams
        self.tunnel = tunnel
        self.logger = logger
        loop = try EventLoop()
        for socket in sockets { try loop.add(socket.fileDescriptor) }
    }

    /// The DNS resources' patterns (a name goes to the most specific one that matches it).
    package func setResources(_ resources: [(pattern: String, resource: ResourceID)]) {
        var patterns: [DNSPattern: ResourceID] = [:]
        for (text, resource) in resources {
            if let pattern = try? DNSPattern(text) { patterns[pattern] = resource }
        }
        let changed = state.withLock { state -> [(SocketAddress.IP, ClientTunnel.Target?)] in
            state.patterns = patterns
            // Names handed out before now stand for whatever resource matches them now (or nothing).
            var changes: [(SocketAddress.IP, ClientTunnel.Target?)] = []
            for (name, proxies) in state.byName {
                let target = Self.target(for: name, patterns)
                for address in proxies.all { changes.append((address, target)) }
            }
            return changes
        }
        for (address, target) in changed { tunnel.setProxy(address, target) }
    }

    /// The proxy addresses handed out for `name`, if any.
    package func proxies(for name: String) -> Proxies? {
        state.withLock { $0.byName[name] }
    }

    package var counts: (answered: Int, forwarded: Int, failed: Int) {
        state.withLock { ($0.answered, $0.forwarded, $0.failed) }
    }

    private static func target(for name: String, _ patterns: [DNSPattern: ResourceID]) -> ClientTunnel.Target? {
        guard let pattern = DNSPattern.mostSpecific(Array(patterns.keys), matching: name), let resource = patterns[pattern] else { return nil }
        return ClientTunnel.Target(resource: resource, name: name)
    }

    /// Answers questions on the calling thread until `stopAndWait()`.
    package func run() {
        while !stopped.load(ordering: .relaxed) {
            let ready = (try? loop.wait(timeout: .seconds(1))) ?? []
            for socket in sockets where ready.contains(socket.fileDescriptor) {
                while let (query, asker) = (try? socket.receive(timeout: .zero)) ?? nil {
                    handle(query, from: asker, on: socket)
                }
            }
        }
        finished.signal()
    }

    package func stopAndWait() {
        stopped.store(true, ordering: .relaxed)
        for fd in tcpListeners.withLock({ $0 }) {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
        loop.wake()
        finished.wait()
    }

    /// What the stub does with a query: answer it itself (a DNS resource's name, or a query it cannot
    /// read), or pass it upstream.
    private enum Decision {
        case answer([UInt8])
        case forward(DNSQuestion)
        case drop
    }

    private func decide(_ query: [UInt8]) -> Decision {
        guard let question = DNSQuestion(query) else {
            return DNSMessage.formatError(to: query).map(Decision.answer) ?? .drop
        }
        let (proxies, target, isNew) = state.withLock { state -> (Proxies?, ClientTunnel.Target?, Bool) in
            guard let target = Self.target(for: question.name, state.patterns) else { return (nil, nil, false) }
            if let known = state.byName[question.name] {
                state.answered += 1
                return (known, target, false)
            }
            let made = Proxies(ipv4: .v4(state.nextIPv4), ipv6: .v6(0xFD00_6761_7465_8000, state.nextIPv6))
            state.nextIPv4 += 1
            state.nextIPv6 += 1
            state.byName[question.name] = made
            state.answered += 1
            return (made, target, true)
        }
        guard let proxies, let target else { return .forward(question) }
        if isNew {
            for address in proxies.all { tunnel.setProxy(address, target) }
            logger.info("DNS resource name", metadata: [
                "name": "\(question.name)", "resource": "\(target.resource)",
                "proxies": "\(proxies.all.map { SocketAddress(ip: $0, port: 0).address }.joined(separator: ","))",
            ])
        }
        return .answer(DNSMessage.answer(to: query, question: question, addresses: proxies.all, ttl: Self.ttl))
    }

    private func handle(_ query: [UInt8], from asker: SocketAddress, on socket: UDPSocket) {
        switch decide(query) {
        case let .answer(bytes): _ = try? socket.send(bytes, to: asker)
        case let .forward(question): forward(query, question: question, from: asker, on: socket)
        case .drop: break
        }
    }

    // MARK: DNS over TCP (RFC 7766): what a resolver asks again after a truncated answer

    /// Listens on the stub's addresses over TCP too; each connection's queries (two-byte length, then
    /// the message) are answered in turn, a resource's name here, any other over TCP upstream.
    package func listenTCP() {
        for text in Self.stubAddresses {
            guard let address = try? SocketAddress(text, port: 53) else { continue }
            let fd = socket(address.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            if address.isIPv6 { setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &one, socklen_t(MemoryLayout<Int32>.size)) }
            guard address.withSockaddr({ bind(fd, $0, $1) }) == 0, listen(fd, 64) == 0 else {
                logger.warning("the DNS stub does not listen over TCP on \(text)", metadata: ["error": "\(String(cString: strerror(errno)))"])
                close(fd)
                continue
            }
            tcpListeners.withLock { $0.append(fd) }
            let thread = Thread { [self] in
                while !stopped.load(ordering: .relaxed) {
                    let connection = accept(fd, nil, nil)
                    if connection < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    forwarders.async { [self] in serveTCP(connection) }
                }
            }
            thread.name = "gatehouse-dns-tcp"
            thread.start()
        }
    }

    private func serveTCP(_ connection: Int32) {
        defer { close(connection) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        while let query = Self.readMessage(connection) {
            let answer: [UInt8]?
            switch decide(query) {
            case let .answer(bytes): answer = bytes
            case .forward: answer = forwardTCP(query)
            case .drop: answer = nil
            }
            guard let answer, Self.writeMessage(answer, to: connection) else { return }
        }
    }

    /// Over TCP to the upstream resolvers in turn: the first answer, as it came.
    private func forwardTCP(_ query: [UInt8]) -> [UInt8]? {
        for upstream in upstreams {
            let fd = socket(upstream.isIPv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            guard upstream.withSockaddr({ connect(fd, $0, $1) }) == 0, Self.writeMessage(query, to: fd),
                  let answer = Self.readMessage(fd), answer.count >= 2, answer[0] == query[0], answer[1] == query[1] else { continue }
            state.withLock { $0.forwarded += 1 }
            return answer
        }
        state.withLock { $0.failed += 1 }
        return DNSQuestion(query).map { DNSMessage.answer(to: query, question: $0, addresses: [], ttl: 0, code: .serverFailure) }
    }

    /// One length-prefixed message (nil at the end of the stream, on a timeout or a short read).
    static func readMessage(_ fd: Int32) -> [UInt8]? {
        guard let header = readExactly(fd, 2) else { return nil }
        let length = Int(header[0]) << 8 | Int(header[1])
        guard length >= 12 else { return nil }
        return readExactly(fd, length)
    }

    static func readExactly(_ fd: Int32, _ count: Int) -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes[done...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard got > 0 else { return nil }
            done += got
        }
        return bytes
    }

    static func writeMessage(_ message: [UInt8], to fd: Int32) -> Bool {
        guard message.count <= 65_535 else { return false }
        let framed = [UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
        var sent = 0
        while sent < framed.count {
            let count = framed[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return false }
            sent += count
        }
        return true
    }

    /// Another name: asked of the upstream resolvers in turn, their answer passed back as it came.
    private func forward(_ query: [UInt8], question: DNSQuestion, from asker: SocketAddress, on socket: UDPSocket) {
        let upstreams = self.upstreams
        forwarders.async { [self] in
            for upstream in upstreams {
                guard let relay = try? UDPSocket(bindTo: SocketAddress(upstream.isIPv6 ? "::" : "0.0.0.0", port: 0)) else { continue }
                guard (try? relay.send(query, to: upstream)) == true else { continue }
                let deadline = ContinuousClock.now + Self.upstreamTimeout
                while ContinuousClock.now < deadline, let (answer, from) = (try? relay.receive(timeout: deadline - ContinuousClock.now)) ?? nil {
                    // Only the upstream's answer to this question (its ID) goes back.
                    guard from == upstream, answer.count >= 12, answer[0] == query[0], answer[1] == query[1] else { continue }
                    _ = try? socket.send(answer, to: asker)
                    self.state.withLock { $0.forwarded += 1 }
                    return
                }
            }
            self.state.withLock { $0.failed += 1 }
            _ = try? socket.send(DNSMessage.answer(to: query, question: question, addresses: [], ttl: 0, code: .serverFailure), to: asker)
        }
    }
}

/// The resolver file the client takes over (`/etc/resolv.conf` or `--resolv-conf`): written in place
/// (a bind-mounted file stays the same file) to name the stub first, its `search` and `options` lines
/// kept, and restored on exit. A copy of the original waits in the state directory meanwhile, so a
/// client that was killed puts it back at its next start.
package final class ResolverFile: Sendable {
    package let path: String
    private let backup: String
    private let original: String
    /// The nameservers the original named: where other questions go.
    package let upstreams: [SocketAddress]

    package init(path: String, stateDirectory: String, logger: Logger) throws(ClientStartError) {
        self.path = path
        backup = stateDirectory + "/resolv.conf.original"
        if let left = try? String(contentsOfFile: backup, encoding: .utf8) {
            // A client that did not exit cleanly left its version in place: the original comes back first.
            logger.warning("restoring the resolver file a previous run left changed", metadata: ["path": "\(path)"])
            guard Self.write(left, to: path) else { throw ClientStartError("\(path): cannot restore it from \(backup)") }
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ClientStartError("\(path): cannot read the resolver file") }
        original = text
        var servers: [SocketAddress] = []
        var kept: [String] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let keyword = fields.first else { continue }
            if keyword == "nameserver", fields.count >= 2, let server = try? SocketAddress(String(fields[1]), port: 53),
               !ClientDNS.stubAddresses.contains(server.address) {
                servers.append(server)
            } else if keyword == "search" || keyword == "domain" || keyword == "options" {
                kept.append(String(line))
            }
        }
        upstreams = servers
        guard Self.write(text, to: backup, mode: 0o600) else { throw ClientStartError("\(backup): cannot keep a copy of the resolver file") }
        let replaced = (["# Written by gatehouse client (restored when it exits): names of DNS resources resolve to its proxies."]
            + ClientDNS.stubAddresses.map { "nameserver \($0)" } + kept).joined(separator: "\n") + "\n"
        guard Self.write(replaced, to: path) else {
            unlink(backup)
            throw ClientStartError("\(path): cannot write the resolver file (run as root, or give --resolv-conf)")
        }
    }

    /// Puts the original back (in place) and forgets the copy.
    package func restore() {
        if Self.write(original, to: path) { unlink(backup) }
    }

    /// Writes `text` into `path` in place (truncating the same file, never a new one by rename).
    private static func write(_ text: String, to path: String, mode: mode_t = 0o644) -> Bool {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) } == bytes.count
    }
}
