import Addresses
import STUN
import TURN
import Testing

@Suite struct AllocationTests {
    let client = address("198.51.100.7", 50_000)
    let listener = address("192.0.2.1", 3478)
    let relayed4 = address("192.0.2.1", 50_001)
    let relayed6 = address("2001:db8::1", 50_001)
    let peer = address("10.1.2.3", 7000)
    let otherPeer = address("10.1.2.4", 7000)

    func allocation(dual: Bool = false) -> Allocation {
        Allocation(client: client, listener: listener, username: "1700003600:alice",
                   relayed: dual ? [relayed4, relayed6] : [relayed4], lifetime: Allocation.defaultLifetime, now: t0)
    }

    @Test func lifetimeDefaultsTo600AndIsCappedAt3600() {
        #expect(Allocation.clampLifetime(requested: nil) == .seconds(600))
        #expect(Allocation.clampLifetime(requested: 30) == .seconds(30))
        #expect(Allocation.clampLifetime(requested: 100_000) == .seconds(3600))
    }

    @Test func refreshSetsExpiryFromNowNotCumulatively() {
        var allocation = allocation()
        allocation.refresh(lifetime: .seconds(600), now: t0.adding(.seconds(100)))
        #expect(allocation.expiry == t0.monotonic + .seconds(700))
        #expect(!allocation.isExpired(now: t0.adding(.seconds(699))))
        #expect(allocation.isExpired(now: t0.adding(.seconds(700))))
    }

    @Test func permissionsLast300SecondsAndRefresh() {
        var allocation = allocation()
        allocation.installPermission(peer.ip, now: t0)
        #expect(allocation.hasPermission(peer.ip, now: t0.adding(.seconds(299))))
        #expect(!allocation.hasPermission(peer.ip, now: t0.adding(.seconds(300))))
        allocation.installPermission(peer.ip, now: t0.adding(.seconds(200)))
        #expect(allocation.hasPermission(peer.ip, now: t0.adding(.seconds(499))))
        #expect(!allocation.hasPermission(otherPeer.ip, now: t0))
        #expect(allocation.hasPermission(address("10.1.2.3", 1).ip, now: t0), "permissions are per IP, any port")
    }

    @Test func bindingInstallsARouteAndThePermission() throws {
        var allocation = allocation()
        let route = try allocation.bindChannel(0x4000, to: peer, now: t0)
        #expect(route == ChannelRoute(client: client, listener: listener, channel: 0x4000, peer: peer, relayed: relayed4))
        #expect(allocation.hasPermission(peer.ip, now: t0))
        #expect(allocation.peer(onChannel: 0x4000, now: t0) == peer)
        #expect(allocation.channel(for: peer, now: t0) == 0x4000)
        #expect(allocation.activeRoutes(now: t0) == [route])
    }

