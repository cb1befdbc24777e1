import Foundation
import Testing
import WireGuard

/// Two peers of ours with a network the test carries by hand, and a clock the test steps: the first
/// packet makes the handshake, data flows both ways, a session is renewed after REKEY-AFTER-TIME
/// without a packet lost, a lost initiation is sent again every REKEY-TIMEOUT until REKEY-ATTEMPT-TIME,
/// a keepalive answers data that got no reply, a replayed initiation is refused, and keys older than
/// REJECT-AFTER-TIME carry nothing.
@Suite struct PeerTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func pair() -> (Peer, Peer) {
        let a = StaticKey.generate()
        let b = StaticKey.generate()
        let psk = Sodium.randomBytes(32)
        return (Peer(local: a, remoteStatic: b.publicKey, presharedKey: psk), Peer(local: b, remoteStatic: a.publicKey, presharedKey: psk))
    }

    static func datagrams(_ outputs: [PeerOutput]) -> [[UInt8]] {
        outputs.compactMap { if case let .datagram(bytes) = $0 { bytes } else { nil } }
    }

    static func packets(_ outputs: [PeerOutput]) -> [[UInt8]] {
        outputs.compactMap { if case let .packet(bytes) = $0 { Array(bytes) } else { nil } }
    }

    /// Hands every datagram of `outputs` to `peer`, and what it answers back to `other`, until both
    /// are quiet; the packets each delivered.
    static func carry(_ outputs: [PeerOutput], from a: inout Peer, to b: inout Peer, now: Date) -> (atA: [[UInt8]], atB: [[UInt8]]) {
        var towardB = datagrams(outputs)
        var towardA: [[UInt8]] = []
        var atA: [[UInt8]] = []
        var atB: [[UInt8]] = []
        while !towardB.isEmpty || !towardA.isEmpty {
            for datagram in towardB {
                let answer = b.receive(datagram, now: now)
                atB += packets(answer)
                towardA += datagrams(answer)
            }
            towardB = []
            for datagram in towardA {
                let answer = a.receive(datagram, now: now)
                atA += packets(answer)
                towardB += datagrams(answer)
            }
            towardA = []
        }
        return (atA, atB)
    }

    @Test func theFirstPacketMakesTheHandshakeAndDataFlowsBothWays() {
        var (a, b) = Self.pair()
        let first = a.send(Array("first".utf8), now: Self.start)
        #expect(Self.datagrams(first).map(\.first) == [1], "a handshake initiation, the packet held")
        let delivered = Self.carry(first, from: &a, to: &b, now: Self.start)
        #expect(delivered.atB.map { Array($0.prefix(5)) } == [Array("first".utf8)], "the held packet arrives once the handshake is done")
        #expect(a.hasSession(now: Self.start) && b.hasSession(now: Self.start))
        let back = Self.carry(b.send(Array("reply".utf8), now: Self.start), from: &b, to: &a, now: Self.start)
        #expect(back.atB.map { Array($0.prefix(5)) } == [Array("reply".utf8)])
    }

    @Test func aSessionIsRenewedAfterRekeyAfterTimeWithoutLosingData() {
        var (a, b) = Self.pair()
        _ = Self.carry(a.send([1], now: Self.start), from: &a, to: &b, now: Self.start)
        let later = Self.start.addingTimeInterval(Peer.Limits.rekeyAfterTime + 1)
        // B's data sealed under the old session, still in flight while A renews.
        let inFlight = Self.datagrams(b.send([9], now: later))
        let renewal = a.send([2], now: later)
        #expect(Self.datagrams(renewal).map(\.first) == [4, 1], "the data, then a new initiation")
        let delivered = Self.carry(renewal, from: &a, to: &b, now: later)
        #expect(delivered.atB.map(\.first) == [2])
        #expect(Self.packets(a.receive(inFlight[0], now: later)).map(\.first) == [9], "the previous session still opens what was in flight")
        let afterwards = Self.carry(b.send([3], now: later), from: &b, to: &a, now: later)
        #expect(afterwards.atB.map(\.first) == [3], "the new session carries data")
        let stillLater = Self.start.addingTimeInterval(Peer.Limits.rejectAfterTime + 30)
        #expect(a.hasSession(now: stillLater) && b.hasSession(now: stillLater), "the renewed session outlives the first one's REJECT-AFTER-TIME")
    }

    @Test func aLostInitiationIsSentAgainUntilTheAttemptTimeRunsOut() {
        var (a, b) = Self.pair()
        let lost = a.send([1], now: Self.start)
        #expect(Self.datagrams(lost).count == 1)
        #expect(a.nextDeadline() == Self.start.addingTimeInterval(Peer.Limits.rekeyTimeout))
        let retry = a.tick(now: Self.start.addingTimeInterval(Peer.Limits.rekeyTimeout))
        #expect(Self.datagrams(retry).map(\.first) == [1])
        #expect(Self.datagrams(retry) != Self.datagrams(lost), "a fresh initiation, not the same bytes")
        let delivered = Self.carry(retry, from: &a, to: &b, now: Self.start.addingTimeInterval(Peer.Limits.rekeyTimeout))
        #expect(delivered.atB.map(\.first) == [1], "the held packet arrives after the retry")

        var (c, _) = Self.pair()
        _ = c.send([1], now: Self.start)
        var initiations = 1
        var time = Self.start
        while time < Self.start.addingTimeInterval(Peer.Limits.rekeyAttemptTime + 20) {
            time = time.addingTimeInterval(Peer.Limits.rekeyTimeout)
            initiations += Self.datagrams(c.tick(now: time)).count
        }
        #expect(initiations == Int(Peer.Limits.rekeyAttemptTime / Peer.Limits.rekeyTimeout), "one every 5 s for 90 s, then it gives up")
    }

    @Test func aKeepaliveAnswersDataThatGotNoReply() {
        var (a, b) = Self.pair()
        _ = Self.carry(a.send([1], now: Self.start), from: &a, to: &b, now: Self.start)
        #expect(Self.datagrams(b.tick(now: Self.start.addingTimeInterval(5))).isEmpty)
        let keepalive = Self.datagrams(b.tick(now: Self.start.addingTimeInterval(Peer.Limits.keepaliveTimeout)))
        #expect(keepalive.count == 1 && keepalive.first?.first == 4 && keepalive.first?.count == 32, "an empty transport message")
        #expect(a.receive(keepalive[0], now: Self.start.addingTimeInterval(10)).isEmpty, "a keepalive delivers nothing")
        #expect(Self.datagrams(b.tick(now: Self.start.addingTimeInterval(25))).isEmpty, "owed once")
    }

    /// Data that keeps coming does not push the keepalive back: a client that only sends hears from
    /// us every KEEPALIVE-TIMEOUT (else it would take the silence for a dead session and start over).
    @Test func aSteadySenderGetsAKeepaliveEveryKeepaliveTimeout() {
        var (a, b) = Self.pair()
        _ = Self.carry(a.send([1], now: Self.start), from: &a, to: &b, now: Self.start)
        var keepalivesAt: [Int] = []
        for second in 1...30 {
            let now = Self.start.addingTimeInterval(TimeInterval(second))
            for datagram in Self.datagrams(a.send([UInt8(second)], now: now)) { _ = b.receive(datagram, now: now) }
            if !Self.datagrams(b.tick(now: now)).isEmpty { keepalivesAt.append(second) }
        }
        #expect(keepalivesAt == [10, 21], "due 10 s after the first data since we last sent: at 0 then at 11")
    }

    @Test func aReplayedInitiationIsRefused() {
        var (a, b) = Self.pair()
        let initiation = Self.datagrams(a.send([1], now: Self.start))[0]
        #expect(Self.datagrams(b.receive(initiation, now: Self.start)).count == 1)
        #expect(b.receive(initiation, now: Self.start.addingTimeInterval(1)) == [.dropped(.replayedHandshake)], "the same timestamp again")
    }

    @Test func keysOlderThanRejectAfterTimeCarryNothing() {
        var (a, b) = Self.pair()
        _ = Self.carry(a.send([1], now: Self.start), from: &a, to: &b, now: Self.start)
        let old = Self.start.addingTimeInterval(Peer.Limits.rejectAfterTime + 1)
        #expect(!a.hasSession(now: old))
        let stale = Self.datagrams(b.send([5], now: Self.start.addingTimeInterval(1)))
        #expect(a.receive(stale[0], now: old) == [.dropped(.expired)], "data under expired keys is dropped")
        #expect(Self.datagrams(a.send([6], now: old)).map(\.first) == [1], "a packet after the keys expired starts a handshake")
    }

    /// Bad transport data is dropped with its reason and changes nothing: the session carries the
    /// next packet as before.
    @Test func badDataIsDroppedForItsReasonAndTheSessionGoesOn() {
        var (a, b) = Self.pair()
        _ = Self.carry(a.send([1], now: Self.start), from: &a, to: &b, now: Self.start)
        let message = Self.datagrams(a.send(Array("payload".utf8), now: Self.start))[0]
        #expect(Self.packets(b.receive(message, now: Self.start)).count == 1)
        #expect(b.receive(message, now: Self.start) == [.dropped(.replayed)], "the same counter again")
        var forged = Self.datagrams(a.send(Array("payload".utf8), now: Self.start))[0]
        forged[20] ^= 0x40
        #expect(b.receive(forged, now: Self.start) == [.dropped(.unauthenticated)], "a flipped bit fails the tag")
        var stranger = forged
        stranger[4] ^= 0xFF
        #expect(b.receive(stranger, now: Self.start) == [.dropped(.unknownSession)], "an index nobody holds")
        #expect(b.receive(Array(message.prefix(20)), now: Self.start) == [.dropped(.malformed)], "truncated")
        #expect(b.receive([9, 0, 0, 0] + message.dropFirst(4), now: Self.start) == [.dropped(.malformed)], "an unknown type")
        #expect(b.receive(Array(message.prefix(100)) + [0], now: Self.start) != [], "nothing else came of it")
        let next = Self.datagrams(a.send(Array("still here".utf8), now: Self.start))[0]
        #expect(Self.packets(b.receive(next, now: Self.start)).map { Array($0.prefix(10)) } == [Array("still here".utf8)])
    }

    /// The runtime's fast paths, sealing into and opening in the caller's memory, agree with the
    /// array ones (the same messages, the same replay window).
    @Test func sealingAndOpeningInPlaceAgreeWithTheArrayPaths() throws {
        var (a, b) = Self.pair()
        _ = Self.carry(a.send([1], now: Self.start), from: &a, to: &b, now: Self.start)
        for size in [0, 1, 15, 16, 17, 1280, 1420] {
            let packet = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var message = [UInt8](repeating: 0xEE, count: 1500)
            let sealed = packet.withUnsafeBytes { packet in message.withUnsafeMutableBytes { a.seal(packet, into: $0, now: Self.start) } }
            let length = try #require(sealed)
            #expect(length == 32 + (size + 15) / 16 * 16)
            message = Array(message.prefix(length))
            var owed: [PeerOutput] = []
            var copy = message
            let range = try copy.withUnsafeMutableBytes { try b.open(inPlace: $0, now: Self.start, outputs: &owed) }
            #expect(Array(copy[range].prefix(size)) == packet && copy[range].dropFirst(size).allSatisfy { $0 == 0 }, "size \(size)")
            #expect(b.receive(message, now: Self.start) == [.dropped(.replayed)], "the in-place open moved the window")
        }
        #expect(throws: WireGuardDrop.unknownSession) {
            var garbage = [UInt8](repeating: 0, count: 64)
            garbage[0] = 4
            var owed: [PeerOutput] = []
            _ = try garbage.withUnsafeMutableBytes { try b.open(inPlace: $0, now: Self.start, outputs: &owed) }
        }
    }
}
