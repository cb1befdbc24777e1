package import Addresses
package import BPF
import BPFMaps
import Synchronization

/// The gateway's LPM trie of per-client rules, shared by the session actors: each writes and removes
/// only entries keyed by its own client's addresses, so they never write the same key. Whole entries
/// are written every time (a rule is never patched in place).
package final class KernelRules: Sendable {
    package let program: GatewayTCProgram
    private let counts = Mutex((entries: 0, errors: 0))

    package init(program: GatewayTCProgram) {
        self.program = program
    }

    /// Writes `rules` and deletes the entries of `previous` that `rules` no longer has.
    package func replace(_ previous: [KernelRule], with rules: [KernelRule]) throws(BPFError) {
        let kept = Set(rules.map { Key(client: $0.client, destination: $0.destination) })
        var added = 0
        var removed = 0
        var failure: BPFError?
        for rule in rules {
            do throws(BPFError) {
                try program.rules.update(KernelRuleLayout.value(rule.ports), forKey: KernelRuleLayout.key(rule))
            } catch {
                failure = error
            }
        }
        let before = Set(previous.map { Key(client: $0.client, destination: $0.destination) })
        added = kept.subtracting(before).count
        for rule in previous where !kept.contains(Key(client: rule.client, destination: rule.destination)) {
            do throws(BPFError) {
                if try program.rules.delete(KernelRuleLayout.key(rule)) { removed += 1 }
            } catch {
                failure = error
            }
        }
        counts.withLock { counts in
            counts.entries += added - removed
            if failure != nil { counts.errors += 1 }
        }
        if let failure { throw failure }
    }

    /// Entries written by sessions (what the kernel should hold).
    package var entryCount: Int { counts.withLock { $0.entries } }
    /// Writes that failed.
    package var errorCount: Int { counts.withLock { $0.errors } }

    /// What the kernel holds, read back.
    package func readBack() throws(BPFError) -> [KernelRule] {
        try program.rules.entries().compactMap { KernelRuleLayout.rule($0.key, $0.value) }
    }

    private struct Key: Hashable {
        var client: SocketAddress.IP
        var destination: AddressRange
    }
}
