import Actors
import Foundation
import STUN
import TestSupport
import Testing

/// RFC 8489 authentication over real UDP: MESSAGE-INTEGRITY-SHA256 answered in kind, 438 for a nonce
/// that expired or was used up (with a fresh one that works), SOFTWARE in every response (issue #10,
/// item 10).
@Suite(.serialized) struct RelayStandardsTests {
    @Test func aRequestSignedWithSHA256IsAnsweredWithSHA256() async throws {
        let relay = try await RelayProcess.start(ipv6: false)
        defer { relay.process.stop() }
        let client = try relay.client(id: "sha256")
        client.integrity = .sha256
        let reply = try #require(try client.allocate())
        #expect(reply.isSuccess, "error \(reply.errorCode ?? 0)")
        #expect(reply.hasSHA256Integrity && !reply.hasIntegrity, "answered with MESSAGE-INTEGRITY-SHA256 only")
        let verified = reply.bytes.withUnsafeBytes {
            STUNCodec().verifyIntegrity($0, username: client.username, realm: client.realm, password: client.password)
        }
        #expect(verified, "the response's MESSAGE-INTEGRITY-SHA256 checks out with the long-term key")
        #expect(reply.software == "gatehouse")
        let refresh = try #require(try client.request(TURNTestClient.refresh, [.lifetime(600)]))
        #expect(refresh.isSuccess && refresh.hasSHA256Integrity)
    }

    @Test func aUsedUpNonceIs438WithAFreshOneThatWorks() async throws {
        let relay = try await RelayProcess.start(ipv6: false, extra: ["--nonce-uses", "3"])
        defer { relay.process.stop() }
        let client = try relay.client(id: "uses")
        let challenge = try #require(try client.request(TURNTestClient.allocate, [.transport(17)], authenticated: false))
        #expect(challenge.errorCode == 401 && challenge.software == "gatehouse" && challenge.nonce != nil)
        client.nonce = challenge.nonce
        #expect(try client.request(TURNTestClient.allocate, [.transport(17)])?.isSuccess == true)  // use 1
        #expect(try client.request(TURNTestClient.refresh, [.lifetime(600)])?.isSuccess == true)  // use 2
        #expect(try client.request(TURNTestClient.refresh, [.lifetime(600)])?.isSuccess == true)  // use 3
        let stale = try #require(try client.request(TURNTestClient.refresh, [.lifetime(600)]))
        #expect(stale.errorCode == 438, "the fourth use of a 3-use nonce is stale, not unauthorized")
        #expect(stale.software == "gatehouse" && stale.realm == "gatehouse")
        let fresh = try #require(stale.nonce)
        #expect(fresh != challenge.nonce)
        client.nonce = fresh
        #expect(try client.request(TURNTestClient.refresh, [.lifetime(600)])?.isSuccess == true, "the fresh nonce works")
    }

    @Test func anExpiredNonceIs438() async throws {
        let relay = try await RelayProcess.start(ipv6: false, extra: ["--nonce-lifetime", "2"])
        defer { relay.process.stop() }
        let client = try relay.client(id: "expiry")
        let issued = ContinuousClock.now
        #expect(try client.allocate()?.isSuccess == true)
        var stale: TURNTestClient.Reply?
        try await Wait.until("the nonce expires", timeout: .seconds(10)) {
            let reply = try client.request(TURNTestClient.refresh, [.lifetime(600)])
            if reply?.errorCode == 438 { stale = reply }
            return stale != nil
        }
        let elapsed = ContinuousClock.now - issued
        print("nonce with a 2 s lifetime went stale after \(elapsed)")
        #expect(elapsed >= .seconds(2), "not before its lifetime")
        client.nonce = stale?.nonce
        #expect(try client.request(TURNTestClient.refresh, [.lifetime(600)])?.isSuccess == true)
    }

    @Test func everyKindOfResponseCarriesSoftware() async throws {
        let relay = try await RelayProcess.start(ipv6: false)
        defer { relay.process.stop() }
        let client = try relay.client(id: "software")
        let binding = try #require(try client.request(0x001, authenticated: false))
        #expect(binding.isSuccess && binding.software == "gatehouse")
        let allocated = try #require(try client.allocate())
        #expect(allocated.software == "gatehouse")
        let badPeer = try #require(try client.request(TURNTestClient.createPermission, []))
        #expect(badPeer.errorCode == 400 && badPeer.software == "gatehouse")
        let mismatch = try #require(try client.request(TURNTestClient.allocate, [.transport(17)]))
        #expect(mismatch.errorCode == 437 && mismatch.software == "gatehouse")
    }
}
