import Foundation
import TestSupport
import Testing

/// The WireGuard fuzz target's seed corpus, replayed through its harness by the ordinary build of
/// `gatehouse-fuzz-wireguard` (scripts/fuzz runs the libFuzzer build from these seeds): the seeds must
/// reach the states worth mutating from (handshakes, a rekey, data both ways, a cookie reply).
@Suite struct WireGuardFuzzCorpusTests {
    @Test func seedCorpusReachesHandshakesDataAndCookies() async throws {
        let corpus = Binaries.packageRoot.appending(path: "Fuzz/WireGuardFuzz/corpus").path(percentEncoded: false)
        let binary = Binaries.buildDirectory.appending(path: "gatehouse-fuzz-wireguard").path(percentEncoded: false)
        let output = try await Command.run([binary, corpus]).standardOutput
        var totals: [String: Int] = [:]
        var seeds = 0
        for line in output.split(separator: "\n") where line.contains("handshakes=") {
            seeds += 1
            for field in line.split(separator: " ").dropFirst() {
                let parts = field.split(separator: "=")
                if parts.count == 2, let value = Int(parts[1]) { totals[String(parts[0]), default: 0] += value }
            }
        }
        #expect(seeds >= 6, "\(output)")
        #expect(totals["handshakes", default: 0] >= 7, "one per seed and a rekey: \(output)")
        #expect(totals["delivered_at_b", default: 0] >= 6 && totals["delivered_at_a", default: 0] >= 2, "\(output)")
        #expect(totals["cookies", default: 0] >= 1, "\(output)")
        #expect(output.contains("replayed \(seeds) inputs without a failure"))
    }
}
