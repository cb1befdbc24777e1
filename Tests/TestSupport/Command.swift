import Foundation

/// What a finished command printed and how it ended.
package struct CommandOutput: Sendable {
    package let arguments: [String]
    package let status: Int32
    package let standardOutput: String
    package let standardError: String

    package var succeeded: Bool { status == 0 }
}

/// A command failed; the message carries everything needed to see why from a test log.
package struct CommandError: Error, CustomStringConvertible {
    package let output: CommandOutput
    package var description: String {
        "`\(output.arguments.joined(separator: " "))` exited \(output.status): \(output.standardError)\(output.standardOutput)"
    }
}

/// Foundation's Process on Linux sets up the child's descriptors while other threads may be opening
/// and closing theirs: two launches at once have been seen to hand a child the wrong stdout. Tests run
/// in parallel, so every launch goes through this lock.
private let launchLock = NSLock()

/// Runs programs to completion. Output goes through temporary files rather than pipes, so a chatty
/// program can never block on a full pipe while we wait for it.
package enum Command {
    /// Runs `arguments` (the first is looked up on PATH) and waits for it to end; throws
    /// `CommandError` on a non-zero exit when `check` is true.
    /// Starts `process`, one launch at a time.
    package static func launch(_ process: Process) throws {
        launchLock.lock()
        defer { launchLock.unlock() }
        try process.run()
    }

    /// Blocks the calling thread: only for synchronous code (cleanup in `deinit`, `TestNetwork`'s
    /// teardown); async code calls `run`, which waits on a thread of its own.
    @discardableResult
    package static func runBlocking(
        _ arguments: [String], check: Bool = true, environment: [String: String]? = nil
    ) throws -> CommandOutput {
        let directory = FileManager.default.temporaryDirectory
        let id = UUID().uuidString
        let outURL = directory.appending(path: "gatehouse-cmd-\(id).out")
        let errURL = directory.appending(path: "gatehouse-cmd-\(id).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let process = Process()
        process.executableURL = URL(filePath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try Command.launch(process)
        process.waitUntilExit()
        let output = CommandOutput(
            arguments: arguments,
            status: process.terminationStatus,
            standardOutput: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            standardError: (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        )
        if check && !output.succeeded { throw CommandError(output: output) }
        return output
    }

    /// Runs `arguments` on a thread of its own and waits for the end without holding a thread of the
    /// cooperative pool: a blocking wait there (two threads on this machine) starves whatever else the
    /// test process runs (tasks of other tests were seen delayed by 34 s).
    @discardableResult
    package static func run(
        _ arguments: [String], check: Bool = true, environment: [String: String]? = nil
    ) async throws -> CommandOutput {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try runBlocking(arguments, check: check, environment: environment) }) }.start()
        }
    }
}
