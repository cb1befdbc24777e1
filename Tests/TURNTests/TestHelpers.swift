import Addresses
import STUN
import TURN

func address(_ text: String, _ port: UInt16) -> SocketAddress {
    // Test literals are valid; a typo fails the test that uses it.
    (try? SocketAddress(text, port: port)) ?? SocketAddress(ip: .v4(0), port: 0)
}

let t0 = TURNTime(monotonic: .seconds(1000), unixSeconds: 1_700_000_000)
