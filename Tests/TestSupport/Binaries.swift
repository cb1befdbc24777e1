import Foundation

/// The programs the package builds, found next to the test runner (`swift test` builds them all into
/// the same directory).
package enum Binaries {
    package static var buildDirectory: URL {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return URL(filePath: executable).deletingLastPathComponent()
    }

    /// The `gatehouse` binary under test.
    package static var gatehouse: String {
        buildDirectory.appending(path: "gatehouse").path(percentEncoded: false)
    }
}
