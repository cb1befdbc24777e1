// gatehouse-fuzz-wireguard: a libFuzzer target over WireGuard's message parsers, handshake, cookies and
// peer state machine (the WireGuard module, pure).
//
// Built by `scripts/fuzz` with `-sanitize=fuzzer -DFUZZING` like gatehouse-fuzz: the entry point runs
// libFuzzer's driver over `LLVMFuzzerTestOneInput`. In an ordinary build the same harness replays the
// input files given on the command line, so the seed corpus runs without libFuzzer too. What an input
// means is in Harness.swift.
#if FUZZING
import WireGuard
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Harness.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// SwiftPM links an executable's entry point under the module's name (`main` is an alias to it), so
/// the entry point hands over to libFuzzer's driver, which parses the libFuzzer flags and fuzzes.
@_cdecl("gatehouse_fuzz_wireguard_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzzOneInput)
}
#else
import FuzzSupport

/// Replays the files (or directories of files) given as arguments through the harness.
@main
enum Replay {
    static func main() {
        replayCorpus(tool: "gatehouse-fuzz-wireguard") { input in
            let summary = Harness.run(input)
            return "handshakes=\(summary.handshakes) delivered_at_a=\(summary.deliveredAtA) delivered_at_b=\(summary.deliveredAtB) cookies=\(summary.cookies)"
        }
    }
}
#endif
