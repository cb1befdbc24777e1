package import Foundation

/// What a peer asks of its runtime: a datagram to send to the remote endpoint, or a packet that came
/// out of the tunnel for the TUN device.
package enum PeerOutput: Equatable, Sendable {
    case datagram([UInt8])
    case packet([UInt8])
}

/// One WireGuard peer in the sans-IO shape of the TURN core (the paper's section 6): datagrams,
/// packets and the time come in; datagrams to send, packets to deliver and the next deadline go out.
/// It keeps the current, previous and next transport sessions, initiates and retries handshakes,
/// rekeys, sends keepalives, refuses replayed initiations, and forgets keys that are too old.
package struct Peer: Sendable {
    /// The protocol's timers and limits (the paper's section 6.1).
    package enum Limits {
        package static let rekeyAfterMessages: UInt64 = 1 << 60
        package static let rekeyAfterTime: TimeInterval = 120
        package static let rejectAfterTime: TimeInterval = 180
        package static let rekeyAttemptTime: TimeInterval = 90
        package static let rekeyTimeout: TimeInterval = 5
        package static let keepaliveTimeout: TimeInterval = 10
        /// Packets held while a handshake is under way.
        package static let queuedPackets = 64
    }

    private struct Session {
        var transport: TransportSession
        var established: Date
        var isInitiator: Bool
    }

    package let local: StaticKey
    package let remoteStatic: [UInt8]
    package let presharedKey: [UInt8]
    private let newIndex: @Sendable () -> UInt32

    private var current: Session?
    private var previous: Session?
    /// A responder's session, until the initiator's first data confirms it.
    private var next: Session?
    private var handshake: Handshake.Initiator?
    private var handshakeStarted: Date?
    private var handshakeSent: Date?
    private var queue: [[UInt8]] = []
    /// A cookie from the responder's cookie reply, with when it came (valid for two minutes).
    private var cookie: (value: [UInt8], received: Date)?
    private var greatestTimestamp: [UInt8] = []
    private var lastReceived: Date?
    /// Whether data came in and nothing was sent since (a keepalive is owed KEEPALIVE-TIMEOUT after it).
    private var owesKeepalive = false

    package init(local: StaticKey, remoteStatic: [UInt8], presharedKey: [UInt8] = [UInt8](repeating: 0, count: 32),
                 newIndex: @escaping @Sendable () -> UInt32 = { UInt32.random(in: 1...UInt32.max) }) {
        self.local = local
        self.remoteStatic = remoteStatic
        self.presharedKey = presharedKey
        self.newIndex = newIndex
    }

    /// Whether a session can carry data now.
    package func hasSession(now: Date) -> Bool {
        guard let current else { return false }
        return now.timeIntervalSince(current.established) < Limits.rejectAfterTime
            && current.transport.sendCounter < TransportSession.rejectAfterMessages
    }

    /// The local indexes this peer answers to (the runtime routes transport data by them).
    package var indexes: [UInt32] {
        [current, previous, next].compactMap { $0?.transport.keys.localIndex } + (handshake.map { [$0.localIndex] } ?? [])
    }

    /// A packet from the TUN for this peer: sealed at once, or held while a handshake is made.
    package mutating func send(_ packet: [UInt8], now: Date) -> [PeerOutput] {
        var outputs: [PeerOutput] = []
        if hasSession(now: now), var session = current, let sealed = session.transport.seal(packet) {
            current = session
            owesKeepalive = false
            outputs.append(.datagram(sealed))
            // The initiator of an ageing session makes the next one before it must stop.
            if session.isInitiator, handshake == nil,
               now.timeIntervalSince(session.established) >= Limits.rekeyAfterTime || session.transport.sendCounter >= Limits.rekeyAfterMessages {
                outputs += initiate(now: now)
            }
            return outputs
        }
        if queue.count >= Limits.queuedPackets { queue.removeFirst() }
        queue.append(packet)
        if handshake == nil { outputs += initiate(now: now) }
        return outputs
    }

    /// A datagram from the remote endpoint.
    package mutating func receive(_ datagram: [UInt8], now: Date) -> [PeerOutput] {
        guard let type = datagram.first else { return [] }
        switch type {
        case 1:
            guard let response = Handshake.respond(to: datagram, local: local, localIndex: newIndex(), presharedKey: { [remoteStatic, presharedKey] in
                Sodium.equal($0, remoteStatic) ? presharedKey : nil
            }) else { return [] }
            return accept(response, now: now)
        case 2:
            guard let handshake, let keys = handshake.consume(response: datagram) else { return [] }
            self.handshake = nil
            handshakeStarted = nil
            handshakeSent = nil
            previous = current
            current = Session(transport: TransportSession(keys: keys), established: now, isInitiator: true)
            lastReceived = now
            var outputs = flushQueue(now: now)
            // The responder takes the session once data comes: a keepalive confirms it at once.
            if outputs.isEmpty, let keepalive = sealCurrent([], now: now) { outputs.append(keepalive) }
            return outputs
        case 4:
            guard datagram.count >= 32 else { return [] }
            let index = (0..<4).reduce(UInt32(0)) { $0 | UInt32(datagram[4 + $1]) << (8 * UInt32($1)) }
            var packet: [UInt8]?
            if var session = next, session.transport.keys.localIndex == index, let opened = session.transport.open(datagram) {
                // The initiator's first data confirms the session we answered.
                previous = current
                current = session
                next = nil
                packet = opened
            } else if var session = current, session.transport.keys.localIndex == index,
                      now.timeIntervalSince(session.established) < Limits.rejectAfterTime, let opened = session.transport.open(datagram) {
                current = session
                packet = opened
            } else if var session = previous, session.transport.keys.localIndex == index,
                      now.timeIntervalSince(session.established) < Limits.rejectAfterTime, let opened = session.transport.open(datagram) {
                previous = session
                packet = opened
            }
            guard let packet else { return [] }
            lastReceived = now
            var outputs: [PeerOutput] = []
            if !packet.isEmpty {
                owesKeepalive = true
                outputs.append(.packet(packet))
            }
            outputs += flushQueue(now: now)
            return outputs
        case 3:
            // A cookie reply to our initiation: the next one carries the cookie in MAC2 (sent at the
            // next retry, as the paper says, not at once).
            guard let handshake, datagram.count == CookieResponder.replySize,
                  (0..<4).reduce(UInt32(0), { $0 | UInt32(datagram[4 + $1]) << (8 * UInt32($1)) }) == handshake.localIndex,
                  let value = CookieResponder.open(datagram, mac1: Array(handshake.message[116..<132]), remote: remoteStatic) else { return [] }
            cookie = (value, now)
            return []
        default:
            return []
        }
    }

    /// Takes an initiation this peer's responder already answered (a runtime serving many peers
    /// opens the initiation first to learn whose it is): refused when its timestamp is not later than
    /// every one seen from this peer (a replay, the paper's 5.1), else the response to send.
    package mutating func accept(_ response: Handshake.Response, now: Date) -> [PeerOutput] {
        guard Sodium.equal(response.initiatorStatic, remoteStatic), Self.isLater(response.timestamp, than: greatestTimestamp) else { return [] }
        greatestTimestamp = response.timestamp
        next = Session(transport: TransportSession(keys: response.keys), established: now, isInitiator: false)
        return [.datagram(response.message)]
    }

    /// Timers: handshake retries (every REKEY-TIMEOUT, for REKEY-ATTEMPT-TIME), the keepalive owed
    /// after data came in, and forgetting sessions too old to use.
    package mutating func tick(now: Date) -> [PeerOutput] {
        var outputs: [PeerOutput] = []
        if handshake != nil, let sent = handshakeSent, now.timeIntervalSince(sent) >= Limits.rekeyTimeout {
            if let started = handshakeStarted, now.timeIntervalSince(started) >= Limits.rekeyAttemptTime {
                handshake = nil
                handshakeStarted = nil
                handshakeSent = nil
                queue.removeAll()
            } else {
                outputs += retransmit(now: now)
            }
        }
        if owesKeepalive, let received = lastReceived, now.timeIntervalSince(received) >= Limits.keepaliveTimeout,
           let keepalive = sealCurrent([], now: now) {
            outputs.append(keepalive)
        }
        for keyPath in [\Peer.current, \Peer.previous, \Peer.next] {
            if let session = self[keyPath: keyPath], now.timeIntervalSince(session.established) >= 3 * Limits.rejectAfterTime {
                self[keyPath: keyPath] = nil
            }
        }
        return outputs
    }

    /// When `tick` has something to do next, if ever.
    package func nextDeadline() -> Date? {
        var deadlines: [Date] = []
        if handshake != nil, let sent = handshakeSent { deadlines.append(sent.addingTimeInterval(Limits.rekeyTimeout)) }
        if owesKeepalive, let received = lastReceived { deadlines.append(received.addingTimeInterval(Limits.keepaliveTimeout)) }
        for session in [current, previous, next].compactMap({ $0 }) {
            deadlines.append(session.established.addingTimeInterval(3 * Limits.rejectAfterTime))
        }
        return deadlines.min()
    }

    private mutating func initiate(now: Date) -> [PeerOutput] {
        handshakeStarted = now
        return retransmit(now: now)
    }

    /// A fresh initiation (new ephemeral, timestamp and index each time, as the paper says).
    private mutating func retransmit(now: Date) -> [PeerOutput] {
        let validCookie = cookie.flatMap { now.timeIntervalSince($0.received) < CookieResponder.secretLifetime ? $0.value : nil }
        guard let initiator = Handshake.Initiator(local: local, remoteStatic: remoteStatic, presharedKey: presharedKey, localIndex: newIndex(),
                                                  now: now, cookie: validCookie) else { return [] }
        handshake = initiator
        handshakeSent = now
        return [.datagram(initiator.message)]
    }

    private mutating func flushQueue(now: Date) -> [PeerOutput] {
        guard hasSession(now: now) else { return [] }
        let packets = queue
        queue.removeAll()
        return packets.compactMap { sealCurrent($0, now: now) }
    }

    private mutating func sealCurrent(_ packet: [UInt8], now: Date) -> PeerOutput? {
        guard var session = current, let sealed = session.transport.seal(packet) else { return nil }
        current = session
        owesKeepalive = false
        return .datagram(sealed)
    }

    /// TAI64N timestamps compare as big-endian bytes.
    static func isLater(_ timestamp: [UInt8], than other: [UInt8]) -> Bool {
        other.isEmpty || timestamp.lexicographicallyPrecedes(other) == false && timestamp != other
    }
}
