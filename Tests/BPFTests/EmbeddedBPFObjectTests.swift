import BPF
import Testing

/// The build plugin compiled bpf/*.bpf.c for the BPF target and embedded the objects; no privileges
/// are needed to check what was embedded.
@Suite struct EmbeddedBPFObjectTests {
    @Test func counterProgramIsEmbeddedAsABPFELFObject() throws {
        let bytes = try EmbeddedBPFObject.counter.bytes()
        #expect(bytes.count > 64)
        #expect(Array(bytes.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "ELF magic")
        #expect(bytes[4] == 2, "64-bit ELF")
        let machine = UInt16(bytes[18]) | UInt16(bytes[19]) << 8
        #expect(machine == 247, "e_machine is EM_BPF")
    }

    @Test func everyProgramIsListed() {
        #expect(EmbeddedBPFObject.all.map(\.name).contains("counter"))
        #expect(EmbeddedBPFObject.all.map(\.name).contains("relay"), "the relay's XDP program")
    }
}
