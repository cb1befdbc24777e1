package import Addresses
package import Tunnel
package import BPF
import BPFMaps
import Synchronization

/// The gateway's LPM trie of per-client rules, shared by the session actors: each writes and removes
/// only entries keyed by its own client's addresses, so they never write the same key. Whole entries
/// are written (a rule is never patched in place), and only those that changed: a change to one resource
/// costs each client one write, not one per resource.
package final class KernelRules: Sendable {
    package let program: GatewayTCProgram
    private let counts = Mutex((entries: 0, errors: 0))

    package init(program: GatewayTCProgram) {
        self.program = program
    }

    /// Writes the entries of `rules` that are new or changed since `previous` (each whole), and deletes
    /// the entries of `previous` that `rules` no longer has. Returns how many entries were written and
    /// deleted. A failed write is thrown after the others were tried; `rewritingAll` then writes every
    /// entry the next time, whatever `previous` says.
    @discardableResult
    package func replace(_ previous: [KernelRule], with rules: [KernelRule], rewritingAll: Bool = false) throws(BPFError) -> (written: Int, deleted: Int) {
        var before: [Key: RulePorts] = [:]
        for rule in previous { before[Key(client: rule.client, destination: rule.destination)] = rule.ports }
        var kept = Set<Key>()
        var added = 0
        var written = 0
        var removed = 0
        var failure: BPFError?
        for rule in rules {
            let key = Key(client: rule.client, destination: rule.destination)
            kept.insert(key)
            let old = before[key]
            if old == nil { added += 1 }
            if !rewritingAll, let old, old.kernelEquivalent(rule.ports) { continue }
            do throws(BPFError) {
                try program.rules.update(KernelRuleLayout.value(rule.ports), forKey: KernelRuleLayout.key(rule))
                written += 1
            } catch {
                failure = error
            }
        }
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
        return (written, removed)
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

extension RulePorts {
    /// Whether the kernel's entry would be the same bytes (`widened` is the compiler's note, not the kernel's).
    func kernelEquivalent(_ other: RulePorts) -> Bool {
        allowsAll == other.allowsAll && icmp == other.icmp && tcp == other.tcp && udp == other.udp
    }
}
