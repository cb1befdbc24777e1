package import Addresses
package import STUN

/// The long-term credentials a request was authenticated with (the allocation's answers are signed
/// with them).
package struct TURNCredentials: Equatable, Sendable {
    package var username: String
    package var password: String
    package var integrity: TURNRequest.Integrity

    package init(username: String, password: String, integrity: TURNRequest.Integrity) {
        self.username = username
        self.password = password
        self.integrity = integrity
    }
}

/// Work the front door hands to one allocation's session, in the order it arrived.
package enum TURNSessionWork: Sendable {
    /// An authenticated Refresh, CreatePermission or ChannelBind of the allocation's username, with the
    /// peers the relay-wide policy permits among those it names.
    case request(TURNRequest, TURNCredentials, permittedPeers: Set<SocketAddress>)
    case send(TURNRequest)
    /// A ChannelData datagram the data path had no route for.
    case channelData([UInt8])
    /// A datagram from a peer that holds a permission.
    case peerDatagram([UInt8], from: SocketAddress)
}

/// What an allocation answers with, besides its data: the realm and SOFTWARE of the relay.
package struct TURNAnswerContext: Sendable {
    package var realm: String
    package var software: String

    package init(realm: String, software: String) {
        self.realm = realm
        self.software = software
    }
}

/// One allocation's protocol state machine, pure: once the front door (`TURNServer`) has decoded and
/// authenticated a request and found that it concerns this allocation, the session answers it
/// (Refresh, CreatePermission, ChannelBind), relays what the allocation relays (Send indications,
/// ChannelData, peer datagrams) and expires what has run out. It never touches a socket or a clock:
/// input and `now` in, commands out. `TURNServer` keeps one per allocation; a shell may equally run
/// each in an actor of its own.
package struct AllocationSession<Codec: TURNCodec>: Sendable {
    /// Whether the allocation still exists after an input.
    package enum Outcome: Equatable, Sendable {
        case active
        /// Refresh(0) or expiry: the session emitted the removal of its routes and the closing of its
        /// relayed sockets; the owner releases its port, quota and index entries.
        case freed
    }

    package private(set) var allocation: Allocation
    /// Set once the session freed the allocation (Refresh(0) or expiry): a session hosted apart from its
    /// front door may still get requests the front door dispatched before it heard; they get 437.
    package private(set) var isFreed = false
    /// The Allocate transaction and its encoded answer: a retransmission gets the same bytes.
    package let allocateTransaction: [UInt8]
    package let allocateResponse: [UInt8]
    private let codec: Codec
    private let context: TURNAnswerContext

    package init(allocation: Allocation, allocateTransaction: [UInt8], allocateResponse: [UInt8], codec: Codec, context: TURNAnswerContext) {
        self.allocation = allocation
        self.allocateTransaction = allocateTransaction
        self.allocateResponse = allocateResponse
        self.codec = codec
        self.context = context
    }

    package var nextDeadline: Duration { allocation.nextDeadline }

    package var tuple: TURNFiveTuple { TURNFiveTuple(client: allocation.client, listener: allocation.listener) }

    // MARK: Requests (RFC 8656 sections 7.3, 9, 11)

    /// Answers an authenticated Refresh, CreatePermission or ChannelBind of this allocation's 5-tuple.
    /// `permits` says whether a peer is allowed (the relay-wide peer policy); `answered` is told the
    /// method and code of the answer (for metrics).
    package mutating func handle(
        _ request: TURNRequest, credentials: TURNCredentials, now: TURNTime, permits: (SocketAddress) -> Bool,
        into commands: inout [TURNCommand], answered: (TURNRequest.Method, Int) -> Void
    ) -> Outcome {
        func reply(_ response: TURNResponse) {
            answered(response.method, response.errorCode?.rawValue ?? 200)
            let integrity = (credentials.integrity, username: credentials.username, realm: context.realm, password: credentials.password)
            commands.append(.sendToClient(
                codec.encode(response, integrity: integrity, fingerprint: true), client: allocation.client, listener: allocation.listener))
        }
        // Named `refuse`, not `error`: a `catch` block below has its own `error`.
        func refuse(_ code: STUNErrorCode) -> Outcome {
            var response = TURNResponse(method: request.method, kind: .error, transactionID: request.transactionID)
            response.errorCode = code
            response.software = context.software
            reply(response)
            return isFreed ? .freed : .active
        }
        // Freed already (the front door dispatched this before it heard), or expired but not yet swept
        // (the next timeout frees it): no allocation.
        guard !isFreed, !allocation.isExpired(now: now) else { return refuse(.allocationMismatch) }

        switch request.method {
        case .refresh:
            var response = TURNResponse(method: .refresh, kind: .success, transactionID: request.transactionID)
            if request.lifetime == 0 {
                free(now: now, into: &commands)
                response.lifetime = 0
                reply(response)
                return .freed
            }
            let lifetime = Allocation.clampLifetime(requested: request.lifetime)
            allocation.refresh(lifetime: lifetime, now: now)
            response.lifetime = UInt32(lifetime.components.seconds)
            reply(response)
        case .createPermission:
            guard !request.peers.isEmpty else { return refuse(.badRequest) }
            // All or nothing (RFC 8656 section 10.2): check every peer before installing any.
            for peer in request.peers {
                guard allocation.relayedAddress(for: peer) != nil else { return refuse(.peerAddressFamilyMismatch) }
                guard permits(peer) else { return refuse(.forbidden) }
            }
            for peer in request.peers where !allocation.installPermission(peer.ip, now: now) {
                return refuse(.insufficientCapacity)
            }
            commands.append(.setPermissions(allocation.permissions, for: tuple))
            reply(TURNResponse(method: .createPermission, kind: .success, transactionID: request.transactionID))
        case .channelBind:
            guard let number = request.channel, request.peers.count == 1, let peer = request.peers.first else { return refuse(.badRequest) }
            guard allocation.relayedAddress(for: peer) != nil else { return refuse(.peerAddressFamilyMismatch) }
            guard permits(peer) else { return refuse(.forbidden) }
            do {
                let route = try allocation.bindChannel(number, to: peer, now: now)
                commands.append(.installChannelRoute(route))
                commands.append(.setPermissions(allocation.permissions, for: tuple))
                reply(TURNResponse(method: .channelBind, kind: .success, transactionID: request.transactionID))
            } catch {
                switch error {
                case .numberInUse, .peerBoundToAnotherNumber, .invalidNumber: return refuse(.badRequest)
                case .familyNotRelayed: return refuse(.peerAddressFamilyMismatch)
                case .tooMany: return refuse(.insufficientCapacity)
                }
            }
        case .allocate, .binding, .send, .data, .other:
            return refuse(.badRequest)
        }
        return .active
    }

    /// Carries out one piece of work the front door dispatched (`random` draws Data indications'
    /// transaction IDs; `answered` is told the method and code of each answer, for metrics).
    package mutating func perform(
        _ work: TURNSessionWork, now: TURNTime, random: inout some RandomNumberGenerator, into commands: inout [TURNCommand],
        answered: (TURNRequest.Method, Int) -> Void
    ) -> Outcome {
        switch work {
        case let .request(request, credentials, permittedPeers):
            return handle(request, credentials: credentials, now: now, permits: { permittedPeers.contains($0) }, into: &commands, answered: answered)
        case let .send(request):
            handleSend(request, now: now, into: &commands)
        case let .channelData(bytes):
            bytes.withUnsafeBytes { raw in
                if let frame = ChannelData(raw) { handleChannelData(frame, now: now, into: &commands) }
            }
        case let .peerDatagram(bytes, peer):
            bytes.withUnsafeBytes { raw in
                handlePeerDatagram(
                    raw, from: peer, now: now, transactionID: { (0..<12).map { _ in UInt8.random(in: .min ... .max, using: &random) } },
                    into: &commands)
            }
        }
        return isFreed ? .freed : .active
    }

    // MARK: Data (RFC 8656 sections 11, 12)

    /// A Send indication: relayed when the peer has a permission (indications get no answer).
    package func handleSend(_ request: TURNRequest, now: TURNTime, into commands: inout [TURNCommand]) {
        guard !isFreed, !allocation.isExpired(now: now), request.peers.count == 1, let peer = request.peers.first, let data = request.data,
              allocation.hasPermission(peer.ip, now: now), let relayed = allocation.relayedAddress(for: peer) else { return }
        commands.append(.sendToPeer(data, peer: peer, relayed: relayed))
    }

    /// ChannelData from the client that the data path had no route for.
    package func handleChannelData(_ frame: ChannelData, now: TURNTime, into commands: inout [TURNCommand]) {
        guard !isFreed, let peer = allocation.peer(onChannel: frame.channel, now: now),
              let relayed = allocation.relayedAddress(for: peer) else { return }
        commands.append(.sendToPeer(Array(frame.payload), peer: peer, relayed: relayed))
    }

    /// A datagram from a peer to one of the allocation's relayed addresses: ChannelData on the peer's
    /// channel, else a Data indication, when the peer has a permission; dropped otherwise.
    package func handlePeerDatagram(
        _ bytes: UnsafeRawBufferPointer, from peer: SocketAddress, now: TURNTime, transactionID: () -> [UInt8],
        into commands: inout [TURNCommand]
    ) {
        guard !isFreed, !allocation.isExpired(now: now), allocation.hasPermission(peer.ip, now: now) else { return }
        if let channel = allocation.channel(for: peer, now: now) {
            guard ChannelData.headerLength + bytes.count <= allocation.client.maximumUDPPayload else { return }
            commands.append(.sendToClient(ChannelData.frame(channel: channel, payload: bytes), client: allocation.client, listener: allocation.listener))
        } else {
            // The front door drops (and counts) what cannot travel as a Data indication; this guard
            // keeps a datagram that got past it from ever reaching the encoder.
            guard Self.dataIndicationSize(payload: bytes.count, peer: peer) <= allocation.client.maximumUDPPayload else { return }
            var indication = TURNResponse(method: .data, kind: .indication, transactionID: transactionID())
            indication.xorPeerAddress = peer
            indication.data = Array(bytes)
            commands.append(.sendToClient(
                codec.encode(indication, integrity: nil, fingerprint: false), client: allocation.client, listener: allocation.listener))
        }
    }

    /// The bytes of a Data indication around `payload` bytes from `peer`: the header, XOR-PEER-ADDRESS
    /// and DATA padded to 4 bytes (RFC 8656 sections 11.4, 18.3, 18.4).
    package static func dataIndicationSize(payload: Int, peer: SocketAddress) -> Int {
        20 + 4 + (peer.isIPv6 ? 20 : 8) + 4 + (payload + 3) & ~3
    }

    // MARK: Time

    /// Expires permissions and channels (removing their routes), or the whole allocation.
    package mutating func handleTimeout(now: TURNTime, into commands: inout [TURNCommand]) -> Outcome {
        if isFreed { return .freed }
        if allocation.isExpired(now: now) {
            free(now: now, into: &commands)
            return .freed
        }
        for route in allocation.expire(now: now) { commands.append(.removeChannelRoute(route)) }
        return .active
    }

    /// The data paths forget the allocation: routes removed, relayed sockets closed.
    package mutating func free(now: TURNTime, into commands: inout [TURNCommand]) {
        guard !isFreed else { return }
        isFreed = true
        for route in allocation.removeAllRoutes() { commands.append(.removeChannelRoute(route)) }
        for address in allocation.relayed { commands.append(.closeRelayedSocket(address)) }
    }
}
