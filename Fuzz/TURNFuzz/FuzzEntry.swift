// gatehouse-fuzz: a libFuzzer target over the STUN codec and the TURN server (sans-IO core).
//
// Built by `scripts/fuzz` with `-sanitize=fuzzer -DFUZZING`: the entry point runs libFuzzer's driver,
// which calls `LLVMFuzzerTestOneInput` with inputs it mutates, guided by the coverage of every Swift module of the build (STUN, TURN, Addresses, swift-crypto). In an ordinary build (`swift
// build`) the same harness replays input files given on the command line, so the seed corpus runs
// without libFuzzer too.
//
// An input is a little program for the harness, so that mutations reach deep states although the
// fuzzer cannot compute an HMAC: each step is an opcode byte and its operands.
//   0: a raw datagram from client k (the codec and the server see arbitrary bytes)
//   1: a request the harness signs with valid credentials and the nonce the server gave client k:
//      method, attributes picked and filled from the input (so Allocate, ChannelBind, Refresh, ...
//      succeed and the fuzzer explores what follows)
//   2: the same, signed, then one byte flipped (integrity and fingerprint checks on near-valid input)
//   3: ChannelData from client k with a fuzzed header and length
//   4: a datagram from a peer to one of the relayed addresses the server opened
//   5: time passes (up to ~17 minutes), expiring permissions, channels and allocations
// After every step the harness checks what the server must always hold: no answer to a datagram
// without a transaction ID, tables within their bounds; a violation traps (a crash libFuzzer reports).
#if FUZZING
import Addresses
import STUN
import TURN
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Harness.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// SwiftPM links an executable's entry point under the module's name (`main` is an alias to it), so
/// the entry point hands over to libFuzzer's driver, which parses the libFuzzer flags and fuzzes.
@_cdecl("gatehouse_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzzOneInput)
}
#else
import FuzzSupport

/// Replays the files (or directories of files) given as arguments through the harness.
@main
enum Replay {
    static func main() {
        replayCorpus(tool: "gatehouse-fuzz") { input in
            let summary = Harness.run(input)
            return "successes=\(summary.successes) allocations=\(summary.allocations) routes=\(summary.routes) to_peers=\(summary.toPeers) to_clients=\(summary.toClients)"
        }
    }
}
#endif
