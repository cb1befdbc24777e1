import BPF
import Foundation
import TestSupport
import Testing

/// The relay's XDP program (bpf/relay.bpf.c), as the build embedded it, through the kernel verifier
/// and BPF_PROG_TEST_RUN: every rewrite direction (IPv4/IPv6 both ways and across families, the
/// hairpin), checksums recomputed independently, and every case it must pass up to user space.
/// The cases live in Tests/Interop/relay_xdp_cases.py (frames built with scapy, maps filled and the
/// program run with bpftool).
@Suite(.privileged) struct RelayXDPProgramTests {
    @Test func relaysWhatItShouldAndPassesUpEverythingElse() throws {
        let object = FileManager.default.temporaryDirectory.appending(path: "gatehouse-relay-\(UUID().uuidString).bpf.o")
        try Data(try EmbeddedBPFObject.relay.bytes()).write(to: object)
        defer { try? FileManager.default.removeItem(at: object) }
        let script = Binaries.packageRoot.appending(path: "Tests/Interop/relay_xdp_cases.py").path(percentEncoded: false)
        let output = try Command.runBlocking([Binaries.python, script, "--object", object.path(percentEncoded: false)], check: false)
        #expect(output.standardOutput.contains("kernel verifier accepted gatehouse_relay_xdp"), "\(output.standardError)")
        let summary = try #require(output.standardOutput.firstMatch(of: /(\d+)\/(\d+) cases passed/),
                                   "\(output.standardOutput.suffix(2000)) \(output.standardError.suffix(2000))")
        #expect(summary.1 == summary.2, "failed cases:\n\(output.standardOutput.split(separator: "\n").filter { $0.contains("FAIL") }.joined(separator: "\n"))")
        #expect(Int(summary.2) ?? 0 >= 150, "the whole case list ran")
        #expect(output.status == 0)
    }
}
