import Foundation
import Testing
import WireGuard

/// The handshake and transport between two peers of ours: the keys agree, data goes both ways, and
/// what must be refused is (a wrong preshared key, a stranger, a bad MAC1, a replay, a changed byte).
@Suite struct HandshakeTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000.25)

    @Test func bothSidesDeriveTheSameKeysAndDataFlowsBothWays() throws {
        let initiatorKey = StaticKey.generate()
        let responderKey = StaticKey.generate()
        let psk = Sodium.randomBytes(32)
        let initiator = try #require(Handshake.Initiator(local: initiatorKey, remoteStatic: responderKey.publicKey, presharedKey: psk,
                                                         localIndex: 7, now: Self.now))
        #expect(initiator.message.count == Handshake.initiationSize)
        let response = try #require(Handshake.respond(to: initiator.message, local: responderKey, localIndex: 9) {
            $0 == initiatorKey.publicKey ? psk : nil
        })
        #expect(response.initiatorStatic == initiatorKey.publicKey)
        #expect(response.timestamp == Handshake.timestamp(Self.now))
        #expect(response.message.count == Handshake.responseSize)
        let keys = try #require(initiator.consume(response: response.message))
        #expect(keys.sending == response.keys.receiving && keys.receiving == response.keys.sending)
        #expect(keys.remoteIndex == 9 && response.keys.remoteIndex == 7)

        var a = TransportSession(keys: keys)
        var b = TransportSession(keys: response.keys)
        let packet = Array("a packet of 23 bytes!!!".utf8)
        let sealedSealed = a.seal(packet)
        let sealed = try #require(sealedSealed)
        #expect(sealed.count == 16 + 32 + 16, "header, padded payload, tag")
        let opened = b.open(sealed)
        #expect(try #require(opened).prefix(packet.count) == packet[...])
        let replayed = b.open(sealed)
        #expect(replayed == nil, "a replay is refused")
        let changedSealed = a.seal(packet)
        var changed = try #require(changedSealed)
        changed[20] ^= 1
        let tampered = b.open(changed)
        #expect(tampered == nil, "a changed byte is refused")
        let backSealed = b.seal([1, 2, 3])
        let back = try #require(backSealed)
        let openedBack = a.open(back)
        #expect(try #require(openedBack).prefix(3) == [1, 2, 3])
    }

    @Test func whatMustBeRefusedIs() throws {
        let initiatorKey = StaticKey.generate()
        let responderKey = StaticKey.generate()
        let psk = Sodium.randomBytes(32)
        let initiator = try #require(Handshake.Initiator(local: initiatorKey, remoteStatic: responderKey.publicKey, presharedKey: psk,
                                                         localIndex: 1, now: Self.now))
        #expect(Handshake.respond(to: initiator.message, local: responderKey, localIndex: 2) { _ in nil } == nil, "a stranger")
        var badMAC = initiator.message
        badMAC[120] ^= 1
        #expect(Handshake.respond(to: badMAC, local: responderKey, localIndex: 2) { _ in psk } == nil, "MAC1")
        #expect(Handshake.respond(to: initiator.message, local: StaticKey.generate(), localIndex: 2) { _ in psk } == nil, "addressed to another")
        let wrongPSK = try #require(Handshake.respond(to: initiator.message, local: responderKey, localIndex: 2) { _ in Sodium.randomBytes(32) })
        #expect(initiator.consume(response: wrongPSK.message) == nil, "the preshared keys differ")
    }

    /// Counters arriving out of order within the window are taken once each; older ones are not.
    @Test func theReplayWindowTakesEachCounterOnce() throws {
        let keys = SessionKeys(sending: Sodium.randomBytes(32), receiving: Sodium.randomBytes(32), localIndex: 1, remoteIndex: 1)
        var sender = TransportSession(keys: SessionKeys(sending: keys.receiving, receiving: keys.sending, localIndex: 1, remoteIndex: 1))
        var receiver = TransportSession(keys: keys)
        let messages = (0..<3000).compactMap { _ in sender.seal([0xAB]) }
        var results: [Bool] = []
        for index in [2999, 1000, 1000, 900] { results.append(receiver.open(messages[index]) != nil) }
        #expect(results == [true, true, false, false], "the highest; within 2,048 of it; the same again; older than the window")
        for index in stride(from: 2998, to: 2990, by: -1) {
            let opened = receiver.open(messages[index])
            #expect(opened != nil, "counter \(index), out of order but new")
        }
    }
}
