package import Addresses
package import Foundation
import STUN

/// The ICE agents of everything that shares one socket (a client's gateways, a gateway's flows), with
/// server-reflexive gathering, sans-IO: a STUN datagram goes to the agent its USERNAME names (a check)
/// or that sent the transaction it answers; time goes to every agent. Each agent belongs to an
/// `Owner` (what the runtime sends data for once a pair is selected).
package struct ICESessions<Owner: Hashable & Sendable> {
    package struct Session {
        package var agent: ICEAgent
        package var owner: Owner
    }

    package enum Output: Equatable {
        /// Send `bytes` from `local` to `destination` (a check, an answer, a Binding request).
        case send([UInt8], from: ICECandidate, to: SocketAddress)
        /// A local candidate to trickle to the other end of the agent's flow (named by its local ufrag).
        case candidate(ICECandidate, ufrag: String)
        /// The agent chose a pair: `owner`'s data goes over it from now on.
        case selected(ICEPair, owner: Owner)
        /// Every pair of the agent failed.
        case failed(owner: Owner, ufrag: String)
        /// The agent's selected pair stopped answering (the runtime calls `restart`).
        case lost(ICEPair, owner: Owner, ufrag: String)
    }

    /// A Binding request to a STUN server, until answered or given up.
    struct Binding {
        var server: SocketAddress
        var base: ICECandidate
        var transactionID: [UInt8]
        var sentAt: Date
        var attempts: Int
    }

    package private(set) var sessions: [String: Session] = [:]
    /// Candidates every agent gets: host ones, and server-reflexive ones as they are learnt.
    package private(set) var localCandidates: [ICECandidate] = []
    private var bindings: [[UInt8]: Binding] = [:]
    /// Remote candidates that came before their agent (trickling can outrun the flow's creation).
    private var early: [String: [ICECandidate]] = [:]
    package var bindingAttempts = 7
    package var bindingRetransmit: TimeInterval = 0.25

    package init() {}

    /// Host candidates: every agent, present and future, pairs from them.
    package mutating func setHostCandidates(_ candidates: [ICECandidate]) -> [Output] {
        var outputs: [Output] = []
        for candidate in candidates where !localCandidates.contains(candidate) {
            outputs += addLocal(candidate)
        }
        return outputs
    }

    /// A local candidate learnt outside (a relayed one, from a TURN allocation): every agent pairs from it.
    package mutating func addLocalCandidate(_ candidate: ICECandidate) -> [Output] {
        guard !localCandidates.contains(candidate) else { return [] }
        return addLocal(candidate)
    }

    /// Forgets a local candidate (its relay went away).
    package mutating func removeLocalCandidate(_ candidate: ICECandidate) {
        localCandidates.removeAll { $0 == candidate }
    }

    private mutating func addLocal(_ candidate: ICECandidate) -> [Output] {
        localCandidates.append(candidate)
        var outputs: [Output] = []
        for ufrag in sessions.keys.sorted() {
            sessions[ufrag]!.agent.addLocal(candidate)
            outputs.append(.candidate(candidate, ufrag: ufrag))
        }
        return outputs
    }

    /// After a network change: every local candidate is forgotten (host, server-reflexive, relayed) and
    /// `hosts` (the new sockets' addresses) are the new ones, trickled to every agent; Binding requests
    /// under way are dropped. Agents are restarted by the caller.
    package mutating func resetLocalCandidates(_ hosts: [ICECandidate]) -> [Output] {
        localCandidates.removeAll()
        bindings.removeAll()
        return setHostCandidates(hosts)
    }

    /// Asks `servers` (the relays, as STUN servers) what address each host candidate of their family
    /// is seen from: server-reflexive candidates follow as the answers come.
    package mutating func gather(from servers: [SocketAddress], now: Date) -> [Output] {
        var outputs: [Output] = []
        for server in servers {
            for base in localCandidates where base.kind == .host && base.address.isIPv6 == server.isIPv6 {
                let id = (0..<12).map { _ in UInt8.random(in: 0...255) }
                let bytes = BindingMessage.request(transactionID: id)
                bindings[id] = Binding(server: server, base: base, transactionID: id, sentAt: now, attempts: 1)
                outputs.append(.send(bytes, from: base, to: server))
                break  // one base per family: a wildcard socket sends them all alike
            }
        }
        return outputs
    }

    /// Starts an agent for a flow: `local`'s ufrag names it.
    package mutating func add(owner: Owner, controlling: Bool, local: ICEAgent.Credentials, remote: ICEAgent.Credentials) -> [Output] {
        var agent = ICEAgent(controlling: controlling, local: local, remote: remote)
        agent.keepaliveInterval = keepaliveInterval
        for candidate in localCandidates { agent.addLocal(candidate) }
        for candidate in early.removeValue(forKey: local.ufrag) ?? [] { agent.addRemote(candidate) }
        sessions[local.ufrag] = Session(agent: agent, owner: owner)
        return localCandidates.map { .candidate($0, ufrag: local.ufrag) }
    }

    /// A fresh establishment for the agent named `ufrag` (its selected pair died, or went through a
    /// relay that is gone): a new agent with the same credentials and the other end's candidates, paired
    /// from today's local candidates.
    package mutating func restart(ufrag: String) {
        guard let old = sessions[ufrag] else { return }
        var agent = ICEAgent(controlling: old.agent.controlling, local: old.agent.local, remote: old.agent.remote)
        agent.keepaliveInterval = old.agent.keepaliveInterval
        for candidate in localCandidates { agent.addLocal(candidate) }
        for candidate in old.agent.remoteCandidates where candidate.kind != .peerReflexive { agent.addRemote(candidate) }
        sessions[ufrag] = Session(agent: agent, owner: old.owner)
    }

    /// How often controlling agents check their selected pair (25 s; tests make it short).
    package var keepaliveInterval: TimeInterval = 25

    package mutating func remove(ufrag: String) {
        sessions[ufrag] = nil
        early[ufrag] = nil
    }

    /// Removes every agent of `owner`.
    package mutating func remove(owner: Owner) {
        sessions = sessions.filter { $0.value.owner != owner }
    }

    /// The other end's candidates for the agent with local ufrag `ufrag` (kept until the agent comes).
    package mutating func addRemote(_ candidates: [ICECandidate], ufrag: String) {
        if sessions[ufrag] == nil {
            early[ufrag, default: []] += candidates
            if early.count > 1024 { early.removeAll() }  // a flood of unknown flows is not kept
            return
        }
        for candidate in candidates { sessions[ufrag]!.agent.addRemote(candidate) }
    }

    /// A STUN datagram that came to `base` from `source`: nil when it is nobody's (the caller drops it).
    package mutating func receive(_ bytes: [UInt8], at base: ICECandidate, from source: SocketAddress, now: Date) -> [Output]? {
        guard bytes.count >= 20 else { return nil }
        let type = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let transactionID = Array(bytes[8..<20])
        if type == 0x0101, let binding = bindings[transactionID], source == binding.server {
            guard let mapped = BindingMessage.mapped(in: bytes, transactionID: transactionID) else { return [] }
            bindings[transactionID] = nil
            let candidate = ICECandidate(kind: .serverReflexive, address: mapped, base: binding.base.address, server: binding.server)
            guard mapped != binding.base.address, !localCandidates.contains(where: { $0.address == mapped }) else { return [] }
            return addLocal(ICECandidate(foundation: candidate.foundation, priority: candidate.priority, address: mapped,
                                         kind: .serverReflexive, related: binding.base.address))
        }
        if type == 0x0001 {
            // A check: USERNAME is `ourUfrag:theirUfrag`.
            guard let username = BindingMessage.username(in: bytes), let ufrag = username.split(separator: ":").first.map(String.init),
                  sessions[ufrag] != nil else { return nil }
            return wrap(sessions[ufrag]!.agent.receive(bytes, at: base, from: source, now: now), ufrag: ufrag)
        }
        // An answer to a check: the agent whose password it holds (the one that sent it).
        for ufrag in sessions.keys.sorted() where sessions[ufrag]!.agent.remoteCandidates.contains(where: { $0.address == source }) {
            if let outputs = sessions[ufrag]!.agent.receive(bytes, at: base, from: source, now: now) { return wrap(outputs, ufrag: ufrag) }
        }
        return nil
    }

    private func wrap(_ outputs: [ICEAgent.Output]?, ufrag: String) -> [Output]? {
        guard let outputs, let owner = sessions[ufrag]?.owner else { return nil }
        return outputs.map {
            switch $0 {
            case let .send(bytes, from, to): .send(bytes, from: from, to: to)
            case let .selected(pair): .selected(pair, owner: owner)
            case .failed: .failed(owner: owner, ufrag: ufrag)
            case let .lost(pair): .lost(pair, owner: owner, ufrag: ufrag)
            }
        }
    }

    /// When `poll` has something to do next.
    package var nextDeadline: Date {
        let agents = sessions.values.map(\.agent.nextDeadline).min() ?? .distantFuture
        let gathering = bindings.values.map { $0.sentAt.addingTimeInterval(bindingRetransmit * Double(1 << min($0.attempts - 1, 4))) }.min() ?? .distantFuture
        return min(agents, gathering)
    }

    package mutating func poll(now: Date) -> [Output] {
        var outputs: [Output] = []
        for (id, binding) in bindings where now >= binding.sentAt.addingTimeInterval(bindingRetransmit * Double(1 << min(binding.attempts - 1, 4))) {
            if binding.attempts >= bindingAttempts {
                bindings[id] = nil
                continue
            }
            bindings[id]!.attempts += 1
            bindings[id]!.sentAt = now
            outputs.append(.send(BindingMessage.request(transactionID: id), from: binding.base, to: binding.server))
        }
        for ufrag in sessions.keys.sorted() where sessions[ufrag]!.agent.nextDeadline <= now {
            outputs += wrap(sessions[ufrag]!.agent.poll(now: now), ufrag: ufrag) ?? []
        }
        return outputs
    }
}

