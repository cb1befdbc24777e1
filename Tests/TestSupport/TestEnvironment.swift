import Foundation
import Testing

/// Where the tests run, and which of them this machine can run.
package enum TestEnvironment {
    /// CI sets `CI=true`; there, privileged tests always run and fail if the machine cannot run them.
    package static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }
    package static var isRoot: Bool { geteuid() == 0 }
    /// Tests that need root, BPF or network namespaces run under CI, and as root elsewhere. A developer
    /// without privileges sees them skipped with `privilegedSkipReason`.
    package static var canRunPrivilegedTests: Bool { isCI || isRoot }
    package static let privilegedSkipReason: Comment =
        "skipped: needs root for network namespaces and BPF (these tests always run, and must pass, under CI=true)"
}

extension Trait where Self == ConditionTrait {
    /// Marks a test that needs root, BPF or network namespaces: it runs under `CI=true` (and fails there
    /// if the machine cannot run it) and for root; elsewhere it is skipped with a message saying why.
    package static var privileged: Self {
        .enabled(if: TestEnvironment.canRunPrivilegedTests, TestEnvironment.privilegedSkipReason)
    }
}
