import Addresses
import STUN
import TURN
import TURNTesting
import Testing

/// EVEN-PORT with the R bit and RESERVATION-TOKEN (RFC 8656 sections 7.2, 18.8, 18.9): the RTP/RTCP
/// pair coturn's turnutils_uclient asks for in its default mode.
@Suite struct ReservationTests {
    let base = FrontDoorTests()

    func reservationToken(_ answer: [UInt8]) -> [UInt8]? {
        STUNCodec.firstAttribute(STUNCodec.AttributeType.reservationToken, in: answer)
    }

    func server(lifetime: Duration = ReservationTable.defaultLifetime) -> FrontDoorTests.Hosted {
        var configuration = base.configuration(ports: 50_000...50_099)
        configuration.reservationLifetime = lifetime
        configuration.housekeepingInterval = .seconds(1)
        return FrontDoorTests.Hosted(configuration: configuration, codec: STUNCodec(), random: SplitMix64(seed: 11))
    }

    @Test(arguments: [nil, 2] as [UInt8?])
    func anEvenPortWithTheRBitReservesTheNextPortForTheToken(family: UInt8?) throws {
        var server = server()
        let familyAttribute: [TURNRequestAttribute] = family.map { [.requestedFamily($0)] } ?? []
        let rtp = base.allocate(&server, from: address("198.51.100.1", 40_000), [.transport(17), .evenPort(reserveNext: true)] + familyAttribute)
        #expect(STUNCodec.errorCode(in: rtp.answer) == nil)
        let relayed = try #require(base.relayedAddresses(rtp.answer).first)
        #expect(relayed.port % 2 == 0, "EVEN-PORT: an even port")
        #expect(relayed.isIPv6 == (family == 2))
        let token = try #require(reservationToken(rtp.answer), "the success response carries RESERVATION-TOKEN")
        #expect(token.count == 8)
        #expect(server.portsInUse == 2, "the next port is held")

        let rtcp = base.allocate(&server, from: address("198.51.100.1", 40_001), [.transport(17), .reservationToken(token)])
        #expect(STUNCodec.errorCode(in: rtcp.answer) == nil)
        #expect(base.relayedAddresses(rtcp.answer) == [SocketAddress(ip: relayed.ip, port: relayed.port + 1)],
                "the reserved port, in the family it was reserved in")
        #expect(server.reservationCount == 0)

        let again = base.allocate(&server, from: address("198.51.100.1", 40_002), [.transport(17), .reservationToken(token)])
        #expect(STUNCodec.errorCode(in: again.answer) == 508, "a token serves once")
    }

    @Test func anUnusedReservationExpiresAndItsPortGoesBack() throws {
        var server = server(lifetime: .seconds(30))
        let rtp = base.allocate(&server, from: address("198.51.100.1", 40_000), [.transport(17), .evenPort(reserveNext: true)])
        let token = try #require(reservationToken(rtp.answer))
        var commands: [TURNCommand] = []
        server.handleTimeout(now: t0.adding(.seconds(29)), into: &commands)
        #expect(server.portsInUse == 2)
        server.handleTimeout(now: t0.adding(.seconds(30)), into: &commands)
        #expect(server.portsInUse == 1, "the reserved port is free again")
        let late = base.allocate(&server, from: address("198.51.100.1", 40_001), [.transport(17), .reservationToken(token)])
        #expect(STUNCodec.errorCode(in: late.answer) == 508)
    }

    @Test(arguments: [
        ("token with REQUESTED-ADDRESS-FAMILY", [.reservationToken([1, 2, 3, 4, 5, 6, 7, 8]), .requestedFamily(1)]),
        ("token with ADDITIONAL-ADDRESS-FAMILY", [.reservationToken([1, 2, 3, 4, 5, 6, 7, 8]), .additionalFamily(2)]),
        ("token with EVEN-PORT", [.reservationToken([1, 2, 3, 4, 5, 6, 7, 8]), .evenPort(reserveNext: false)]),
        ("EVEN-PORT R with ADDITIONAL-ADDRESS-FAMILY", [.evenPort(reserveNext: true), .additionalFamily(2)]),
    ] as [(String, [TURNRequestAttribute])])
    func combinationsTheRFCForbidsAre400(name: String, attributes: [TURNRequestAttribute]) {
        var server = server()
        let attempt = base.allocate(&server, from: address("198.51.100.1", 40_000), [.transport(17)] + attributes)
        #expect(STUNCodec.errorCode(in: attempt.answer) == 400, "\(name)")
        #expect(server.portsInUse == 0)
    }

    @Test func anUnknownTokenIs508() {
        var server = server()
        let attempt = base.allocate(&server, from: address("198.51.100.1", 40_000), [.transport(17), .reservationToken([9, 9, 9, 9, 9, 9, 9, 9])])
        #expect(STUNCodec.errorCode(in: attempt.answer) == 508)
    }

    @Test func evenPortWithoutTheRBitReservesNothing() throws {
        var server = server()
        let attempt = base.allocate(&server, from: address("198.51.100.1", 40_000), [.transport(17), .evenPort(reserveNext: false)])
        let relayed = try #require(base.relayedAddresses(attempt.answer).first)
        #expect(relayed.port % 2 == 0)
        #expect(reservationToken(attempt.answer) == nil)
        #expect(server.portsInUse == 1)
    }
}
