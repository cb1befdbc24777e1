import CBPF
import Glibc

/// A loaded BPF object: its programs are verified and in the kernel, its maps created. Closing it (when
/// the last reference goes) unloads whatever is not attached or pinned elsewhere.
package final class BPFObject: @unchecked Sendable {
    // libbpf's object is only read after load (name look-ups); map and attach operations go through
    // file descriptors, which the kernel makes safe to use from any thread.
    private let object: OpaquePointer
    package let name: String

    /// Opens and loads an object from its ELF bytes.
    package init(bytes: [UInt8], name: String) throws(BPFError) {
        _ = LibBPFLog.installed
        var options = bpf_object_open_opts()
        options.sz = libbpfOptionsSize(bpf_object_open_opts.self, through: \.object_name)
        let (opened, openLog) = name.withCString { cName in
            options.object_name = cName
            return LibBPFLog.capturing {
                bytes.withUnsafeBytes { buffer in
                    (bpf_object__open_mem(buffer.baseAddress, buffer.count, &options), errno)
                }
            }
        }
        guard let object = opened.0 else {
            throw LibBPFLog.error("opening BPF object \"\(name)\"", code: opened.1 == 0 ? EINVAL : opened.1, log: openLog)
        }
        let (loaded, loadLog) = LibBPFLog.capturing { bpf_object__load(object) }
        if loaded < 0 {
            bpf_object__close(object)
            throw LibBPFLog.error("loading BPF object \"\(name)\"", code: -loaded, log: loadLog)
        }
        self.object = object
        self.name = name
    }

    /// Opens and loads an object embedded by the build.
    package convenience init(_ embedded: EmbeddedBPFObject) throws(BPFError) {
        try self.init(bytes: try embedded.bytes(), name: embedded.name)
    }

    deinit {
        bpf_object__close(object)
    }

    /// The names of the object's maps (including libbpf's internal `.rodata`/`.bss` maps, if any).
    package var mapNames: [String] {
        var names: [String] = []
        var map = bpf_object__next_map(object, nil)
        while let current = map {
            names.append(String(cString: bpf_map__name(current)))
            map = bpf_object__next_map(object, current)
        }
        return names
    }

    /// The names of the object's programs (their C function names).
    package var programNames: [String] {
        var names: [String] = []
        var program = bpf_object__next_program(object, nil)
        while let current = program {
            names.append(String(cString: bpf_program__name(current)))
            program = bpf_object__next_program(object, current)
        }
        return names
    }

    /// A program by its C function name.
    package func program(named name: String) throws(BPFError) -> BPFProgram {
        guard let program = bpf_object__find_program_by_name(object, name) else {
            throw .programNotFound(name: name, available: programNames)
        }
        return BPFProgram(object: self, name: name, fileDescriptor: bpf_program__fd(program))
    }

    /// A map by name with typed keys and values; the sizes of `Key` and `Value` must equal the map's.
    package func map<Key: BitwiseCopyable, Value: BitwiseCopyable>(
        named name: String, key: Key.Type = Key.self, value: Value.Type = Value.self
    ) throws(BPFError) -> BPFMap<Key, Value> {
        try BPFMap(object: self, description: describeMap(named: name))
    }

    /// A per-CPU map (`PERCPU_ARRAY`, `PERCPU_HASH`, `LRU_PERCPU_HASH`): one value per possible CPU.
    package func perCPUMap<Key: BitwiseCopyable, Value: BitwiseCopyable>(
        named name: String, key: Key.Type = Key.self, value: Value.Type = Value.self
    ) throws(BPFError) -> BPFPerCPUMap<Key, Value> {
        try BPFPerCPUMap(object: self, description: describeMap(named: name))
    }

    private func describeMap(named name: String) throws(BPFError) -> BPFMapDescription {
        guard let map = bpf_object__find_map_by_name(object, name) else {
            throw .mapNotFound(name: name, available: mapNames)
        }
        return BPFMapDescription(
            name: name,
            fileDescriptor: bpf_map__fd(map),
            keySize: Int(bpf_map__key_size(map)),
            valueSize: Int(bpf_map__value_size(map)),
            maxEntries: Int(bpf_map__max_entries(map)),
            isPerCPU: [BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH]
                .contains(bpf_map__type(map))
        )
    }
}

/// A program of a loaded object, ready to attach.
package struct BPFProgram: Sendable {
    /// Keeps the object (and so the program) loaded while the program is in use.
    let object: BPFObject
    package let name: String
    package let fileDescriptor: Int32
}
