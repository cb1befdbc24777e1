import Foundation
import TestSupport
import Testing

/// Python's aioice, a TURN client nobody here wrote, allocates on `gatehouse relay` and relays through
/// it (it binds a channel and sends ChannelData) to an echo peer.
@Suite struct AioiceInteropTests {
    @Test func aioiceAllocatesAndRelaysWithoutLoss() async throws {
        let relay = try await RelayProcess.start()
        defer { relay.process.stop() }
        let script = Binaries.packageRoot.appending(path: "Tests/Interop/aioice_turn_client.py").path
        let output = try await Command.run(
            ["timeout", "60", Binaries.python, script, "127.0.0.1", String(relay.port), RelayProcess.secret, "50"], check: false)
        let text = output.standardOutput + output.standardError
        #expect(output.status == 0, "\(text)\nrelay:\n\(relay.process.output)")
        #expect(text.contains("relayed address ('127.0.0.1', "), "\(text)")
        #expect(text.contains("50 passed, 0 failed"), "\(text)")
    }
}
