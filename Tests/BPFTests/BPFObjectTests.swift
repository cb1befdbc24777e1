import BPF
import BPFMaps
import Glibc
import TestSupport
import Testing

/// Loading the counter object into the kernel and using its maps from user space.
@Suite(.privileged, .serialized) struct BPFObjectTests {
    @Test func loadsProgramsAndMapsByName() throws {
        let object = try BPFObject(.counter)
        #expect(Set(object.programNames) == ["counter_xdp", "counter_tc"])
        #expect(Set(object.mapNames).isSuperset(of: ["counter_config", "counter_stats", "counter_flows"]))
        let program = try object.program(named: "counter_xdp")
        #expect(program.fileDescriptor >= 0)
    }

    @Test func unknownNamesAreReportedWithWhatExists() throws {
        let object = try BPFObject(.counter)
        #expect {
            _ = try object.program(named: "relay_xdp")
        } throws: { error in
            guard case let BPFError.programNotFound(name, available) = error else { return false }
            return name == "relay_xdp" && available.contains("counter_xdp")
        }
        #expect {
            _ = try object.map(named: "routes", key: UInt32.self, value: counter_config.self)
        } throws: { error in
            guard case let BPFError.mapNotFound(name, available) = error else { return false }
            return name == "routes" && available.contains("counter_config")
        }
    }

    @Test func aSwiftTypeOfTheWrongSizeIsRefused() throws {
        let object = try BPFObject(.counter)
        #expect(throws: BPFError.layoutMismatch(map: "counter_config", field: "value", swiftSize: 16, mapSize: 8)) {
            _ = try object.map(named: "counter_config", key: UInt32.self, value: counter_stats.self)
        }
        #expect(throws: BPFError.layoutMismatch(map: "counter_flows", field: "key", swiftSize: 4, mapSize: 16)) {
            _ = try object.map(named: "counter_flows", key: UInt32.self, value: counter_stats.self)
        }
    }

    @Test func aCorruptObjectFailsWithLibbpfsMessage() throws {
        var bytes = try EmbeddedBPFObject.counter.bytes()
        bytes.replaceSubrange(0..<4, with: [0, 0, 0, 0])
        #expect {
            _ = try BPFObject(bytes: bytes, name: "corrupt")
        } throws: { error in
            guard case let BPFError.libbpf(operation, code, message, log) = error else { return false }
            return operation.contains("corrupt") && code > 0 && !message.isEmpty
                && log.contains { $0.contains("not a proper ELF object") }
        }
    }

    /// The rule the relay lives by: an array slot exists from the start and reads as zeros, so the
    /// config carries a marker; a config equal to the defaults must still be written and read back.
    @Test func configSlotStartsZeroedAndADefaultConfigIsWrittenAndReadBack() throws {
        let object = try BPFObject(.counter)
        let config = try object.map(named: "counter_config", key: UInt32.self, value: counter_config.self)
        let unwritten = try #require(try config.lookup(0), "an array slot always exists")
        #expect(unwritten.configured == 0)
        #expect(unwritten.udp_port == 0)

        let defaults = CounterConfig.defaults
        try config.update(defaults.kernelValue, forKey: 0)
        let readBack = try #require(try config.lookup(0))
        #expect(readBack.configured == 1)
        #expect(UInt16(bigEndian: readBack.udp_port) == 3478, "the port is stored in network byte order")
        #expect(readBack.udp_port == UInt16(3478).bigEndian)

        #expect(try config.lookup(1) == nil, "key 1 is out of the array's range")
    }

    @Test func hashMapUpdateLookupDeleteAndIterate() throws {
        let object = try BPFObject(.counter)
        let flows = try object.map(named: "counter_flows", key: counter_flow_key.self, value: counter_stats.self)
        #expect(try flows.keys().isEmpty)
        let keys = (1...3).map { index in
            counter_flow_key(
                saddr: UInt32(0xC612_0101).bigEndian, daddr: UInt32(0xC612_0102).bigEndian,
                sport: UInt16(40_000 + index).bigEndian, dport: UInt16(3478).bigEndian, pad: 0)
        }
        for (index, key) in keys.enumerated() {
            try flows.update(counter_stats(packets: UInt64(index + 1), bytes: 100), forKey: key)
        }
        #expect(Set(try flows.keys().map { UInt16(bigEndian: $0.sport) }) == [40_001, 40_002, 40_003])
        #expect(try flows.lookup(keys[1])?.packets == 2)

        #expect(throws: BPFError.self, "createOnly refuses an existing key") {
            try flows.update(counter_stats(packets: 9, bytes: 9), forKey: keys[0], mode: .createOnly)
        }
        #expect(try flows.delete(keys[0]))
        #expect(try flows.delete(keys[0]) == false, "deleting a missing key says so")
        #expect(try flows.lookup(keys[0]) == nil)
        #expect(try flows.entries().map(\.value.packets).sorted() == [2, 3])
    }

    @Test func perCPUCountersHaveOneValuePerPossibleCPU() throws {
        let object = try BPFObject(.counter)
        let stats = try object.perCPUMap(named: "counter_stats", key: UInt32.self, value: counter_stats.self)
        #expect(stats.maxEntries == Int(COUNTER_REASON_COUNT.rawValue))
        let values = try #require(try stats.lookup(COUNTER_MATCHED.rawValue))
        #expect(values.count >= 1)
        #expect(values.allSatisfy { $0.packets == 0 && $0.bytes == 0 })
        try stats.update(counter_stats(packets: 5, bytes: 50), forKey: COUNTER_OTHER.rawValue)
        let written = try #require(try stats.lookup(COUNTER_OTHER.rawValue))
        #expect(written.reduce(0) { $0 + $1.packets } == UInt64(5 * written.count))
        #expect {
            _ = try object.map(named: "counter_stats", key: UInt32.self, value: counter_stats.self)
        } throws: { error in
            "\(error)".contains("per-CPU")
        }
    }
}
