// What the fuzz targets share: the reader of an input as operands, libFuzzer's driver, and the replay
// of corpus files in an ordinary build.
import Foundation

/// Reads operands from the fuzzer's input; past the end every read gives zeros, so any input is valid.
package struct InputReader {
    private let bytes: [UInt8]
    private var offset = 0

    package init(_ bytes: [UInt8]) { self.bytes = bytes }

    package var isAtEnd: Bool { offset >= bytes.count }

    package mutating func byte() -> UInt8 {
        defer { offset += 1 }
        return offset < bytes.count ? bytes[offset] : 0
    }

    package mutating func u16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    package mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }

    /// A length byte, then that many bytes (fewer at the end of the input).
    package mutating func chunk(limit: Int = 255) -> [UInt8] {
        let count = min(Int(byte()), limit)
        let end = min(bytes.count, offset + count)
        defer { offset = max(offset, end) }
        return offset < end ? Array(bytes[offset..<end]) : []
    }
}

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// Hands over to libFuzzer's driver, which parses the libFuzzer flags and fuzzes `callback`.
package func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                          _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv, callback)
}
#endif

/// Replays the files (or directories of files) given as arguments: `run` takes an input and says in
/// a line what it reached.
package func replayCorpus(tool: String, _ run: ([UInt8]) -> String) {
    var inputs = 0
    for argument in CommandLine.arguments.dropFirst() {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
            FileHandle.standardError.write(Data("\(tool): \(argument): no such file\n".utf8))
            exit(2)
        }
        let files = isDirectory.boolValue
            ? ((try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []).sorted().map { "\(argument)/\($0)" }
            : [argument]
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            let line = run([UInt8](data))
            inputs += 1
            print("\((file as NSString).lastPathComponent): \(line)")
        }
    }
    print("\(tool): replayed \(inputs) inputs without a failure (build with scripts/fuzz to fuzz)")
}
