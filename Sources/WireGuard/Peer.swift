package import Foundation

/// What a peer asks of its runtime: a datagram to send to the remote endpoint, a packet that came
/// out of the tunnel for the TUN device, or a note that something was dropped and why (to count).
package enum PeerOutput: Equatable, Sendable {
    case datagram([UInt8])
    case packet([UInt8])
    case dropped(WireGuardDrop)
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
    /// When a keepalive is owed: KEEPALIVE-TIMEOUT after the first data that came in since this end
    /// last sent anything (later data does not push it back; sending anything clears it).
    private var keepaliveDue: Date?

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
            keepaliveDue = nil
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
        guard datagram.count >= 4, datagram[1] == 0, datagram[2] == 0, datagram[3] == 0 else { return [.dropped(.malformed)] }
        switch datagram[0] {
        case 1:
            guard datagram.count == Handshake.initiationSize else { return [.dropped(.malformed)] }
            var stranger = false
            guard let response = Handshake.respond(to: datagram, local: local, localIndex: newIndex(), presharedKey: { [remoteStatic, presharedKey] in
                if Sodium.equal($0, remoteStatic) { return presharedKey }
                stranger = true
                return nil
            }) else { return [.dropped(stranger ? .unknownKey : .invalidHandshake)] }
            return accept(response, now: now)
        case 2:
            guard datagram.count == Handshake.responseSize else { return [.dropped(.malformed)] }
            guard let handshake, Handshake.readLE32(datagram, at: 8) == handshake.localIndex else { return [.dropped(.unknownSession)] }
            guard let keys = handshake.consume(response: datagram) else { return [.dropped(.invalidHandshake)] }
            self.handshake = nil
            handshakeStarted = nil
            handshakeSent = nil
            previous = current
            current = Session(transport: TransportSession(keys: keys), established: now, isInitiator: true)
            var outputs = flushQueue(now: now)
            // The responder takes the session once data comes: a keepalive confirms it at once.
            if outputs.isEmpty, let keepalive = sealCurrent([], now: now) { outputs.append(keepalive) }
            return outputs
        case 4:
            var message = datagram
            var outputs: [PeerOutput] = []
            do {
                let range = try message.withUnsafeMutableBytes { buffer throws(WireGuardDrop) in try open(inPlace: buffer, now: now, outputs: &outputs) }
                if !range.isEmpty { outputs.insert(.packet(Array(message[range])), at: 0) }
            } catch let reason as WireGuardDrop {
                outputs.append(.dropped(reason))
            } catch {
                outputs.append(.dropped(.malformed))
            }
            return outputs
        case 3:
            // A cookie reply to our initiation: the next one carries the cookie in MAC2 (sent at the
            // next retry, as the paper says, not at once).
            guard datagram.count == CookieResponder.replySize else { return [.dropped(.malformed)] }
            guard let handshake, Handshake.readLE32(datagram, at: 4) == handshake.localIndex else { return [.dropped(.unknownSession)] }
            guard let value = CookieResponder.open(datagram, mac1: Array(handshake.message[116..<132]), remote: remoteStatic) else {
                return [.dropped(.invalidHandshake)]
            }
            cookie = (value, now)
            return []
        default:
            return [.dropped(.malformed)]
        }
    }

    /// Transport data opened where it lies (the runtime's fast path, no copy): the range of the packet
    /// in `message` (padding included; empty for a keepalive). Datagrams owed now (packets held until
    /// this session was confirmed) are appended to `outputs`.
    package mutating func open(inPlace message: UnsafeMutableRawBufferPointer, now: Date,
                               outputs: inout [PeerOutput]) throws(WireGuardDrop) -> Range<Int> {
        guard message.count >= 32 else { throw .malformed }
        let index = UInt32(littleEndian: message.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let range: Range<Int>
        if next?.transport.keys.localIndex == index {
            range = try next!.transport.open(inPlace: message)
            // The initiator's first data confirms the session we answered.
            previous = current
            current = next
            next = nil
        } else if current?.transport.keys.localIndex == index {
            guard now.timeIntervalSince(current!.established) < Limits.rejectAfterTime else { throw .expired }
            range = try current!.transport.open(inPlace: message)
        } else if previous?.transport.keys.localIndex == index {
            guard now.timeIntervalSince(previous!.established) < Limits.rejectAfterTime else { throw .expired }
            range = try previous!.transport.open(inPlace: message)
        } else {
            throw .unknownSession
        }
        if !range.isEmpty, keepaliveDue == nil { keepaliveDue = now.addingTimeInterval(Limits.keepaliveTimeout) }
        if !queue.isEmpty { outputs += flushQueue(now: now) }
        return range
    }

    /// Seals a packet into `message` when the current session can carry it now and no handshake is
    /// due (the runtime's fast path): the message's length; nil when `send` must take the packet.
    package mutating func seal(_ packet: UnsafeRawBufferPointer, into message: UnsafeMutableRawBufferPointer, now: Date) -> Int? {
        guard let established = current?.established, let isInitiator = current?.isInitiator,
              let counter = current?.transport.sendCounter else { return nil }
        let age = now.timeIntervalSince(established)
        guard age < Limits.rejectAfterTime, counter < TransportSession.rejectAfterMessages,
              !(isInitiator && handshake == nil && (age >= Limits.rekeyAfterTime || counter >= Limits.rekeyAfterMessages)),
              let length = current!.transport.seal(packet, into: message) else { return nil }
        keepaliveDue = nil
        return length
    }

    /// Takes an initiation this peer's responder already answered (a runtime serving many peers
    /// opens the initiation first to learn whose it is): refused when its timestamp is not later than
    /// every one seen from this peer (a replay, the paper's 5.1), else the response to send.
    package mutating func accept(_ response: Handshake.Response, now: Date) -> [PeerOutput] {
        guard Sodium.equal(response.initiatorStatic, remoteStatic) else { return [.dropped(.unknownKey)] }
        guard Self.isLater(response.timestamp, than: greatestTimestamp) else { return [.dropped(.replayedHandshake)] }
        greatestTimestamp = response.timestamp
        // A session answered before and never confirmed is replaced (its initiator gave up on it).
        let unconfirmed: [PeerOutput] = next == nil ? [] : [.dropped(.unconfirmedSession)]
        next = Session(transport: TransportSession(keys: response.keys), established: now, isInitiator: false)
        return [.datagram(response.message)] + unconfirmed
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
        if let due = keepaliveDue, now >= due {
            keepaliveDue = nil
            if let keepalive = sealCurrent([], now: now) { outputs.append(keepalive) }
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
        if let due = keepaliveDue { deadlines.append(due) }
        for session in [current, previous, next].compactMap({ $0 }) {
            deadlines.append(session.established.addingTimeInterval(3 * Limits.rejectAfterTime))
        }
        return deadlines.min()
    }

    /// A handshake under way is sent again now (a fresh initiation): the runtime learnt a better way to
    /// the remote endpoint than the one the last one went to. Nothing when none is under way.
    package mutating func retryHandshake(now: Date) -> [PeerOutput] {
        guard handshake != nil else { return [] }
        return retransmit(now: now)
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
        keepaliveDue = nil
        return .datagram(sealed)
    }

    /// TAI64N timestamps compare as big-endian bytes.
    static func isLater(_ timestamp: [UInt8], than other: [UInt8]) -> Bool {
        other.isEmpty || timestamp.lexicographicallyPrecedes(other) == false && timestamp != other
    }
}
