package import Addresses
package import STUN

/// The TURN server's front door (RFC 8489 STUN, RFC 8656 TURN over UDP) as a sans-IO core: datagrams,
/// their addresses and `now` go in; commands for the shell and the next deadline come out. It decodes,
/// authenticates, keeps the nonces, the 401 rate limit, the quotas, the relayed ports and reservations,
/// answers Binding and Allocate, and hands every allocation's own work (Refresh, CreatePermission,
/// ChannelBind, indications, data without a route) to that allocation's session, which the shell runs
/// where it likes (the relay: an actor per allocation; the tests: `HostedTURNServer`). It never touches
/// a socket or a clock.
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
        /// Sources the 401 rate limiter tracks at once (the least recently seen one goes beyond).
        package var unauthorizedSources = 16_384
        package var timers = Allocation.Timers.rfc8656
        package var reservationLifetime = ReservationTable.defaultLifetime
        /// How often expired nonces and reservations are swept.
        package var housekeepingInterval: Duration = .seconds(5)

        package init() {}
    }

    package typealias FiveTuple = TURNFiveTuple

    /// Request counts by method and result code, for metrics.
    package struct RequestKey: Hashable, Sendable {
        package var method: String
        package var code: Int
    }

    /// What the front door hands to the shell besides commands: new sessions, and the work of existing
    /// ones in the order it arrived.
    package enum Dispatch: Sendable {
        /// A new allocation (its relayed sockets are open): run this session.
        case created(FiveTuple, AllocationSession<Codec>)
        /// Work for the session of this 5-tuple, in the order it arrived.
        case work(FiveTuple, SessionWork)
    }

    package typealias SessionWork = TURNSessionWork

    /// What the front door keeps of an allocation whose session runs elsewhere.
    private struct Entry {
        var username: String
        var port: UInt16
        var allocateTransaction: [UInt8]
        var allocateResponse: [UInt8]
        /// The session's permissions as it last reported them (`TURNCommand.setPermissions`).
        var permissions: [SocketAddress.IP: Duration] = [:]
    }

    /// An Allocate whose relayed sockets the shell is opening.
    private struct PendingAllocate {
        var request: TURNRequest
        var credentials: TURNCredentials
        var ips: [SocketAddress.IP]
        var addressError: (TURNRequest.Family, STUNErrorCode)?
        var port: UInt16
        /// The port came from a reservation: no other port may replace it.
        var redeemed: Bool
        /// Ports still to try after this one fails to bind.
        var retriesLeft: Int
    }

    /// Ports tried for one Allocate when the host refuses to bind them, before answering 508.
    package static var bindAttempts: Int { 4 }

    package let configuration: Configuration
    private let codec: Codec
    private var random: Random
    private var entries: [FiveTuple: Entry] = [:]
    private var pending: [FiveTuple: PendingAllocate] = [:]
    private var byRelayedPort: [UInt16: FiveTuple] = [:]
    private var perUsername: [String: Int] = [:]
    private var nonces: NonceTable
    private var unauthorized: RateLimiter
    private var ports: PortAllocator
    private var reservations: ReservationTable
    private var nextHousekeeping: Duration = .zero
    package private(set) var requests: [RequestKey: Int] = [:]
    /// Datagrams from peers without a permission, dropped before anything was queued.
    package private(set) var droppedPeerDatagrams = 0
    /// Datagrams from peers too large to reach the client as a Data indication (it would exceed what
    /// one UDP datagram to the client can carry).
    package private(set) var droppedOversizedPeerDatagrams = 0
    /// Reservations made (EVEN-PORT with R), redeemed (an Allocate with their token) and expired unused.
    package private(set) var reservationEvents = (made: 0, redeemed: 0, expired: 0)
    private var dispatched: [Dispatch] = []

    package init(configuration: Configuration, codec: Codec, random: Random) {
        self.configuration = configuration
        self.codec = codec
        self.random = random
        nonces = NonceTable(limits: configuration.nonceLimits)
        unauthorized = RateLimiter(
            burst: configuration.unauthorizedBurst, perSecond: configuration.unauthorizedPerSecond, capacity: configuration.unauthorizedSources)
        ports = PortAllocator(range: configuration.portRange)
        reservations = ReservationTable(lifetime: configuration.reservationLifetime)
    }

    // MARK: State for the shell and for tests

    package var allocationCount: Int { entries.count }
    package var nonceCount: Int { nonces.count }
    package var reservationCount: Int { reservations.count }
    package var rateLimitedSources: Int { unauthorized.trackedSources }
    package var portsInUse: Int { ports.inUse }

    /// Permissions in force now, over every allocation (for the metrics gauge).
    package func permissionCount(now: TURNTime) -> Int {
        entries.values.reduce(0) { total, entry in total + entry.permissions.values.count { $0 > now.monotonic } }
    }

    /// The sessions and work handed out since the last call.
    package mutating func takeDispatched() -> [Dispatch] {
        defer { dispatched.removeAll(keepingCapacity: true) }
        return dispatched
    }

    /// A session freed its allocation (Refresh(0) or expiry; it emitted the data-path commands itself):
    /// release its port, quota and index entry.
    package mutating func sessionFreed(_ tuple: FiveTuple) {
        guard let entry = entries.removeValue(forKey: tuple) else { return }
        byRelayedPort[entry.port] = nil
        ports.release(entry.port)
        let remaining = perUsername[entry.username, default: 1] - 1
        perUsername[entry.username] = remaining > 0 ? remaining : nil
    }

    /// A session's permissions changed (`TURNCommand.setPermissions`, which the shell hands back here).
    package mutating func updatePermissions(_ permissions: [SocketAddress.IP: Duration], for tuple: FiveTuple) {
        entries[tuple]?.permissions = permissions
    }

    private var answerContext: TURNAnswerContext { TURNAnswerContext(realm: configuration.realm, software: configuration.software) }

    /// When `handleTimeout` should next run (nonce and reservation sweeps; sessions keep their own time).
    package var nextDeadline: Duration { nextHousekeeping }

    // MARK: Input

    /// A datagram from a client to one of the relay's listeners.
    package mutating func handleClientDatagram(
        _ bytes: UnsafeRawBufferPointer, from client: SocketAddress, to listener: SocketAddress, now: TURNTime,
        into commands: inout [TURNCommand]
    ) {
        guard client.port != 0, let first = bytes.first else { return }
        let tuple = FiveTuple(client: client, listener: listener)
        switch first {
        case 0x00...0x03:
            handleSTUN(bytes, tuple: tuple, now: now, into: &commands)
        case 0x40...0x7F:  // channel numbers 0x4000-0x7FFF (see ChannelData.numbers)
            // ChannelData the data path had no route for: the session decides (RFC 8656 section 12.4).
            guard entries[tuple] != nil, ChannelData(bytes) != nil else { return }
            dispatched.append(.work(tuple, .channelData(Array(bytes))))
        default:
            return  // neither STUN nor ChannelData (RFC 8656 section 12.4, RFC 7983)
        }
    }

    /// A datagram from a peer to a relayed address. Without a permission it is dropped here, before it
    /// is copied or queued anywhere (RFC 8656 section 10.3): any host can send to a relayed port.
    package mutating func handlePeerDatagram(
        _ bytes: UnsafeRawBufferPointer, from peer: SocketAddress, to relayed: SocketAddress, now: TURNTime,
        into commands: inout [TURNCommand]
    ) {
        guard peer.port != 0, let tuple = byRelayedPort[relayed.port], let entry = entries[tuple] else { return }
        guard let until = entry.permissions[peer.ip], until > now.monotonic else {
            droppedPeerDatagrams += 1
            return
        }
        // Bound channels never get here (the data path relays them), so this becomes a Data indication.
        guard AllocationSession<Codec>.dataIndicationSize(payload: bytes.count, peer: peer) <= tuple.client.maximumUDPPayload else {
            droppedOversizedPeerDatagrams += 1
            return
        }
        dispatched.append(.work(tuple, .peerDatagram(Array(bytes), from: peer)))
    }

    /// Sweeps expired nonces and reservations as of `now`.
    package mutating func handleTimeout(now: TURNTime, into commands: inout [TURNCommand]) {
        guard nextHousekeeping <= now.monotonic else { return }
        nonces.removeExpired(now: now)
        for port in reservations.removeExpired(now: now) {
            ports.release(port)
            reservationEvents.expired += 1
        }
        nextHousekeeping = now.monotonic + configuration.housekeepingInterval
    }

    /// The shell opened (or failed to open) the relayed sockets of `.openRelayedSockets`. On success the
    /// allocation exists and the Allocate is answered; on failure the port is released and another one
    /// tried, and when none binds the client gets 508: never a success that relays nothing.
    package mutating func relayedSocketsOpened(for tuple: FiveTuple, success: Bool, now: TURNTime, into commands: inout [TURNCommand]) {
        guard var attempt = pending.removeValue(forKey: tuple) else { return }
        if success {
            commands.append(.sendToClient(created(attempt, tuple: tuple, now: now), client: tuple.client, listener: tuple.listener))
            return
        }
        // The next port is taken before the one that would not bind is released, so that the retry is
        // never that same port again (with a small range, random picks kept landing on it).
        let failed = attempt
        defer { releasePorts(of: failed) }
        guard !attempt.redeemed, attempt.retriesLeft > 0, let port = takePort(attempt.request.evenPort) else {
            return answer(attempt.request, .insufficientCapacity, credentials: attempt.credentials, tuple: tuple, into: &commands)
        }
        attempt.port = port
        attempt.retriesLeft -= 1
        pending[tuple] = attempt
        commands.append(.openRelayedSockets(attempt.ips.map { SocketAddress(ip: $0, port: port) }, for: tuple))
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
            response.errorCode = .badRequest
            response.software = configuration.software
            count(response.method, .badRequest)
            commands.append(.sendToClient(codec.encode(response, integrity: nil, fingerprint: false), client: tuple.client, listener: tuple.listener))
            return
        }
        switch request.kind {
        case .indication:
            if request.method == .send, entries[tuple] != nil { dispatched.append(.work(tuple, .send(request))) }
        case .response:
            return
        case .request:
            handleRequest(request, bytes: bytes, tuple: tuple, now: now, into: &commands)
        }
    }

    private mutating func handleRequest(_ request: TURNRequest, bytes: UnsafeRawBufferPointer, tuple: FiveTuple, now: TURNTime, into commands: inout [TURNCommand]) {
        switch request.method {
        case .binding:
            if !request.unknownRequired.isEmpty {
                return answer(request, .unknownAttribute, tuple: tuple, into: &commands) { $0.unknownAttributes = request.unknownRequired }
            }
            var response = TURNResponse(method: .binding, kind: .success, transactionID: request.transactionID)
            response.xorMappedAddress = tuple.client
            response.software = configuration.software
            count(.binding, nil)
            commands.append(.sendToClient(codec.encode(response, integrity: nil, fingerprint: true), client: tuple.client, listener: tuple.listener))
            return
        case .allocate, .refresh, .createPermission, .channelBind:
            break
        case .send, .data, .other:
            return answer(request, .badRequest, tuple: tuple, into: &commands)
        }

        // Long-term credentials (RFC 8489 section 9.2.4). Nothing is created for an unauthenticated client
        // but a nonce, and 401s and 438s are rate-limited per source.
        let credentials: TURNCredentials
        switch authenticate(request, bytes: bytes, tuple: tuple, now: now) {
        case let .success(authenticated):
            credentials = authenticated
        case let .failure(failure):
            switch failure {
            case .unauthorized, .staleNonce:
                guard unauthorized.allow(tuple.client.ip, now: now) else { return }
                let nonce = nonces.issue(for: tuple.client, now: now, random: &random)
                let code: STUNErrorCode = failure == .staleNonce ? .staleNonce : .unauthorized
                let realm = configuration.realm
                return answer(request, code, tuple: tuple, into: &commands) { $0.realm = realm; $0.nonce = nonce }
            case .badRequest:
                return answer(request, .badRequest, tuple: tuple, into: &commands)
            }
        }

        if !request.unknownRequired.isEmpty {
            return answer(request, .unknownAttribute, credentials: credentials, tuple: tuple, into: &commands) {
                $0.unknownAttributes = request.unknownRequired
            }
        }
        if request.method != .allocate, let entry = entries[tuple], entry.username != credentials.username {
            return answer(request, .wrongCredentials, credentials: credentials, tuple: tuple, into: &commands)
        }

        switch request.method {
        case .allocate:
            allocate(request, tuple: tuple, credentials: credentials, now: now, into: &commands)
        case .refresh, .createPermission, .channelBind:
            guard entries[tuple] != nil else {
                return answer(request, .allocationMismatch, credentials: credentials, tuple: tuple, into: &commands)
            }
            let permitted = Set(request.peers.filter { permits($0) })
            dispatched.append(.work(tuple, .request(request, credentials, permittedPeers: permitted)))
        case .binding, .send, .data, .other:
            answer(request, .badRequest, credentials: credentials, tuple: tuple, into: &commands)
        }
    }

    /// Sends an error response to `request` (signed when the request authenticated).
    private mutating func answer(
        _ request: TURNRequest, _ code: STUNErrorCode, credentials: TURNCredentials? = nil, tuple: FiveTuple,
        into commands: inout [TURNCommand], configure: (inout TURNResponse) -> Void = { _ in }
    ) {
        var response = TURNResponse(method: request.method, kind: .error, transactionID: request.transactionID)
        response.errorCode = code
        response.software = configuration.software
        configure(&response)
        count(request.method, code)
        commands.append(.sendToClient(encode(response, credentials: credentials), client: tuple.client, listener: tuple.listener))
    }

    private func encode(_ response: TURNResponse, credentials: TURNCredentials?) -> [UInt8] {
        let integrity = credentials.map { ($0.integrity, username: $0.username, realm: configuration.realm, password: $0.password) }
        return codec.encode(response, integrity: integrity, fingerprint: true)
    }

    // MARK: Allocate (RFC 8656 section 7.2, in its order)

    private mutating func allocate(_ request: TURNRequest, tuple: FiveTuple, credentials: TURNCredentials, now: TURNTime, into commands: inout [TURNCommand]) {
        func refuse(_ code: STUNErrorCode) { answer(request, code, credentials: credentials, tuple: tuple, into: &commands) }

        if let existing = entries[tuple] {
            // A retransmission gets the same answer; a new transaction is an Allocation Mismatch. The
            // session judges the allocation's lifetime: its entry counts as live until it is freed.
            guard existing.allocateTransaction == request.transactionID else { return refuse(.allocationMismatch) }
            count(.allocate, nil)
            commands.append(.sendToClient(existing.allocateResponse, client: tuple.client, listener: tuple.listener))
            return
        }
        if pending[tuple] != nil { return }  // its sockets are being opened; the answer is on its way
        guard let transport = request.requestedTransport else { return refuse(.badRequest) }
        guard transport == Self.udp else { return refuse(.unsupportedTransportProtocol) }
        if request.reservationToken != nil && (request.requestedFamily != nil || request.additionalFamily != nil || request.evenPort != nil) {
            return refuse(.badRequest)
        }
        if request.requestedFamily != nil && request.additionalFamily != nil { return refuse(.badRequest) }
        if request.evenPort == .evenAndReserveNext && request.additionalFamily != nil { return refuse(.badRequest) }

        var ips: [SocketAddress.IP] = []
        var addressError: (TURNRequest.Family, STUNErrorCode)?
        switch request.requestedFamily {
        case nil, .ipv4?:
            // Without REQUESTED-ADDRESS-FAMILY: IPv4, or a reservation's own families.
            if request.reservationToken == nil {
                guard let ipv4 = configuration.relayIPv4 else { return refuse(.addressFamilyNotSupported) }
                ips.append(ipv4)
            }
        case .ipv6?:
            guard let ipv6 = configuration.relayIPv6 else { return refuse(.addressFamilyNotSupported) }
            ips.append(ipv6)
        case .unsupported?:
            return refuse(.addressFamilyNotSupported)
        }
        switch request.additionalFamily {
        case nil:
            break
        case .ipv6?:
            if let ipv6 = configuration.relayIPv6 { ips.append(ipv6) } else { addressError = (.ipv6, .addressFamilyNotSupported) }
        case .ipv4?, .unsupported?:
            return refuse(.badRequest)  // ADDITIONAL-ADDRESS-FAMILY may only ask for IPv6
        }

        guard perUsername[credentials.username, default: 0] < configuration.allocationsPerUsername else {
            return refuse(.allocationQuotaReached)
        }
        let port: UInt16
        if let token = request.reservationToken {
            guard let reservation = reservations.redeem(token, now: now) else { return refuse(.insufficientCapacity) }
            reservationEvents.redeemed += 1
            port = reservation.port
            ips = reservation.ips
        } else {
            guard let taken = takePort(request.evenPort) else { return refuse(.insufficientCapacity) }
            port = taken
        }
        pending[tuple] = PendingAllocate(
            request: request, credentials: credentials, ips: ips, addressError: addressError, port: port,
            redeemed: request.reservationToken != nil, retriesLeft: Self.bindAttempts - 1)
        commands.append(.openRelayedSockets(ips.map { SocketAddress(ip: $0, port: port) }, for: tuple))
    }

    /// The allocation of an Allocate whose sockets opened: its entry, its session handed out, and the
    /// encoded success response.
    private mutating func created(_ attempt: PendingAllocate, tuple: FiveTuple, now: TURNTime) -> [UInt8] {
        let request = attempt.request
        let relayed = attempt.ips.map { SocketAddress(ip: $0, port: attempt.port) }
        let lifetime = Allocation.clampLifetime(requested: request.lifetime)
        let allocation = Allocation(
            client: tuple.client, listener: tuple.listener, username: attempt.credentials.username, relayed: relayed, lifetime: lifetime,
            now: now, timers: configuration.timers)
        var response = TURNResponse(method: .allocate, kind: .success, transactionID: request.transactionID)
        response.xorRelayedAddresses = relayed
        response.xorMappedAddress = tuple.client
        response.lifetime = UInt32(lifetime.components.seconds)
        response.addressError = attempt.addressError
        response.software = configuration.software
        if request.evenPort == .evenAndReserveNext {
            response.reservationToken = reservations.reserve(port: attempt.port + 1, ips: attempt.ips, now: now, random: &random)
            reservationEvents.made += 1
        }
        let encoded = encode(response, credentials: attempt.credentials)
        let session = AllocationSession(
            allocation: allocation, allocateTransaction: request.transactionID, allocateResponse: encoded, codec: codec, context: answerContext)
        entries[tuple] = Entry(
            username: attempt.credentials.username, port: attempt.port, allocateTransaction: request.transactionID, allocateResponse: encoded)
        byRelayedPort[attempt.port] = tuple
        perUsername[attempt.credentials.username, default: 0] += 1
        dispatched.append(.created(tuple, session))
        count(.allocate, nil)
        return encoded
    }

    /// A relayed port as EVEN-PORT asks (RFC 8656 section 7.2): any, an even one, or an even one with
    /// the next-higher port taken too (reserved once the allocation exists).
    private mutating func takePort(_ evenPort: EvenPort?) -> UInt16? {
        switch evenPort {
        case nil: ports.take(random: &random)
        case .even?: ports.takeEven(random: &random)
        case .evenAndReserveNext?: ports.takeEvenPair(random: &random)
        }
    }

    private mutating func releasePorts(of attempt: PendingAllocate) {
        ports.release(attempt.port)
        if attempt.request.evenPort == .evenAndReserveNext { ports.release(attempt.port + 1) }
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

    /// REQUESTED-TRANSPORT's protocol number for UDP (RFC 8656 section 18.7), the only one served.
    private static var udp: UInt8 { 17 }

    /// Counts an answer: `code` nil is a success.
    private mutating func count(_ method: TURNRequest.Method, _ code: STUNErrorCode?) {
        requests[RequestKey(method: method.metricName, code: code?.rawValue ?? 200), default: 0] += 1
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
