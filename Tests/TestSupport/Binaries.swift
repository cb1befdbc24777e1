import Foundation

/// The programs the package builds, found next to the test runner (`swift test` builds them all into
/// the same directory).
package enum Binaries {
    package static var buildDirectory: URL {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return URL(filePath: executable).deletingLastPathComponent()
    }

    /// The package's root directory (where Package.swift is), found upwards from the build directory.
    package static var packageRoot: URL {
        var directory = buildDirectory
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appending(path: "Package.swift").path) { return directory }
            directory = directory.deletingLastPathComponent()
        }
        return URL(filePath: FileManager.default.currentDirectoryPath)
    }

    /// The project's Python (scripts/setup makes it, with aioice).
    package static var python: String {
        packageRoot.appending(path: ".venv/bin/python").path(percentEncoded: false)
    }

    /// The `gatehouse` binary under test.
    package static var gatehouse: String {
        buildDirectory.appending(path: "gatehouse").path(percentEncoded: false)
    }
}
