/// What went wrong in the BPF layer, with the message libbpf or the kernel gave.
package enum BPFError: Error, Equatable, CustomStringConvertible {
    /// A libbpf call failed: the operation, the errno it returned, libbpf's text for it, and what
    /// libbpf logged meanwhile (for a load failure, the verifier's log).
    case libbpf(operation: String, code: Int32, message: String, log: [String])
    /// The embedded object's bytes could not be decoded (a build problem, not a runtime one).
    case invalidEmbeddedObject(name: String)
    /// The object has no map by that name.
    case mapNotFound(name: String, available: [String])
    /// The object has no program by that name.
    case programNotFound(name: String, available: [String])
    /// The Swift key or value type does not have the size the map was created with.
    case layoutMismatch(map: String, field: String, swiftSize: Int, mapSize: Int)
    /// No network interface has that name (in the caller's network namespace).
    case interfaceNotFound(String)

    package var description: String {
        switch self {
        case let .libbpf(operation, code, message, log):
            let tail = log.suffix(12).joined(separator: "\n  ")
            return "\(operation) failed: \(message) (errno \(code))" + (log.isEmpty ? "" : "\n  libbpf: \(tail)")
        case let .invalidEmbeddedObject(name):
            return "embedded BPF object \"\(name)\" is not valid base64; rebuild the package"
        case let .mapNotFound(name, available):
            return "BPF map \"\(name)\" not found; the object has: \(available.joined(separator: ", "))"
        case let .programNotFound(name, available):
            return "BPF program \"\(name)\" not found; the object has: \(available.joined(separator: ", "))"
        case let .layoutMismatch(map, field, swiftSize, mapSize):
            return "BPF map \"\(map)\": the Swift \(field) type is \(swiftSize) bytes but the map's \(field) is \(mapSize) bytes; use the struct from gatehouse_maps.h"
        case let .interfaceNotFound(name):
            return "network interface \"\(name)\" not found"
        }
    }
}
