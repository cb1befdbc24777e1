import Addresses
import STUN
import TURN

/// A seeded generator: tests draw the same "random" ports and nonces on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func address(_ text: String, _ port: UInt16) -> SocketAddress {
    // Test literals are valid; a typo fails the test that uses it.
    (try? SocketAddress(text, port: port)) ?? SocketAddress(ip: .v4(0), port: 0)
}

let t0 = TURNTime(monotonic: .seconds(1000), unixSeconds: 1_700_000_000)
