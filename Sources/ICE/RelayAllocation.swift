package import Addresses
package import Foundation
import STUN

/// One TURN allocation on a relay (RFC 8656), the client side, sans-IO: what to send to the relay
/// comes out of each call, what the relay sent goes in. It allocates with the portal's TURN REST
/// credentials (after the relay's 401 gives realm and nonce, and again after a 438 stale nonce),
/// refreshes the allocation before its lifetime ends, binds a channel to each peer it is asked to
/// reach (so the relay's XDP path carries the data) and refreshes channels before they expire. What is
/// sent to a peer before its channel is bound (the first connectivity check through the relay) is held
/// and goes out the moment the relay confirms the binding, instead of waiting for a retransmission.
/// An allocation the relay refused or never answered, or lost (a Refresh answered 437: the relay forgot
/// it), is tried again from scratch after 1 s, then twice as long each time up to a minute; `release`
/// deletes it on the relay (a Refresh with lifetime 0) when the client is done with it.
package struct RelayAllocation {
    package enum Event: Equatable, Sendable {
        /// The relay allocated `relayed` and saw this client at `mapped`.
        case allocated(relayed: SocketAddress, mapped: SocketAddress)
        /// The relay refused, never answered, or forgot the allocation: it is unusable (`lost`: the relayed
        /// address it had, if any) until it is tried again in `retryIn` seconds.
        case failed(String, lost: SocketAddress?, retryIn: TimeInterval)
        /// Data from `peer` that the relay passed on (ChannelData or a Data indication).
        case data([UInt8], from: SocketAddress)
    }

    private enum Request {
        case allocate
        case refresh
        case channelBind(UInt16, SocketAddress)
    }

    private struct Transaction {
        var request: Request
        var bytes: [UInt8]
        var sentAt: Date
        var attempts: Int
    }

    /// What `wrap` did with a payload.
    package enum Wrapped: Equatable, Sendable {
        /// ChannelData to send to the relay now.
        case frame([UInt8])
        /// Held until the peer's channel is bound (the ChannelBind is under way).
        case held
        /// Not sendable: no relayed address (yet), or every channel number is in use.
        case unavailable
    }

    package static let lifetime: TimeInterval = 600
    static let channelLifetime: TimeInterval = 600
    static let retransmitAfter: TimeInterval = 0.5
    static let attempts = 6
    package static let retryFirst: TimeInterval = 1
    package static let retryLongest: TimeInterval = 60

    package let server: SocketAddress
    package private(set) var username: String
    private var password: String
    private let codec = STUNCodec()
    private var realm = ""
    private var nonce = ""
    package private(set) var relayed: SocketAddress?
    package private(set) var mapped: SocketAddress?
    package private(set) var failure: String?
    private var expiresAt = Date.distantPast
    private var transactions: [[UInt8]: Transaction] = [:]
    /// Channels by peer, the peers by channel, and when each binding was confirmed (nil: pending).
    private var channels: [SocketAddress: UInt16] = [:]
    private var peers: [UInt16: SocketAddress] = [:]
    private var bound: [UInt16: Date] = [:]
    private var nextChannel: UInt16 = 0x4000
    /// Payloads for channels whose binding is pending, the newest few each.
    private var held: [UInt16: [[UInt8]]] = [:]
    package static let heldPerChannel = 8
    /// When a failed allocation is tried again, and the wait after that.
    private var retryAt: Date?
    private var retryWait = RelayAllocation.retryFirst

    package init(server: SocketAddress, username: String, password: String) {
        self.server = server
        self.username = username
        self.password = password
    }

    /// New credentials from the portal (renewed before the old ones expire): the next requests use them.
    package mutating func renew(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The first Allocate (without credentials: the relay answers 401 with its realm and nonce).
    package mutating func start(now: Date) -> [[UInt8]] {
        [send(.allocate, now: now)]
    }

    /// The Refresh with lifetime 0 that deletes the allocation on the relay (sent once, unanswered: the
    /// client is going, or leaving this socket); afterwards the allocation is unusable.
    package mutating func release() -> [[UInt8]] {
        defer {
            reset()
            retryAt = nil
        }
        guard relayed != nil, let credentials else { return [] }
        let id = (0..<12).map { _ in UInt8.random(in: 0...255) }
        return [codec.encodeRequest(method: .refresh, [.lifetime(0)], transactionID: id, credentials: credentials, fingerprint: true)]
    }

    /// Forgets everything the relay gave (the relayed address, channels, what was held) and every
    /// transaction under way.
    private mutating func reset() {
        relayed = nil
        mapped = nil
        expiresAt = .distantPast
        transactions.removeAll()
        channels.removeAll()
        peers.removeAll()
        bound.removeAll()
        held.removeAll()
        nextChannel = 0x4000
    }

    /// Unusable until `retryAt`; the next wait doubles.
    private mutating func fail(_ reason: String, now: Date) -> Event {
        let lost = relayed
        reset()
        failure = reason
        retryAt = now.addingTimeInterval(retryWait)
        defer { retryWait = min(retryWait * 2, Self.retryLongest) }
        return .failed(reason, lost: lost, retryIn: retryWait)
    }

    private var credentials: STUNCodec.RequestCredentials? {
        realm.isEmpty ? nil : .init(username: username, realm: realm, nonce: nonce, password: password)
    }

    private mutating func send(_ request: Request, now: Date) -> [UInt8] {
        let id = (0..<12).map { _ in UInt8.random(in: 0...255) }
        let bytes: [UInt8]
        switch request {
        case .allocate:
            bytes = codec.encodeRequest(method: .allocate, [.transport(17), .lifetime(UInt32(Self.lifetime))], transactionID: id,
                                        credentials: credentials, fingerprint: true)
        case .refresh:
            bytes = codec.encodeRequest(method: .refresh, [.lifetime(UInt32(Self.lifetime))], transactionID: id, credentials: credentials,
                                        fingerprint: true)
        case let .channelBind(channel, peer):
            bytes = codec.encodeRequest(method: .channelBind, [.channel(channel), .peer(peer)], transactionID: id, credentials: credentials,
                                        fingerprint: true)
        }
        transactions[id] = Transaction(request: request, bytes: bytes, sentAt: now, attempts: 1)
        return bytes
    }

    /// The channel bound to `peer`, when data to it can go as ChannelData now.
    package func boundChannel(for peer: SocketAddress) -> UInt16? {
        channels[peer].flatMap { bound[$0] != nil ? $0 : nil }
    }

    /// The peer a channel is bound to.
    package func peer(forChannel channel: UInt16) -> SocketAddress? {
        peers[channel]
    }

    /// Whether data to `peer` can go as ChannelData now.
    package func isBound(_ peer: SocketAddress) -> Bool {
        channels[peer].map { bound[$0] != nil } ?? false
    }

    /// `payload` for `peer`, framed for the relay: ChannelData once the peer's channel is bound. Until
    /// then it is held (the newest `heldPerChannel`), and the first call puts the ChannelBind that binds
    /// the channel in `requests`; the relay's answer releases what was held.
    package mutating func wrap(_ payload: [UInt8], for peer: SocketAddress, now: Date, requests: inout [[UInt8]]) -> Wrapped {
        guard relayed != nil else { return .unavailable }
        if let channel = channels[peer] {
            guard bound[channel] != nil else { return hold(payload, channel) }
            return .frame(payload.withUnsafeBytes { ChannelData.frame(channel: channel, payload: $0) })
        }
        guard ChannelData.numbers.contains(nextChannel), nextChannel <= 0x4FFF else { return .unavailable }
        let channel = nextChannel
        nextChannel += 1
        channels[peer] = channel
        peers[channel] = peer
        requests.append(send(.channelBind(channel, peer), now: now))
        return hold(payload, channel)
    }

    private mutating func hold(_ payload: [UInt8], _ channel: UInt16) -> Wrapped {
        held[channel, default: []].append(payload)
        if held[channel]!.count > Self.heldPerChannel { held[channel]!.removeFirst() }
        return .held
    }

    /// A channel whose binding failed or went unanswered: forgotten with what was held for it, so that
    /// the next data for its peer asks again.
    private mutating func forget(channel: UInt16, peer: SocketAddress) {
        channels[peer] = nil
        peers[channel] = nil
        bound[channel] = nil
        held[channel] = nil
    }

    /// A datagram from the relay: what to send back and what happened; nil when it is not this
    /// allocation's (another transaction, not ChannelData of ours).
    package mutating func receive(_ bytes: [UInt8], now: Date) -> (send: [[UInt8]], events: [Event])? {
        if bytes.count >= 4, (0x40...0x7F).contains(bytes[0]) {
            let decoded: (UInt16, [UInt8])? = bytes.withUnsafeBytes { raw in ChannelData(raw).map { ($0.channel, Array($0.payload)) } }
            guard let (channel, payload) = decoded, let peer = peers[channel] else { return nil }
            return ([], [.data(payload, from: peer)])
        }
        guard bytes.count >= 20 else { return nil }
        let type = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let id = Array(bytes[8..<20])
        // A Data indication (method 0x007, class indication): data from a peer without a channel.
        if type == 0x0017 {
            guard let peerValue = STUNCodec.firstAttribute(STUNCodec.AttributeType.xorPeerAddress, in: bytes),
                  let peer = peerValue.withUnsafeBytes({ STUNCodec.decodeXORAddress($0, transactionID: id) }),
                  let data = STUNCodec.firstAttribute(STUNCodec.AttributeType.data, in: bytes) else { return ([], []) }
            return ([], [.data(data, from: peer)])
        }
        guard let transaction = transactions.removeValue(forKey: id) else { return nil }
        let isSuccess = type & 0x0110 == 0x0100
        if !isSuccess {
            let code = STUNCodec.errorCode(in: bytes) ?? 0
            if (code == 401 && credentials == nil) || code == 438, let realmValue = STUNCodec.firstAttribute(STUNCodec.AttributeType.realm, in: bytes)
                ?? (code == 438 ? Array(realm.utf8) : nil), let nonceValue = STUNCodec.nonce(in: bytes) {
                // The realm and nonce to sign with (again, for a stale nonce).
                realm = String(decoding: realmValue, as: UTF8.self)
                nonce = nonceValue
                return ([send(transaction.request, now: now)], [])
            }
            if case .allocate = transaction.request {
                return ([], [fail("Allocate refused with \(code)", now: now)])
            }
            if case .refresh = transaction.request, code == 437 {
                return ([], [fail("the relay no longer has the allocation (Refresh answered 437)", now: now)])
            }
            if case let .channelBind(channel, peer) = transaction.request { forget(channel: channel, peer: peer) }
            return ([], [])
        }
        switch transaction.request {
        case .allocate:
            let relayedValue = STUNCodec.firstAttribute(STUNCodec.AttributeType.xorRelayedAddress, in: bytes)
            let mappedValue = STUNCodec.firstAttribute(STUNCodec.AttributeType.xorMappedAddress, in: bytes)
            guard let relayed = relayedValue?.withUnsafeBytes({ STUNCodec.decodeXORAddress($0, transactionID: id) }),
                  let mapped = mappedValue?.withUnsafeBytes({ STUNCodec.decodeXORAddress($0, transactionID: id) }) else {
                return ([], [fail("Allocate answered without addresses", now: now)])
            }
            self.relayed = relayed
            self.mapped = mapped
            failure = nil
            retryWait = Self.retryFirst
            expiresAt = now.addingTimeInterval(lifetimeIn(bytes) ?? Self.lifetime)
            return ([], [.allocated(relayed: relayed, mapped: mapped)])
        case .refresh:
            expiresAt = now.addingTimeInterval(lifetimeIn(bytes) ?? Self.lifetime)
            return ([], [])
        case let .channelBind(channel, _):
            bound[channel] = now
            let waiting = held.removeValue(forKey: channel) ?? []
            return (waiting.map { payload in payload.withUnsafeBytes { ChannelData.frame(channel: channel, payload: $0) } }, [])
        }
    }

    private func lifetimeIn(_ bytes: [UInt8]) -> TimeInterval? {
        guard let value = STUNCodec.firstAttribute(STUNCodec.AttributeType.lifetime, in: bytes), value.count == 4 else { return nil }
        return TimeInterval(value.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }

    /// When `poll` has something to do.
    package var nextDeadline: Date {
        var deadlines = transactions.values.map { $0.sentAt.addingTimeInterval(Self.retransmitAfter) }
        if relayed != nil { deadlines.append(expiresAt.addingTimeInterval(-Self.lifetime / 5)) }
        if let retryAt { deadlines.append(retryAt) }
        for (_, confirmed) in bound { deadlines.append(confirmed.addingTimeInterval(Self.channelLifetime / 2)) }
        return deadlines.min() ?? .distantFuture
    }

    /// Retransmissions, the allocation's refresh (a fifth of its lifetime ahead) and channel refreshes
    /// (halfway through theirs).
    package mutating func poll(now: Date) -> (send: [[UInt8]], events: [Event]) {
        var out: [[UInt8]] = []
        var events: [Event] = []
        if let retryAt, now >= retryAt {
            // From scratch: a fresh realm and nonce, as at the start.
            self.retryAt = nil
            realm = ""
            nonce = ""
            out.append(send(.allocate, now: now))
        }
        for (id, transaction) in transactions where now.timeIntervalSince(transaction.sentAt) >= Self.retransmitAfter {
            if transaction.attempts >= Self.attempts {
                transactions[id] = nil
                if case .allocate = transaction.request, relayed == nil {
                    events.append(fail("the relay did not answer", now: now))
                    break
                }
                if case let .channelBind(channel, peer) = transaction.request, bound[channel] == nil { forget(channel: channel, peer: peer) }
                continue
            }
            transactions[id]!.attempts += 1
            transactions[id]!.sentAt = now
            out.append(transaction.bytes)
        }
        let refreshing = transactions.values.contains { if case .refresh = $0.request { true } else { false } }
        if relayed != nil, !refreshing, now >= expiresAt.addingTimeInterval(-Self.lifetime / 5) {
            out.append(send(.refresh, now: now))
        }
        for (channel, confirmed) in bound where now >= confirmed.addingTimeInterval(Self.channelLifetime / 2) {
            guard let peer = peers[channel] else { continue }
            bound[channel] = now  // pending again counts from now; the answer confirms it
            out.append(send(.channelBind(channel, peer), now: now))
        }
        return (out, events)
    }
}
