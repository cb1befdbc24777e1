import Foundation
import Testing
import WireGuard

/// A responder under load answers with a cookie reply; the initiator's next initiation carries the
/// cookie in MAC2, which the responder accepts from that source only, for as long as its secret lives.
@Suite struct CookieTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    static let source = CookieResponder.source(address: [198, 51, 100, 7], port: 51000)

    @Test func theNextInitiationCarriesTheCookie() throws {
        let initiatorKey = StaticKey.generate()
        let responderKey = StaticKey.generate()
        var peer = Peer(local: initiatorKey, remoteStatic: responderKey.publicKey)
        let responder = CookieResponder(local: responderKey.publicKey, now: Self.start)
        let first = try #require(peer.send([1], now: Self.start).first)
        guard case let .datagram(initiation) = first else { Issue.record("no initiation"); return }
        #expect(Handshake.hasValidMAC1(initiation, to: responderKey.publicKey))
        #expect(!responder.hasValidMAC2(initiation, from: Self.source, now: Self.start), "no cookie yet: MAC2 is zeros")

        let reply = try #require(responder.reply(to: initiation, from: Self.source, now: Self.start))
        #expect(reply.count == CookieResponder.replySize && reply.first == 3)
        #expect(peer.receive(reply, now: Self.start).isEmpty, "the cookie is kept, nothing sent at once")
        let retried = peer.tick(now: Self.start.addingTimeInterval(Peer.Limits.rekeyTimeout))
        guard case let .datagram(second)? = retried.first else { Issue.record("no retry"); return }
        #expect(responder.hasValidMAC2(second, from: Self.source, now: Self.start.addingTimeInterval(5)), "MAC2 made with the cookie")
        #expect(!responder.hasValidMAC2(second, from: CookieResponder.source(address: [198, 51, 100, 8], port: 51000),
                                        now: Self.start.addingTimeInterval(5)), "another source's cookie differs")
        #expect(!responder.hasValidMAC2(second, from: Self.source, now: Self.start.addingTimeInterval(CookieResponder.secretLifetime + 1)),
                "the secret changed: the cookie is stale")
        #expect(Handshake.respond(to: second, local: responderKey, localIndex: 1) { _ in [UInt8](repeating: 0, count: 32) } != nil,
                "the initiation itself is still valid")
    }

    @Test func aReplyForAnotherMessageIsIgnored() throws {
        let responderKey = StaticKey.generate()
        var peer = Peer(local: .generate(), remoteStatic: responderKey.publicKey)
        var other = Peer(local: .generate(), remoteStatic: responderKey.publicKey)
        let responder = CookieResponder(local: responderKey.publicKey, now: Self.start)
        guard case let .datagram(mine)? = peer.send([1], now: Self.start).first,
              case let .datagram(theirs)? = other.send([1], now: Self.start).first else { Issue.record("no initiations"); return }
        var reply = try #require(responder.reply(to: theirs, from: Self.source, now: Self.start))
        reply.replaceSubrange(4..<8, with: Array(mine[4..<8]))  // addressed to our index, sealed for their MAC1
        _ = peer.receive(reply, now: Self.start)
        guard case let .datagram(retry)? = peer.tick(now: Self.start.addingTimeInterval(5)).first else { Issue.record("no retry"); return }
        #expect(Array(retry[132..<148]) == [UInt8](repeating: 0, count: 16), "a reply that does not open leaves MAC2 empty")
    }
}