/// Plain STUN Binding (RFC 8489) for server-reflexive candidates: a request with FINGERPRINT only, and
/// the XOR-MAPPED-ADDRESS of the success answering it.
package enum BindingMessage {
    package static func request(transactionID: [UInt8]) -> [UInt8] {
        var writer = STUNCodec.Writer()
        writer.u16(0x0001)
        writer.u16(0)
        writer.bytes([0x21, 0x12, 0xA4, 0x42])
        writer.bytes(transactionID)
        writer.appendFingerprint()
        return writer.finished()
    }

    /// The mapped address of a Binding success answering `transactionID`.
    package static func mapped(in bytes: [UInt8], transactionID: [UInt8]) -> SocketAddress? {
        guard bytes.count >= 20, bytes[0] == 0x01, bytes[1] == 0x01, Array(bytes[8..<20]) == transactionID,
              let value = STUNCodec.firstAttribute(0x0020, in: bytes) else { return nil }
        return value.withUnsafeBytes { STUNCodec.decodeXORAddress($0, transactionID: transactionID) }
    }

    /// The USERNAME of a request (unverified: the agent it names checks its integrity).
    package static func username(in bytes: [UInt8]) -> String? {
        STUNCodec.firstAttribute(0x0006, in: bytes).flatMap { String(validating: $0, as: UTF8.self) }
    }
}
