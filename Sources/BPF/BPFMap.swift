import CBPF
import Glibc

/// What libbpf says about a map of a loaded object.
struct BPFMapDescription: Sendable {
    let name: String
    let fileDescriptor: Int32
    let keySize: Int
    let valueSize: Int
    let maxEntries: Int
    let isPerCPU: Bool
}

/// How an update treats an existing entry.
package enum BPFUpdateMode: Sendable {
    /// Create or replace.
    case any
    /// Fail with EEXIST if the key exists.
    case createOnly
    /// Fail with ENOENT if the key does not exist.
    case replaceOnly

    var flags: UInt64 {
        switch self {
        case .any: UInt64(BPF_ANY)
        case .createOnly: UInt64(BPF_NOEXIST)
        case .replaceOnly: UInt64(BPF_EXIST)
        }
    }
}

/// A BPF map with one value per key, typed by the structs of `gatehouse_maps.h`.
///
/// Array maps always hold `maxEntries` slots that read as zeros until written: `lookup` on an array
/// never returns nil for a key in range, which is why configs carry a `configured` marker.
package struct BPFMap<Key: BitwiseCopyable, Value: BitwiseCopyable>: Sendable {
    private let object: BPFObject
    private let map: BPFMapDescription

    init(object: BPFObject, description: BPFMapDescription) throws(BPFError) {
        try checkLayout(description, key: Key.self, valueSize: MemoryLayout<Value>.size)
        self.object = object
        self.map = description
    }

    package var name: String { map.name }
    package var maxEntries: Int { map.maxEntries }

    /// Writes `value` at `key`.
    package func update(_ value: Value, forKey key: Key, mode: BPFUpdateMode = .any) throws(BPFError) {
        var key = key
        var value = value
        try LibBPFLog.check("updating BPF map \"\(map.name)\"") {
            bpf_map_update_elem(map.fileDescriptor, &key, &value, mode.flags)
        }
    }

    /// The value at `key`, or nil when there is none.
    package func lookup(_ key: Key) throws(BPFError) -> Value? {
        var key = key
        var bytes = [UInt8](repeating: 0, count: map.valueSize)
        let code = bytes.withUnsafeMutableBytes { bpf_map_lookup_elem(map.fileDescriptor, &key, $0.baseAddress) }
        if code == -ENOENT { return nil }
        if code < 0 { throw LibBPFLog.error("looking up BPF map \"\(map.name)\"", code: -code) }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: Value.self) }
    }

    /// Deletes the entry at `key`; false when there was none. (Array maps cannot delete: EINVAL.)
    @discardableResult
    package func delete(_ key: Key) throws(BPFError) -> Bool {
        var key = key
        let code = bpf_map_delete_elem(map.fileDescriptor, &key)
        if code == -ENOENT { return false }
        if code < 0 { throw LibBPFLog.error("deleting from BPF map \"\(map.name)\"", code: -code) }
        return true
    }

    /// Every key in the map, in the kernel's iteration order.
    package func keys() throws(BPFError) -> [Key] {
        try mapKeys(map, as: Key.self)
    }

    /// Every entry in the map. Entries the kernel removes during the walk are left out.
    package func entries() throws(BPFError) -> [(key: Key, value: Value)] {
        var result: [(key: Key, value: Value)] = []
        for key in try keys() {
            if let value = try lookup(key) { result.append((key, value)) }
        }
        return result
    }
}

