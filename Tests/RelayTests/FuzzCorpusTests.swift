import Foundation
import TestSupport
import Testing

/// The fuzz target's seed corpus, replayed through the harness by the ordinary build of
/// `gatehouse-fuzz` (scripts/fuzz runs the libFuzzer build from these seeds). The seeds must reach the
/// states worth mutating from: allocations, channel routes, data relayed both ways.
@Suite struct FuzzCorpusTests {
    @Test func seedCorpusReachesAllocationsChannelsAndRelayedData() async throws {
        let corpus = Binaries.packageRoot.appending(path: "Fuzz/TURNFuzz/corpus").path(percentEncoded: false)
        let binary = Binaries.buildDirectory.appending(path: "gatehouse-fuzz").path(percentEncoded: false)
        let output = try await Command.run([binary, corpus]).standardOutput
        var totals: [String: Int] = [:]
        var seeds = 0
        for line in output.split(separator: "\n") where line.contains("allocations=") {
            seeds += 1
            for field in line.split(separator: " ").dropFirst() {
                let parts = field.split(separator: "=")
                if parts.count == 2, let value = Int(parts[1]) { totals[String(parts[0]), default: 0] += value }
            }
        }
        #expect(seeds >= 5, "\(output)")
        #expect(totals["allocations", default: 0] >= 4, "\(output)")
        #expect(totals["routes", default: 0] >= 3, "\(output)")
        #expect(totals["to_peers", default: 0] >= 2, "\(output)")
        #expect(totals["to_clients", default: 0] >= 2, "\(output)")
        #expect(output.contains("replayed \(seeds) inputs without a failure"))
    }
}
