/// A seeded generator (SplitMix64): the same "random" ports, nonces and transaction IDs on every run.
/// `TURNServer` takes any generator; tests, the fuzz harness and property tests give it this one so that
/// a failure reproduces from its seed. Not for anything a client could guess: the relay uses
/// `SystemRandomNumberGenerator`.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    package var state: UInt64

    package init(seed: UInt64) {
        state = seed
    }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
