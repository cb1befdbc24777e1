import Foundation

/// A BPF ELF object compiled from `bpf/NAME.bpf.c` by the `BPFCompiler` build plugin and embedded in
/// the binary. The plugin generates one `extension EmbeddedBPFObject` per program with a static member
/// named after it (`EmbeddedBPFObject.counter`).
package struct EmbeddedBPFObject: Sendable {
    /// The program file's name without `.bpf.c`.
    package let name: String
    private let base64: String

    package init(name: String, base64: String) {
        self.name = name
        self.base64 = base64
    }

    /// The object file's bytes.
    package func bytes() throws(BPFError) -> [UInt8] {
        guard let data = Data(base64Encoded: base64) else { throw .invalidEmbeddedObject(name: name) }
        return [UInt8](data)
    }
}