    @Test func conflictingBindingsAreRefused() throws {
        var allocation = allocation()
        _ = try allocation.bindChannel(0x4000, to: peer, now: t0)
        #expect(throws: Allocation.BindError.numberInUse) { _ = try allocation.bindChannel(0x4000, to: otherPeer, now: t0) }
        #expect(throws: Allocation.BindError.peerBoundToAnotherNumber) { _ = try allocation.bindChannel(0x4001, to: peer, now: t0) }
        #expect(throws: Allocation.BindError.invalidNumber) { _ = try allocation.bindChannel(0x3FFF, to: otherPeer, now: t0) }
        #expect(throws: Allocation.BindError.invalidNumber) { _ = try allocation.bindChannel(0x8000, to: otherPeer, now: t0) }
        _ = try allocation.bindChannel(0x5A1F, to: address("10.1.2.9", 1), now: t0)  // RFC 5766 range, as coturn's client uses
        #expect(throws: Allocation.BindError.familyNotRelayed) {
            _ = try allocation.bindChannel(0x4002, to: address("2001:db8::9", 1), now: t0)
        }
    }

    @Test func aDualStackAllocationRelaysEachFamilyFromItsOwnAddress() throws {
        var allocation = allocation(dual: true)
        let route = try allocation.bindChannel(0x4001, to: address("2001:db8::9", 1), now: t0)
        #expect(route.relayed == relayed6)
    }

    @Test func anExpiredBindingCoolsDownThenFreesItsNumber() throws {
        var allocation = allocation()
        let route = try allocation.bindChannel(0x4000, to: peer, now: t0)
        let early = allocation.expire(now: t0.adding(.seconds(599)))
        #expect(early.isEmpty)
        let expired = allocation.expire(now: t0.adding(.seconds(600)))
        #expect(expired == [route], "expiry removes the route")
        #expect(allocation.peer(onChannel: 0x4000, now: t0.adding(.seconds(600))) == nil)
        // Reserved for 300 s: neither the number nor the peer can move.
        #expect(throws: Allocation.BindError.numberInUse) {
            _ = try allocation.bindChannel(0x4000, to: otherPeer, now: t0.adding(.seconds(700)))
        }
        #expect(throws: Allocation.BindError.peerBoundToAnotherNumber) {
            _ = try allocation.bindChannel(0x4001, to: peer, now: t0.adding(.seconds(700)))
        }
        _ = allocation.expire(now: t0.adding(.seconds(900)))
        #expect(allocation.channels.isEmpty)
        _ = try allocation.bindChannel(0x4000, to: otherPeer, now: t0.adding(.seconds(900)))
    }

    @Test func refreshingAfterExpiryReinstallsTheRoute() throws {
        var allocation = allocation()
        let route = try allocation.bindChannel(0x4000, to: peer, now: t0)
        let expired = allocation.expire(now: t0.adding(.seconds(650)))
        #expect(expired == [route])
        let again = try allocation.bindChannel(0x4000, to: peer, now: t0.adding(.seconds(700)))
        #expect(again == route)
        #expect(allocation.peer(onChannel: 0x4000, now: t0.adding(.seconds(700))) == peer)
        #expect(allocation.activeRoutes(now: t0.adding(.seconds(700))) == [route])
        let stillActive = allocation.expire(now: t0.adding(.seconds(1299)))
        #expect(stillActive.isEmpty)
    }

    @Test func nextDeadlineIsTheEarliestExpiry() throws {
        var allocation = allocation()
        #expect(allocation.nextDeadline == t0.monotonic + .seconds(600))
        allocation.installPermission(peer.ip, now: t0)
        #expect(allocation.nextDeadline == t0.monotonic + .seconds(300))
    }
}

@Suite struct PeerPolicyTests {
    let relayIP = address("192.0.2.1", 0).ip

    @Test(arguments: [
        "127.0.0.1", "127.8.9.10", "169.254.169.254", "169.254.1.1", "224.0.0.1", "239.1.1.1", "0.0.0.0",
        "255.255.255.255", "::1", "::", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
        "::127.0.0.1", "::ffff:192.0.2.1", "192.0.2.1",
    ])
    func refusedByDefault(peer: String) {
        let policy = PeerPolicy(relayAddresses: [relayIP])
        #expect(!policy.permits(address(peer, 1).ip))
    }

    @Test(arguments: ["10.0.0.1", "172.16.5.4", "192.168.1.1", "fd00::1", "203.0.113.5", "2001:db8::5", "100.64.0.1"])
    func allowedByDefault(peer: String) {
        let policy = PeerPolicy(relayAddresses: [relayIP])
        #expect(policy.permits(address(peer, 1).ip))
    }

    @Test func theRelaysOwnAddressIsAllowedForTheHairpinOnly() {
        let policy = PeerPolicy(relayAddresses: [relayIP])
        #expect(!policy.permits(relayIP))
        #expect(policy.permits(relayIP, isRelayedAddress: true))
    }

    @Test func allowAndDenyAdjustTheDefaults() throws {
        let policy = PeerPolicy(allow: [try AddressRange("127.0.0.0/8")], deny: [try AddressRange("10.9.0.0/16")])
        #expect(policy.permits(address("127.0.0.1", 1).ip))
        #expect(policy.permits(address("::ffff:127.0.0.1", 1).ip))
        #expect(!policy.permits(address("10.9.1.1", 1).ip))
        #expect(!policy.permits(address("::ffff:10.9.1.1", 1).ip))
        #expect(!policy.permits(address("169.254.169.254", 1).ip))
        let denyWins = PeerPolicy(allow: [try AddressRange("10.0.0.0/8")], deny: [try AddressRange("10.9.0.0/16")])
        #expect(!denyWins.permits(address("10.9.0.1", 1).ip))
    }
}

