/// A condition that did not come true in time.
package struct WaitError: Error, CustomStringConvertible {
    package let what: String
    package var description: String { what }
}

/// Waiting for a condition with a deadline, instead of sleeping for a guessed time.
package enum Wait {
    /// Polls `condition` every `interval` until it returns true; throws `WaitError` naming `what`
    /// once `timeout` has passed.
    package static func until(
        _ what: String, timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20),
        _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await condition() { return }
            if ContinuousClock.now >= deadline { throw WaitError(what: "timed out after \(timeout) waiting until \(what)") }
            try await Task.sleep(for: interval)
        }
    }
}
