import Testing
@testable import STUN

@Test func magicCookieIsRFC8489() {
    #expect(STUN.magicCookie == 0x2112_A442)
}
