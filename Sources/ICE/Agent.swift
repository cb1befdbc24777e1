package import Addresses
package import Foundation

/// One end of ICE for one flow (RFC 8445 sections 6-8), sans-IO: candidates come in (`addLocal`,
/// `addRemote`, trickled in any order), datagrams that are STUN come in (`receive`), time passes
/// (`poll`), and what to send and what was decided come out. The client is controlling, the gateway
/// controlled; a role conflict is resolved by the tie-breakers (section 7.3.1.1). The controlling agent
/// nominates (regular nomination) the best valid pair once the checks that could beat it are done, or
/// a short while after the first success, and a better pair later should one succeed after that; a
/// controlled agent accepts a nomination by USE-CANDIDATE (regular or aggressive). Checks are paced
/// every `pace` (Ta), triggered checks first, and each is retransmitted until `attempts` went unanswered.
package struct ICEAgent {
    package struct Credentials: Equatable, Sendable {
        package var ufrag: String
        package var password: String

        package init(ufrag: String, password: String) {
            self.ufrag = ufrag
            self.password = password
        }
    }

    package enum Output: Equatable {
        /// Send `bytes` from `local` (a host candidate's socket, or through the relay of a relayed one)
        /// to `destination`.
        case send([UInt8], from: ICECandidate, to: SocketAddress)
        /// The pair data goes over from now on (again when a better one is nominated).
        case selected(ICEPair)
        /// Every pair failed and nothing more can be tried (until new candidates come).
        case failed
        /// The selected pair stopped answering its keepalive checks: data has no way now (the runtime
        /// makes a fresh establishment).
        case lost(ICEPair)
    }

    enum PairState { case waiting, inProgress, succeeded, failed }

    struct Entry {
        var pair: ICEPair
        var priority: UInt64
        var state: PairState = .waiting
        var nominated = false
    }

    struct Transaction {
        var key: String
        var sentAt: Date
        var attempts: Int
        var nominating: Bool
        var bytes: [UInt8]
        var keepalive = false
    }

    package private(set) var controlling: Bool
    package let local: Credentials
    package let remote: Credentials
    package let tieBreaker: UInt64
    package var pace: TimeInterval = 0.05
    package var retransmitAfter: TimeInterval = 0.25
    package var attempts = 6
    /// How long the controlling agent waits after its first valid pair for better ones to finish.
    package var nominationDelay: TimeInterval = 0.3
    /// How often the controlling agent checks its selected pair once it has one (client spec: 25 s,
    /// which keeps NAT bindings open); a keepalive that goes unanswered through every retransmission
    /// loses the pair.
    package var keepaliveInterval: TimeInterval = 25

    package private(set) var localCandidates: [ICECandidate] = []
    package private(set) var remoteCandidates: [ICECandidate] = []
    package private(set) var selected: ICEPair?
    private var entries: [String: Entry] = [:]
    private var triggered: [String] = []
    private var transactions: [[UInt8]: Transaction] = [:]
    private var nextCheck = Date.distantPast
    private var firstValid: Date?
    private var nominating: String?
    private var reportedFailure = false
    private var nextKeepalive = Date.distantFuture

    package init(controlling: Bool, local: Credentials, remote: Credentials, tieBreaker: UInt64 = .random(in: 0...UInt64.max)) {
        self.controlling = controlling
        self.local = local
        self.remote = remote
        self.tieBreaker = tieBreaker
    }

    package mutating func addLocal(_ candidate: ICECandidate) {
        guard !localCandidates.contains(candidate) else { return }
        localCandidates.append(candidate)
        rebuild()
    }

    /// A candidate of the other side. One already known, trickled again, means the other side
    /// restarted its checks (a lost pair, a relay gone, a network change): its pairs are checked again
    /// from here too (the nominated one aside), so that this side's NAT lets the other side's checks in.
    package mutating func addRemote(_ candidate: ICECandidate) {
        guard !remoteCandidates.contains(where: { $0.address == candidate.address && $0.kind == candidate.kind }) else {
            for (key, entry) in entries where entry.pair.remote.address == candidate.address && entry.state != .inProgress && !entry.nominated {
                entries[key]!.state = .waiting
                reportedFailure = false
            }
            return
        }
        remoteCandidates.append(candidate)
        rebuild()
    }

    private mutating func rebuild() {
        for pair in ICEChecklist.pairs(local: localCandidates, remote: remoteCandidates, controlling: controlling) {
            let key = pair.redundancyKey
            if entries[key] == nil { entries[key] = Entry(pair: pair, priority: pair.priority(controlling: controlling)) }
        }
        reportedFailure = false
    }

    /// A datagram that arrived at `base` (the host candidate's address, or the relayed address for what
    /// the relay passed on) from `source`. Returns what to send and what was decided; nil when the
    /// datagram is no check of this agent's (not STUN, or failing its integrity).
    package mutating func receive(_ bytes: [UInt8], at base: ICECandidate, from source: SocketAddress, now: Date) -> [Output]? {
        let expected = "\(local.ufrag):\(remote.ufrag)"
        guard let message = CheckMessage.parse(bytes, password: { [local] in $0 == expected ? local.password : nil },
                                               answerPassword: remote.password)
        else { return nil }
        switch message {
        case let .request(request):
            return answer(request, at: base, from: source, now: now)
        case let .success(transactionID, mapped):
            return succeeded(transactionID, from: source, mapped: mapped, now: now)
        case let .error(transactionID, code):
            guard let transaction = transactions.removeValue(forKey: transactionID) else { return [] }
            if code == 487 {
                // The other side keeps its role: we take the other and check the pair again.
                controlling.toggle()
                for key in Array(entries.keys) { entries[key]!.priority = entries[key]!.pair.priority(controlling: controlling) }
                entries[transaction.key]?.state = .waiting
                triggered.append(transaction.key)
            } else {
                entries[transaction.key]?.state = .failed
            }
            return []
        }
    }

    private mutating func answer(_ request: CheckMessage.Request, at base: ICECandidate, from source: SocketAddress, now: Date) -> [Output] {
        // Role conflict (section 7.3.1.1).
        switch (controlling, request.role) {
        case let (true, .controlling(theirs)):
            if tieBreaker >= theirs {
                return [.send(CheckMessage.error(transactionID: request.transactionID, code: 487, password: local.password), from: base, to: source)]
            }
            controlling = false
        case let (false, .controlled(theirs)):
            if tieBreaker >= theirs {
                controlling = true
            } else {
                return [.send(CheckMessage.error(transactionID: request.transactionID, code: 487, password: local.password), from: base, to: source)]
            }
        default:
            break
        }
        var outputs: [Output] = [.send(CheckMessage.success(transactionID: request.transactionID, mapped: source, password: local.password),
                                       from: base, to: source)]
        // A source we did not know is a peer-reflexive candidate (section 7.3.1.3).
        if !remoteCandidates.contains(where: { $0.address == source }) {
            remoteCandidates.append(ICECandidate(foundation: "prflx\(remoteCandidates.count)", priority: request.priority, address: source, kind: .peerReflexive))
        }
        let remoteCandidate = remoteCandidates.first { $0.address == source }!
        let localCandidate = base.kind == .relayed ? base : ICECandidate(foundation: base.foundation, priority: base.priority, address: base.address, kind: .host)
        let pair = ICEPair(local: localCandidate, remote: remoteCandidate)
        let key = pair.redundancyKey
        if entries[key] == nil { entries[key] = Entry(pair: pair, priority: pair.priority(controlling: controlling)) }
        if request.useCandidate && !controlling { entries[key]!.nominated = true }
        // A triggered check (section 7.3.1.4), unless the pair already works.
        switch entries[key]!.state {
        case .succeeded:
            if entries[key]!.nominated && !controlling { outputs += select(key) }
        case .inProgress:
            break
        case .waiting, .failed:
            entries[key]!.state = .waiting
            if !triggered.contains(key) { triggered.append(key) }
        }
        return outputs
    }

    private mutating func succeeded(_ transactionID: [UInt8], from source: SocketAddress, mapped: SocketAddress, now: Date) -> [Output] {
        guard let transaction = transactions.removeValue(forKey: transactionID), var entry = entries[transaction.key] else { return [] }
        // Symmetric: the answer must come from where the check went (section 7.2.5.2.1).
        guard source == entry.pair.remote.address else {
            entries[transaction.key]?.state = .failed
            return []
        }
        entry.state = .succeeded
        if transaction.nominating {
            entry.nominated = true
            if nominating == transaction.key { nominating = nil }  // done: a better pair may be nominated later
        }
        entries[transaction.key] = entry
        if firstValid == nil { firstValid = now }
        if entry.nominated { return select(transaction.key) }
        return []
    }

    private mutating func select(_ key: String) -> [Output] {
        guard let pair = entries[key]?.pair, selected != pair else { return [] }
        if let selected, let current = entries[selected.redundancyKey], current.priority > entries[key]!.priority { return [] }
        selected = pair
        if controlling { nextKeepalive = (firstValid ?? Date()).addingTimeInterval(keepaliveInterval) }
        return [.selected(pair)]
    }

    /// A succeeded pair of higher priority than the selected one, not nominated yet.
    private var betterThanSelected: String? {
        guard let selected, let current = entries[selected.redundancyKey] else { return nil }
        return entries.filter { $0.value.state == .succeeded && !$0.value.nominated && $0.value.priority > current.priority }
            .max { $0.value.priority < $1.value.priority }?.key
    }

    /// When to call `poll` next.
    package var nextDeadline: Date {
        let retransmit = transactions.values.map { $0.sentAt.addingTimeInterval(retransmitAfter) }.min() ?? .distantFuture
        let check = entries.values.contains { $0.state == .waiting } || !triggered.isEmpty ? nextCheck : .distantFuture
        let nominate = controlling && selected == nil && nominating == nil ? (firstValid?.addingTimeInterval(nominationDelay) ?? .distantFuture) : .distantFuture
        let keepalive = selected != nil && controlling ? nextKeepalive : .distantFuture
        let upgrade = controlling && nominating == nil && betterThanSelected != nil ? Date.distantPast : .distantFuture
        return min(retransmit, check, nominate, keepalive, upgrade)
    }

    /// Retransmissions, the next paced check, and (controlling) the nomination.
    package mutating func poll(now: Date) -> [Output] {
        var outputs: [Output] = []
        for (id, transaction) in transactions where now.timeIntervalSince(transaction.sentAt) >= retransmitAfter {
            if transaction.attempts >= attempts {
                transactions[id] = nil
                entries[transaction.key]?.state = .failed
                if nominating == transaction.key { nominating = nil }
                if let pair = selected, pair.redundancyKey == transaction.key {
                    // The selected pair is dead.
                    selected = nil
                    nextKeepalive = .distantFuture
                    outputs.append(.lost(pair))
                }
                continue
            }
            transactions[id]!.attempts += 1
            transactions[id]!.sentAt = now
            if let pair = entries[transaction.key]?.pair { outputs.append(.send(transaction.bytes, from: pair.local, to: pair.remote.address)) }
        }
        if controlling, let pair = selected, now >= nextKeepalive {
            nextKeepalive = now.addingTimeInterval(keepaliveInterval)
            let key = pair.redundancyKey
            if !transactions.values.contains(where: { $0.key == key }) {
                let state = entries[key]?.state
                outputs.append(check(key, nominate: false, now: now))
                entries[key]?.state = state ?? .succeeded  // a keepalive does not make the pair pending again
            }
        }
        if now >= nextCheck, let key = nextKey() {
            nextCheck = now.addingTimeInterval(pace)
            outputs.append(check(key, nominate: false, now: now))
        }
        if controlling, nominating == nil, let better = betterThanSelected {
            // A better pair succeeded after the nomination (a direct pair whose checks a loaded machine
            // slowed, after a relayed one was nominated): nominated too, data moves over to it.
            nominating = better
            outputs.append(check(better, nominate: true, now: now))
        }
        if controlling, selected == nil, nominating == nil, let first = firstValid {
            let pending = entries.values.contains { $0.state == .waiting || $0.state == .inProgress }
            let best = entries.filter { $0.value.state == .succeeded }.max { $0.value.priority < $1.value.priority }
            // Nominate the best valid pair once nothing better can still succeed, or after the delay.
            if let best, !pending || now.timeIntervalSince(first) >= nominationDelay
                || !entries.values.contains(where: { ($0.state == .waiting || $0.state == .inProgress) && $0.priority > best.value.priority }) {
                nominating = best.key
                outputs.append(check(best.key, nominate: true, now: now))
            }
        }
        if !reportedFailure, selected == nil, !entries.isEmpty, entries.values.allSatisfy({ $0.state == .failed }), transactions.isEmpty {
            reportedFailure = true
            outputs.append(.failed)
        }
        return outputs
    }

    private mutating func nextKey() -> String? {
        while let key = triggered.first {
            triggered.removeFirst()
            if entries[key]?.state == .waiting { return key }
        }
        return entries.filter { $0.value.state == .waiting }.max { $0.value.priority < $1.value.priority }?.key
    }

    private mutating func check(_ key: String, nominate: Bool, now: Date) -> Output {
        let pair = entries[key]!.pair
        entries[key]!.state = .inProgress
        let id = (0..<12).map { _ in UInt8.random(in: 0...255) }
        let priority = ICECandidate.priority(kind: .peerReflexive, localPreference: UInt16(truncatingIfNeeded: pair.local.priority >> 8))
        let request = CheckMessage.Request(transactionID: id, username: "\(remote.ufrag):\(local.ufrag)", priority: priority,
                                           role: controlling ? .controlling(tieBreaker: tieBreaker) : .controlled(tieBreaker: tieBreaker),
                                           useCandidate: nominate && controlling)
        let bytes = CheckMessage.request(request, password: remote.password)
        transactions[id] = Transaction(key: key, sentAt: now, attempts: 1, nominating: nominate, bytes: bytes)
        return .send(bytes, from: pair.local, to: pair.remote.address)
    }
}
