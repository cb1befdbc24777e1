import Foundation
import Synchronization

/// A long-running program (a server, a peer) started by a test. It is stopped by `stop()` or when the
/// `TestNetwork` that started it is cleaned up.
package final class BackgroundProcess: Sendable {
    package let arguments: [String]
    private let process: Mutex<Process?>
    private let outputURL: URL

    init(arguments: [String], environment: [String: String]? = nil) throws {
        self.arguments = arguments
        outputURL = FileManager.default.temporaryDirectory.appending(path: "gatehouse-bg-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let process = Process()
        process.executableURL = URL(filePath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        let log = try FileHandle(forWritingTo: outputURL)
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = Mutex(process)
    }

    package var processIdentifier: Int32 { process.withLock { $0?.processIdentifier ?? 0 } }

    package var isRunning: Bool { process.withLock { $0?.isRunning ?? false } }

    /// Everything the program wrote to stdout and stderr so far.
    package var output: String { (try? String(contentsOf: outputURL, encoding: .utf8)) ?? "" }

    /// Waits until the output contains `text`; throws with the output so far when the deadline passes
    /// or the program exits first.
    package func waitForOutput(containing text: String, timeout: Duration = .seconds(10)) async throws {
        try await Wait.until("\(arguments.first ?? "process") printed \"\(text)\"", timeout: timeout) {
            if output.contains(text) { return true }
            if !isRunning { throw WaitError(what: "process exited before printing \"\(text)\": \(output)") }
            return false
        }
    }

    /// Sends SIGTERM, waits up to `grace` for the exit, then SIGKILL. Returns the exit status.
    @discardableResult
    package func stop(grace: Duration = .seconds(5)) -> Int32 {
        guard let process = self.process.withLock({ process -> Process? in defer { process = nil }; return process }) else {
            return 0
        }
        defer { try? FileManager.default.removeItem(at: outputURL) }
        guard process.isRunning else { return process.terminationStatus }
        process.terminate()
        let deadline = ContinuousClock.now + grace
        while process.isRunning && ContinuousClock.now < deadline {
            usleep(10_000)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    deinit {
        stop(grace: .seconds(1))
    }
}
