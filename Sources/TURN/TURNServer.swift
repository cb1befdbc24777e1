package import Addresses
package import STUN

/// The TURN server (RFC 8489 STUN, RFC 8656 TURN over UDP) as a sans-IO core: datagrams, their
/// addresses and `now` go in; commands for the shell and the next deadline come out. It owns every
/// allocation, nonce and quota, and never touches a socket or a clock.
package struct TURNServer<Codec: TURNCodec, Random: RandomNumberGenerator & Sendable>: Sendable {
    package struct Configuration: Sendable {
        package var realm = "gatehouse"
        /// TURN REST API secrets, current first; credentials derived from any of them are accepted.
        package var secrets: [String] = []
        /// The addresses put in XOR-RELAYED-ADDRESS, one per family the relay serves.
        package var relayIPv4: SocketAddress.IP?
        package var relayIPv6: SocketAddress.IP?
        package var portRange: ClosedRange<UInt16> = 49152...65535
        package var allocationsPerUsername = 32
        package var peerPolicy = PeerPolicy()
        package var software = "gatehouse"
        package var nonceLimits = NonceTable.Limits()
        package var unauthorizedBurst: Double = 10
        package var unauthorizedPerSecond: Double = 5
        package var timers = Allocation.Timers.rfc8656
        /// Whether the server runs each allocation's session itself (the default, and what its tests
        /// drive) or hands sessions and their work out through `takeDispatched()`, for a shell that
        /// runs each session elsewhere (the relay: an actor per allocation). Handed out, a session is
        /// the only judge of its lifetime: the server keeps its index entry until `sessionFreed`.
        package var hostsSessions = true

        package init() {}
    }

    /// A client's 5-tuple on the relay (the protocol is always UDP here).
    package struct FiveTuple: Hashable, Sendable {
        package var client: SocketAddress
        package var listener: SocketAddress

        package init(client: SocketAddress, listener: SocketAddress) {
            self.client = client
            self.listener = listener
        }
    }

    /// Request counts by method and result code, for metrics.
    package struct RequestKey: Hashable, Sendable {
        package var method: String
        package var code: Int
    }

    /// What the server hands out when it does not host sessions (`Configuration.hostsSessions` false).
    package enum Dispatch: Sendable {
        /// A new allocation: run this session (its relayed sockets were asked for already).
        case created(FiveTuple, AllocationSession<Codec>)
        /// Work for the session of this 5-tuple, in the order it arrived.
        case work(FiveTuple, SessionWork)
    }

    /// Work for one allocation's session.
    package enum SessionWork: Sendable {
        /// An authenticated Refresh, CreatePermission or ChannelBind of the allocation's username, with
        /// the peers the relay-wide policy permits among those it names.
        case request(TURNRequest, TURNCredentials, permittedPeers: Set<SocketAddress>)
        case send(TURNRequest)
        /// A ChannelData datagram the data path had no route for.
        case channelData([UInt8])
        case peerDatagram([UInt8], from: SocketAddress)
    }

    /// The allocations, each a session of its own (the state machine of `AllocationSession`).
    private typealias Entry = AllocationSession<Codec>

    package let configuration: Configuration
    private let codec: Codec
    private var random: Random
    private var entries: [FiveTuple: Entry] = [:]
    private var byRelayedPort: [UInt16: FiveTuple] = [:]
    private var perUsername: [String: Int] = [:]
    private var nonces: NonceTable
    private var unauthorized: RateLimiter
    private var ports: PortAllocator
    private var nextHousekeeping: Duration?
    package private(set) var requests: [RequestKey: Int] = [:]
    private var dispatched: [Dispatch] = []

    package init(configuration: Configuration, codec: Codec, random: Random) {
        self.configuration = configuration
        self.codec = codec
        self.random = random
        nonces = NonceTable(limits: configuration.nonceLimits)
        unauthorized = RateLimiter(burst: configuration.unauthorizedBurst, perSecond: configuration.unauthorizedPerSecond)
        ports = PortAllocator(range: configuration.portRange)
    }

    // MARK: State for the shell and for tests

    package var allocationCount: Int { entries.count }

    /// The sessions and work handed out since the last call (only when not hosting sessions).
    package mutating func takeDispatched() -> [Dispatch] {
        defer { dispatched.removeAll(keepingCapacity: true) }
        return dispatched
    }

    /// A session run elsewhere freed its allocation (Refresh(0) or expiry; it emitted the data-path
    /// commands itself): release its port, quota and index entry.
    package mutating func sessionFreed(_ tuple: FiveTuple) {
        release(tuple)
    }
    package var nonceCount: Int { nonces.count }
    package var rateLimitedSources: Int { unauthorized.trackedSources }

    package func allocation(for client: SocketAddress, listener: SocketAddress) -> Allocation? {
        entries[FiveTuple(client: client, listener: listener)]?.allocation
    }

    package var allocations: [Allocation] { entries.values.map(\.allocation) }

    /// Every route the data paths should hold now (sessions hosted here only).
    package func activeRoutes(now: TURNTime) -> [ChannelRoute] {
        entries.values.flatMap { $0.allocation.activeRoutes(now: now) }
    }

    private var answerContext: TURNAnswerContext { TURNAnswerContext(realm: configuration.realm, software: configuration.software) }

    /// When `handleTimeout` should next run.
    package var nextDeadline: Duration? {
        var deadline = nextHousekeeping
        for entry in entries.values where configuration.hostsSessions {
            let candidate = entry.nextDeadline
            deadline = deadline.map { min($0, candidate) } ?? candidate
        }
        return deadline
    }

    // MARK: Input

    /// A datagram from a client to one of the relay's listeners.
    package mutating func handleClientDatagram(
        _ bytes: UnsafeRawBufferPointer, from client: SocketAddress, to listener: SocketAddress, now: TURNTime,
        into commands: inout [TURNCommand]
    ) {
        guard client.port != 0, let first = bytes.first else { return }
        switch first {
        case 0x00...0x03:
            handleSTUN(bytes, tuple: FiveTuple(client: client, listener: listener), now: now, into: &commands)
        case 0x40...0x7F:  // channel numbers 0x4000-0x7FFF (see Allocation.channelNumbers)
            handleChannelData(bytes, tuple: FiveTuple(client: client, listener: listener), now: now, into: &commands)
        default:
            return  // neither STUN nor ChannelData (RFC 8656 section 12.4, RFC 7983)
        }
    }

    /// A datagram from a peer to a relayed address.
    package mutating func handlePeerDatagram(
        _ bytes: UnsafeRawBufferPointer, from peer: SocketAddress, to relayed: SocketAddress, now: TURNTime,
        into commands: inout [TURNCommand]
    ) {
        guard peer.port != 0, let tuple = byRelayedPort[relayed.port], let entry = entries[tuple] else { return }
        guard configuration.hostsSessions else {
            dispatched.append(.work(tuple, .peerDatagram(Array(bytes), from: peer)))
            return
        }
        entry.handlePeerDatagram(bytes, from: peer, now: now, transactionID: { newTransactionID() }, into: &commands)
    }

    /// Expires allocations, permissions, channels and nonces as of `now`.
    package mutating func handleTimeout(now: TURNTime, into commands: inout [TURNCommand]) {
        for (tuple, var entry) in entries where configuration.hostsSessions {
            switch entry.handleTimeout(now: now, into: &commands) {
            case .freed: release(tuple)
            case .active: entries[tuple] = entry
            }
        }
        if nextHousekeeping.map({ $0 <= now.monotonic }) ?? true {
            nonces.removeExpired(now: now)
            nextHousekeeping = now.monotonic + .seconds(60)
        }
    }

    // MARK: ChannelData (RFC 8656 section 12)

    private mutating func handleChannelData(_ bytes: UnsafeRawBufferPointer, tuple: FiveTuple, now: TURNTime, into commands: inout [TURNCommand]) {
        guard let frame = ChannelData(bytes), let entry = entries[tuple] else { return }
        guard configuration.hostsSessions else {
            dispatched.append(.work(tuple, .channelData(Array(bytes))))
            return
        }
        entry.handleChannelData(frame, now: now, into: &commands)
    }

    // MARK: STUN

    private mutating func handleSTUN(_ bytes: UnsafeRawBufferPointer, tuple: FiveTuple, now: TURNTime, into commands: inout [TURNCommand]) {
        let request: TURNRequest
        switch codec.decode(bytes) {
        case let .success(decoded):
            request = decoded
        case let .failure(failure):
            // Malformed: 400 where a request's transaction ID can be read, nothing otherwise.
            guard let transactionID = failure.requestTransactionID else { return }
            var response = TURNResponse(method: failure.method ?? .binding, kind: .error, transactionID: transactionID)
            response.errorCode = 400
            count(response.method, 400)
            commands.append(.sendToClient(codec.encode(response, integrity: nil, fingerprint: false), client: tuple.client, listener: tuple.listener))
            return
        }
        switch request.kind {
        case .indication:
            if request.method == .send { handleSend(request, tuple: tuple, now: now, into: &commands) }
        case .response:
            return
        case .request:
            handleRequest(request, bytes: bytes, tuple: tuple, now: now, into: &commands)
        }
    }

    private mutating func handleSend(_ request: TURNRequest, tuple: FiveTuple, now: TURNTime, into commands: inout [TURNCommand]) {
        guard entries[tuple] != nil else { return }
        guard configuration.hostsSessions else {
            dispatched.append(.work(tuple, .send(request)))
            return
        }
        entries[tuple]?.handleSend(request, now: now, into: &commands)
    }

    private mutating func handleRequest(_ request: TURNRequest, bytes: UnsafeRawBufferPointer, tuple: FiveTuple, now: TURNTime, into commands: inout [TURNCommand]) {
        func reply(_ response: TURNResponse, credentials: TURNCredentials? = nil) {
            count(response.method, response.errorCode ?? 200)
            let integrity = credentials.map { ($0.integrity, username: $0.username, realm: configuration.realm, password: $0.password) }
            commands.append(.sendToClient(codec.encode(response, integrity: integrity, fingerprint: true), client: tuple.client, listener: tuple.listener))
        }
        func error(_ code: Int, credentials: TURNCredentials? = nil, configure: (inout TURNResponse) -> Void = { _ in }) {
            var response = TURNResponse(method: request.method, kind: .error, transactionID: request.transactionID)
            response.errorCode = code
            response.software = configuration.software
            configure(&response)
            reply(response, credentials: credentials)
        }

        switch request.method {
        case .binding:
            if !request.unknownRequired.isEmpty {
                error(420) { $0.unknownAttributes = request.unknownRequired }
                return
            }
            var response = TURNResponse(method: .binding, kind: .success, transactionID: request.transactionID)
            response.xorMappedAddress = tuple.client
            response.software = configuration.software
            reply(response)
            return
        case .allocate, .refresh, .createPermission, .channelBind:
            break
        case .send, .data, .other:
            error(400)
            return
        }

        // Long-term credentials (RFC 8489 section 9.2.4). Nothing is created for an unauthenticated client
        // but a nonce, and 401s are rate-limited per source.
        let credentials: TURNCredentials
        switch authenticate(request, bytes: bytes, tuple: tuple, now: now) {
        case let .success(authenticated):
            credentials = authenticated
        case .failure(.unauthorized):
            guard unauthorized.allow(tuple.client.ip, now: now) else { return }
            let nonce = nonces.issue(for: tuple.client, now: now, random: &random)
            error(401) { $0.realm = configuration.realm; $0.nonce = nonce }
            return
        case .failure(.staleNonce):
            guard unauthorized.allow(tuple.client.ip, now: now) else { return }
            let nonce = nonces.issue(for: tuple.client, now: now, random: &random)
            error(438) { $0.realm = configuration.realm; $0.nonce = nonce }
            return
        case .failure(.badRequest):
            error(400)
            return
        }

        if !request.unknownRequired.isEmpty {
            error(420, credentials: credentials) { $0.unknownAttributes = request.unknownRequired }
            return
        }
        if request.method != .allocate, let entry = entries[tuple], entry.allocation.username != credentials.username {
            error(441, credentials: credentials)  // Wrong Credentials: not the allocation's username
            return
        }

        switch request.method {
        case .allocate:
            switch allocate(request, tuple: tuple, credentials: credentials, now: now, into: &commands) {
            case let .failed(code):
                error(code, credentials: credentials)
            case let .answered(bytes):
                count(.allocate, 200)
                commands.append(.sendToClient(bytes, client: tuple.client, listener: tuple.listener))
            }
        case .refresh, .createPermission, .channelBind:
            guard var entry = entries[tuple] else { return error(437, credentials: credentials) }
            guard configuration.hostsSessions else {
                let permitted = Set(request.peers.filter { permits($0) })
                dispatched.append(.work(tuple, .request(request, credentials, permittedPeers: permitted)))
                return
            }
            let outcome = entry.handle(
                request, credentials: credentials, now: now, permits: permits, into: &commands,
                answered: { method, code in count(method, code) })
            switch outcome {
            case .freed: release(tuple)
            case .active: entries[tuple] = entry
            }
        case .binding, .send, .data, .other:
            error(400, credentials: credentials)
        }
    }

    private enum AllocateOutcome {
        /// An error response with this code.
        case failed(Int)
        /// The encoded success response (new, or the one a retransmission gets again).
        case answered([UInt8])
    }

    private mutating func allocate(
        _ request: TURNRequest, tuple: FiveTuple, credentials: TURNCredentials, now: TURNTime, into commands: inout [TURNCommand]
    ) -> AllocateOutcome {
        // RFC 8656 section 7.2, in its order.
        // A session run elsewhere judges its own lifetime: its entry here counts as live until it is freed.
        if let existing = entries[tuple], !configuration.hostsSessions || !existing.allocation.isExpired(now: now) {
            // A retransmission gets the same answer; a new transaction is an Allocation Mismatch.
            return existing.allocateTransaction == request.transactionID ? .answered(existing.allocateResponse) : .failed(437)
        } else if entries[tuple] != nil {
            free(tuple, now: now, into: &commands)
        }
        guard let transport = request.requestedTransport else { return .failed(400) }
        guard transport == 17 else { return .failed(442) }  // UDP only
        if request.reservationToken && (request.requestedFamily != nil || request.additionalFamily != nil || request.evenPort) {
            return .failed(400)
        }
        if request.reservationToken { return .failed(508) }  // we keep no reservations
        if request.requestedFamily != nil && request.additionalFamily != nil { return .failed(400) }

        var families: [SocketAddress.IP] = []
        var addressError: (TURNRequest.Family, Int)?
        switch request.requestedFamily {
        case nil, .ipv4?:
            guard let ipv4 = configuration.relayIPv4 else { return .failed(440) }
            families.append(ipv4)
        case .ipv6?:
            guard let ipv6 = configuration.relayIPv6 else { return .failed(440) }
            families.append(ipv6)
        case .unsupported?:
            return .failed(440)
        }
        switch request.additionalFamily {
        case nil:
            break
        case .ipv6?:
            if let ipv6 = configuration.relayIPv6 { families.append(ipv6) } else { addressError = (.ipv6, 440) }
        case .ipv4?, .unsupported?:
            return .failed(400)  // ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6
        }

        guard perUsername[credentials.username, default: 0] < configuration.allocationsPerUsername else {
            return .failed(486)  // Allocation Quota Reached
        }
        guard let port = takePort(even: request.evenPort) else { return .failed(508) }

        let relayed = families.map { SocketAddress(ip: $0, port: port) }
        let lifetime = Allocation.clampLifetime(requested: request.lifetime)
        let allocation = Allocation(client: tuple.client, listener: tuple.listener, username: credentials.username,
                                    relayed: relayed, lifetime: lifetime, now: now, timers: configuration.timers)
        var response = TURNResponse(method: .allocate, kind: .success, transactionID: request.transactionID)
        response.xorRelayedAddresses = relayed
        response.xorMappedAddress = tuple.client
        response.lifetime = UInt32(lifetime.components.seconds)
        response.addressError = addressError
        response.software = configuration.software
        let encoded = codec.encode(
            response, integrity: (credentials.integrity, username: credentials.username, realm: configuration.realm, password: credentials.password),
            fingerprint: true)
        let session = Entry(
            allocation: allocation, allocateTransaction: request.transactionID, allocateResponse: encoded, codec: codec, context: answerContext)
        entries[tuple] = session
        if !configuration.hostsSessions { dispatched.append(.created(tuple, session)) }
        byRelayedPort[port] = tuple
        perUsername[credentials.username, default: 0] += 1
        for address in relayed { commands.append(.openRelayedSocket(address)) }
        return .answered(encoded)
    }

    private mutating func takePort(even: Bool) -> UInt16? {
        guard even else { return ports.take(random: &random) }
        // EVEN-PORT (RFC 8656 section 14.6) without a reservation: draw until an even port comes up.
        var odd: [UInt16] = []
        defer { for port in odd { ports.release(port) } }
        for _ in 0..<64 {
            guard let port = ports.take(random: &random) else { return nil }
            if port % 2 == 0 { return port }
            odd.append(port)
        }
        return nil
    }

    /// Frees an allocation: its session emits the data-path commands, then its port, quota and index
    /// entries are released.
    private mutating func free(_ tuple: FiveTuple, now: TURNTime, into commands: inout [TURNCommand]) {
        entries[tuple]?.free(now: now, into: &commands)
        release(tuple)
    }

    /// Releases what the front door holds for an allocation whose session is gone.
    private mutating func release(_ tuple: FiveTuple) {
        guard let entry = entries.removeValue(forKey: tuple) else { return }
        if let port = entry.allocation.relayed.first?.port {
            byRelayedPort[port] = nil
            ports.release(port)
        }
        let remaining = perUsername[entry.allocation.username, default: 1] - 1
        perUsername[entry.allocation.username] = remaining > 0 ? remaining : nil
    }

    private func permits(_ peer: SocketAddress) -> Bool {
        let isRelayed = byRelayedPort[peer.port] != nil
            && (peer.ip == configuration.relayIPv4 || peer.ip == configuration.relayIPv6)
        return configuration.peerPolicy.permits(peer.ip, isRelayedAddress: isRelayed)
    }

    // MARK: Authentication

    private enum AuthenticationFailure: Error {
        case unauthorized, staleNonce, badRequest
    }

    private mutating func authenticate(_ request: TURNRequest, bytes: UnsafeRawBufferPointer, tuple: FiveTuple, now: TURNTime) -> Result<TURNCredentials, AuthenticationFailure> {
        guard let integrity = request.integrity else { return .failure(.unauthorized) }
        guard let username = request.username, let realm = request.realm, let nonce = request.nonce else {
            return .failure(.badRequest)  // RFC 8489 section 9.2.4: integrity without the rest is a 400
        }
        guard nonces.use(nonce, for: tuple.client, now: now) else { return .failure(.staleNonce) }
        guard realm == configuration.realm, let expiry = RESTCredentials.expiry(of: username), expiry > now.unixSeconds else {
            return .failure(.unauthorized)
        }
        for secret in configuration.secrets {
            let password = RESTCredentials.password(secret: secret, username: username)
            if codec.verifyIntegrity(bytes, username: username, realm: realm, password: password) {
                return .success(TURNCredentials(username: username, password: password, integrity: integrity))
            }
        }
        return .failure(.unauthorized)
    }

    // MARK: Helpers

    private mutating func newTransactionID() -> [UInt8] {
        (0..<12).map { _ in UInt8.random(in: .min ... .max, using: &random) }
    }

    private mutating func count(_ method: TURNRequest.Method, _ code: Int) {
        requests[RequestKey(method: method.metricName, code: code), default: 0] += 1
    }
}

extension TURNRequest.Method {
    /// The method's name in metrics (`gatehouse_relay_requests_total{method=...}`).
    package var metricName: String {
        switch self {
        case .binding: "binding"
        case .allocate: "allocate"
        case .refresh: "refresh"
        case .send: "send"
        case .data: "data"
        case .createPermission: "create_permission"
        case .channelBind: "channel_bind"
        case .other: "other"
        }
    }
}