@Suite struct NonceTableTests {
    let client = address("198.51.100.7", 50_000)

    @Test func aNonceIsBoundToItsClientAndExpires() {
        var random = SplitMix64(seed: 1)
        var table = NonceTable()
        let nonce = table.issue(for: client, now: t0, random: &random)
        #expect(nonce.count == 24)
        let result5 = table.use(nonce, for: client, now: t0)
        #expect(result5)
        let otherPort = table.use(nonce, for: address("198.51.100.7", 50_001), now: t0)
        #expect(!otherPort, "another port is another client")
        let result7 = table.use("0123", for: client, now: t0)
        #expect(!result7)
        let beforeExpiry = table.use(nonce, for: client, now: t0.adding(.seconds(3599)))
        #expect(beforeExpiry)
        let atExpiry = table.use(nonce, for: client, now: t0.adding(.seconds(3600)))
        #expect(!atExpiry)
    }

    @Test func aNonceIsUsedUpAfterItsUses() {
        var random = SplitMix64(seed: 2)
        var limits = NonceTable.Limits()
        limits.uses = 3
        var table = NonceTable(limits: limits)
        let nonce = table.issue(for: client, now: t0, random: &random)
        for _ in 0..<3 {
            let used = table.use(nonce, for: client, now: t0)
            #expect(used)
        }
        let result10 = table.use(nonce, for: client, now: t0)
        #expect(!result10)
    }

    @Test func theTableIsBounded() {
        var random = SplitMix64(seed: 3)
        var limits = NonceTable.Limits()
        limits.capacity = 100
        var table = NonceTable(limits: limits)
        var first: String?
        for port in 1...1000 {
            let nonce = table.issue(for: address("198.51.100.7", UInt16(port)), now: t0, random: &random)
            if port == 1 { first = nonce }
        }
        #expect(table.count <= 100)
        let oldest = table.use(first ?? "", for: address("198.51.100.7", 1), now: t0)
        #expect(!oldest, "the oldest went first")
    }
}

@Suite struct RateLimiterTests {
    @Test func aBurstThenTheRefillRate() {
        var limiter = RateLimiter(burst: 3, perSecond: 2)
        let source = address("203.0.113.1", 0).ip
        let burst = (0..<5).map { _ in limiter.allow(source, now: t0) }
        #expect(burst == [true, true, true, false, false])
        let refilled = limiter.allow(source, now: t0.adding(.milliseconds(500)))
        #expect(refilled)
        let emptyAgain = limiter.allow(source, now: t0.adding(.milliseconds(500)))
        #expect(!emptyAgain)
        let otherSource = limiter.allow(address("203.0.113.2", 0).ip, now: t0)
        #expect(otherSource, "other sources have their own bucket")
    }

    @Test func manySourcesDoNotGrowItBeyondItsCapacity() {
        var limiter = RateLimiter(burst: 1, perSecond: 1, capacity: 1000)
        for index in 0..<50_000 {
            _ = limiter.allow(.v4(UInt32(index)), now: t0)
        }
        #expect(limiter.trackedSources <= 1000)
    }
}

@Suite struct PortAllocatorTests {
    @Test func portsAreDistinctWithinTheRangeUntilItIsFull() {
        var random = SplitMix64(seed: 4)
        var ports = PortAllocator(range: 50_000...50_009)
        var taken: Set<UInt16> = []
        for _ in 0..<10 {
            let port = ports.take(random: &random)
            #expect(port.map { (50_000...50_009).contains($0) } == true)
            taken.insert(port ?? 0)
        }
        #expect(taken.count == 10)
        let result15 = ports.take(random: &random)
        #expect(result15 == nil, "a full range gives no port (508)")
        ports.release(50_004)
        let result16 = ports.take(random: &random)
        #expect(result16 == 50_004)
    }
}
