// gatehouse-fuzz-wireguard: a libFuzzer target over WireGuard's message parsers, handshake, cookies and
// peer state machine (the WireGuard module, pure).
//
// Built by `scripts/fuzz` with `-sanitize=fuzzer -DFUZZING` like gatehouse-fuzz: the entry point runs
// libFuzzer's driver over `LLVMFuzzerTestOneInput`. In an ordinary build the same harness replays the
// input files given on the command line, so the seed corpus runs without libFuzzer too. What an input
// means is in Harness.swift.
#if FUZZING
import WireGuard

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Harness.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// SwiftPM links an executable's entry point under the module's name, so the entry point hands over
/// to libFuzzer's driver, which parses the libFuzzer flags and fuzzes.
@_cdecl("gatehouse_fuzz_wireguard_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv, fuzzOneInput)
}
#else
import Foundation

/// Replays the files (or directories of files) given as arguments through the harness.
@main
enum Replay {
    static func main() {
        var inputs = 0
        for argument in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("gatehouse-fuzz-wireguard: \(argument): no such file\n".utf8))
                exit(2)
            }
            let files = isDirectory.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []).sorted().map { "\(argument)/\($0)" }
                : [argument]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                let summary = Harness.run([UInt8](data))
                inputs += 1
                print("\((file as NSString).lastPathComponent): handshakes=\(summary.handshakes) delivered_at_a=\(summary.deliveredAtA) delivered_at_b=\(summary.deliveredAtB) cookies=\(summary.cookies)")
            }
        }
        print("gatehouse-fuzz-wireguard: replayed \(inputs) inputs without a failure (build with scripts/fuzz to fuzz)")
    }
}
#endif
