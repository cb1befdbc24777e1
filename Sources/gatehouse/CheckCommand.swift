import ArgumentParser
import BPF
import Glibc

/// Tells an operator whether this machine can run Gatehouse's kernel fast paths: every BPF program
/// embedded in the binary is loaded (and verified by the kernel), then unloaded.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check that this machine can load Gatehouse's BPF programs.",
        discussion: """
            Loads every BPF program embedded in this binary into the kernel and unloads it again. \
            Needs root (or CAP_BPF and CAP_NET_ADMIN). Exits non-zero if any program fails to load, \
            with libbpf's and the verifier's messages.
            """
    )

    func run() async throws {
        var failures = 0
        for object in EmbeddedBPFObject.all {
            do {
                let loaded = try BPFObject(object)
                let programs = loaded.programNames.joined(separator: ", ")
                print("ok    \(object.name): programs \(programs); maps \(loaded.mapNames.joined(separator: ", "))")
            } catch {
                failures += 1
                print("FAIL  \(object.name): \(error)")
            }
        }
        if failures > 0 {
            if geteuid() != 0 {
                print("hint: loading BPF programs needs root, or CAP_BPF and CAP_NET_ADMIN")
            }
            throw ExitCode(1)
        }
    }
}
