import Foundation
import Synchronization

/// A long-running program (a server, a peer) started by a test. It is stopped by `stop()` or when the
/// `TestNetwork` that started it is cleaned up.
package final class BackgroundProcess: Sendable {
    package let arguments: [String]
    private let process: Mutex<Process?>
    private let outputURL: URL
    /// What the program wrote, kept when it stops (its log file is removed then).
    private let finalOutput = Mutex<String?>(nil)

    /// Starts `arguments` (the first looked up on PATH) on this host. Stop it with `stop()`; it is also
    /// stopped when the object goes away.
    package init(arguments: [String], environment: [String: String]? = nil) throws {
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
        try Command.launch(process)
        self.process = Mutex(process)
    }

    package var processIdentifier: Int32 { process.withLock { $0?.processIdentifier ?? 0 } }

    package var isRunning: Bool { process.withLock { $0?.isRunning ?? false } }

    /// Everything the program wrote to stdout and stderr so far.
    package var output: String {
        finalOutput.withLock { $0 } ?? (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
    }

    /// Waits until a line of the output matches `pattern` and returns the first capture group.
    package func waitForMatch(_ pattern: String, timeout: Duration = .seconds(10)) async throws -> String {
        let regex = try Regex(pattern)
        var found: String?
        do {
            try await Wait.until("\(arguments.first ?? "process") printed a line matching \(pattern)", timeout: timeout) {
                if let match = output.firstMatch(of: regex), match.output.count > 1, let capture = match.output[1].substring {
                found = String(capture)
                return true
            }
                if !isRunning { throw WaitError(what: "process exited before printing \(pattern): \(output)") }
                return false
            }
        } catch let error as WaitError {
            throw WaitError(what: "\(error.what); running: \(isRunning); output so far:\n\(output)")
        }
        return found ?? ""
    }

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
        defer {
            let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
            finalOutput.withLock { $0 = text }
            try? FileManager.default.removeItem(at: outputURL)
        }
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