/// A per-CPU map: each key holds one value per possible CPU, which the kernel updates without locks.
package struct BPFPerCPUMap<Key: BitwiseCopyable, Value: BitwiseCopyable>: Sendable {
    private let object: BPFObject
    private let map: BPFMapDescription
    private let cpuCount: Int
    /// The kernel lays per-CPU values out 8-byte aligned.
    private let stride: Int

    init(object: BPFObject, description: BPFMapDescription) throws(BPFError) {
        try checkLayout(description, key: Key.self, valueSize: MemoryLayout<Value>.size, perCPU: true)
        let cpus = libbpf_num_possible_cpus()
        guard cpus > 0 else { throw LibBPFLog.error("counting possible CPUs", code: -cpus) }
        self.object = object
        self.map = description
        self.cpuCount = Int(cpus)
        self.stride = (description.valueSize + 7) & ~7
    }

    package var name: String { map.name }
    package var maxEntries: Int { map.maxEntries }

    /// The values of `key` on every possible CPU, or nil when there is no entry.
    package func lookup(_ key: Key) throws(BPFError) -> [Value]? {
        var key = key
        var bytes = [UInt8](repeating: 0, count: stride * cpuCount)
        let code = bytes.withUnsafeMutableBytes { bpf_map_lookup_elem(map.fileDescriptor, &key, $0.baseAddress) }
        if code == -ENOENT { return nil }
        if code < 0 { throw LibBPFLog.error("looking up BPF map \"\(map.name)\"", code: -code) }
        return bytes.withUnsafeBytes { raw in
            (0..<cpuCount).map { raw.loadUnaligned(fromByteOffset: $0 * stride, as: Value.self) }
        }
    }

    /// Writes the same value on every CPU (typically zero, to reset counters).
    package func update(_ value: Value, forKey key: Key, mode: BPFUpdateMode = .any) throws(BPFError) {
        var key = key
        var bytes = [UInt8](repeating: 0, count: stride * cpuCount)
        bytes.withUnsafeMutableBytes { raw in
            for cpu in 0..<cpuCount { raw.storeBytes(of: value, toByteOffset: cpu * stride, as: Value.self) }
        }
        try LibBPFLog.check("updating BPF map \"\(map.name)\"") {
            bytes.withUnsafeMutableBytes { bpf_map_update_elem(map.fileDescriptor, &key, $0.baseAddress, mode.flags) }
        }
    }

    package func keys() throws(BPFError) -> [Key] {
        try mapKeys(map, as: Key.self)
    }
}

private func checkLayout<Key>(
    _ map: BPFMapDescription, key: Key.Type, valueSize: Int, perCPU: Bool = false
) throws(BPFError) {
    guard MemoryLayout<Key>.size == map.keySize else {
        throw .layoutMismatch(map: map.name, field: "key", swiftSize: MemoryLayout<Key>.size, mapSize: map.keySize)
    }
    guard valueSize == map.valueSize else {
        throw .layoutMismatch(map: map.name, field: "value", swiftSize: valueSize, mapSize: map.valueSize)
    }
    guard perCPU == map.isPerCPU else {
        let kind = map.isPerCPU ? "per-CPU; open it with perCPUMap(named:)" : "not per-CPU; open it with map(named:)"
        throw .libbpf(operation: "opening BPF map \"\(map.name)\"", code: EINVAL, message: "the map is \(kind)", log: [])
    }
}

private func mapKeys<Key: BitwiseCopyable>(_ map: BPFMapDescription, as: Key.Type) throws(BPFError) -> [Key] {
    var keys: [Key] = []
    var current = [UInt8](repeating: 0, count: map.keySize)
    var next = [UInt8](repeating: 0, count: map.keySize)
    var first = true
    while true {
        let code = current.withUnsafeBytes { currentKey in
            next.withUnsafeMutableBytes { nextKey in
                bpf_map_get_next_key(map.fileDescriptor, first ? nil : currentKey.baseAddress, nextKey.baseAddress)
            }
        }
        if code == -ENOENT { return keys }
        if code < 0 { throw LibBPFLog.error("iterating BPF map \"\(map.name)\"", code: -code) }
        keys.append(next.withUnsafeBytes { $0.loadUnaligned(as: Key.self) })
        swap(&current, &next)
        first = false
        if keys.count > map.maxEntries { return keys }  // a map rewritten under us must not loop forever
    }
}
