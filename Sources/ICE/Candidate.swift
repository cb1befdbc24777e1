package import Addresses

/// An ICE candidate (RFC 8445 section 5.1), as the `candidate:` attribute text of RFC 8839 section 5.1
/// carries it between the ends of a flow (`ice_candidates`). UDP and component 1 only: WireGuard is one
/// UDP flow.
package struct ICECandidate: Hashable, Sendable, CustomStringConvertible {
    /// RFC 8445 section 5.1.1: where the address came from.
    package enum Kind: String, Sendable, CaseIterable {
        case host
        case serverReflexive = "srflx"
        case peerReflexive = "prflx"
        case relayed = "relay"

        /// The recommended type preferences of RFC 8445 section 5.1.2.2: direct paths first.
        package var typePreference: UInt32 {
            switch self {
            case .host: 126
            case .peerReflexive: 110
            case .serverReflexive: 100
            case .relayed: 0
            }
        }
    }

    package var foundation: String
    package var component: UInt8
    package var priority: UInt32
    package var address: SocketAddress
    package var kind: Kind
    /// For a server-reflexive, peer-reflexive or relayed candidate: its base (`raddr`, `rport`).
    package var related: SocketAddress?

    package init(foundation: String, component: UInt8 = 1, priority: UInt32, address: SocketAddress, kind: Kind, related: SocketAddress? = nil) {
        self.foundation = foundation
        self.component = component
        self.priority = priority
        self.address = address
        self.kind = kind
        self.related = related
    }

    /// A candidate of ours: its priority by RFC 8445 section 5.1.2.1 and its foundation by section
    /// 5.1.1.3 (the same for candidates of one type, base address and server).
    package init(kind: Kind, address: SocketAddress, base: SocketAddress? = nil, server: SocketAddress? = nil, localPreference: UInt16 = 65535) {
        self.init(foundation: Self.foundation(kind: kind, base: (base ?? address).ip, server: server),
                  priority: Self.priority(kind: kind, localPreference: localPreference), address: address, kind: kind,
                  related: kind == .host ? nil : base)
    }

    /// priority = 2^24 × type preference + 2^8 × local preference + (256 − component ID).
    /// Host candidates for `addresses`, in order of preference (the first the most preferred).
    package static func hosts(_ addresses: [SocketAddress]) -> [ICECandidate] {
        addresses.enumerated().map { index, address in
            ICECandidate(kind: .host, address: address, localPreference: UInt16(65535 - min(index, 1000)))
        }
    }

    package static func priority(kind: Kind, localPreference: UInt16 = 65535, component: UInt8 = 1) -> UInt32 {
        kind.typePreference << 24 + UInt32(localPreference) << 8 + (256 - UInt32(component))
    }

    /// A foundation of ICE characters, the same for the same type, base and server (FNV-1a over them).
    static func foundation(kind: Kind, base: SocketAddress.IP, server: SocketAddress?) -> String {
        var hash: UInt32 = 2_166_136_261
        let text = "\(kind.rawValue)|\(SocketAddress(ip: base, port: 0).address)|\(server?.description ?? "")|udp"
        for byte in text.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return String(hash)
    }

    /// Parses the attribute's value: `candidate:FOUNDATION COMPONENT udp PRIORITY ADDRESS PORT typ TYPE
    /// [raddr ADDRESS rport PORT] [extension value]...` (with or without `a=` and `candidate:`). Nil for
    /// anything else: another transport (TCP candidates), a host name (mDNS `.local`), a component
    /// over 256, a priority of zero.
    package init?(sdp text: String) {
        var line = Substring(text)
        if line.hasPrefix("a=") { line = line.dropFirst(2) }
        if line.hasPrefix("candidate:") { line = line.dropFirst("candidate:".count) }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 8, fields[6] == "typ",
              !fields[0].isEmpty, fields[0].count <= 32,
              fields[0].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }),
              let component = UInt8(fields[1]), component >= 1,
              fields[2].lowercased() == "udp",
              let priority = UInt32(fields[3]), priority >= 1, priority <= Int32.max,
              let port = UInt16(fields[5]), port > 0,
              let address = try? SocketAddress(String(fields[4]), port: port),
              let kind = Kind(rawValue: String(fields[7]))
        else { return nil }
        var related: SocketAddress?
        var index = 8
        var relatedAddress: String?
        var relatedPort: UInt16?
        while index + 1 < fields.count {
            switch fields[index] {
            case "raddr": relatedAddress = String(fields[index + 1])
            case "rport": relatedPort = UInt16(fields[index + 1])
            default: break  // extensions (generation, ufrag, network-id, ...) are ignored
            }
            index += 2
        }
        if let relatedAddress, let relatedPort {
            // "0.0.0.0 0" hides the base (RFC 8839 section 5.1); it is no address.
            if let base = try? SocketAddress(relatedAddress, port: relatedPort), relatedPort != 0 { related = base }
        }
        self.init(foundation: String(fields[0]), component: component, priority: priority, address: address, kind: kind, related: related)
    }

    /// The attribute's value, `candidate:...`.
    package var sdp: String {
        var text = "candidate:\(foundation) \(component) udp \(priority) \(address.address) \(address.port) typ \(kind.rawValue)"
        if let related { text += " raddr \(related.address) rport \(related.port)" }
        return text
    }

    package var description: String { sdp }
}

/// A candidate pair (RFC 8445 section 6.1.2): one of ours, one of the other end's.
package struct ICEPair: Hashable, Sendable {
    package var local: ICECandidate
    package var remote: ICECandidate

    package init(local: ICECandidate, remote: ICECandidate) {
        self.local = local
        self.remote = remote
    }

    /// RFC 8445 section 6.1.2.3: G the controlling agent's candidate's priority, D the controlled's:
    /// 2^32 × MIN(G, D) + 2 × MAX(G, D) + (G > D ? 1 : 0).
    package func priority(controlling: Bool) -> UInt64 {
        let g = UInt64(controlling ? local.priority : remote.priority)
        let d = UInt64(controlling ? remote.priority : local.priority)
        return (min(g, d) << 32) + 2 * max(g, d) + (g > d ? 1 : 0)
    }

    /// Pairs with the same key are redundant (section 6.1.2.4): the same local base (a relayed
    /// candidate is its own base) and the same remote address.
    package var redundancyKey: String {
        "\(local.address)|\(local.kind == .relayed ? "relay" : "base")|\(remote.address)"
    }

    /// `local:foundation/remote:foundation`, which the checks' unfreezing goes by (section 6.1.2.6).
    package var foundation: String { "\(local.foundation)/\(remote.foundation)" }
}

/// The checklist of RFC 8445 section 6.1.2: every local candidate paired with every remote one of the
/// same address family and component, a server-reflexive local candidate replaced by its base (one
/// sends from the base), pairs redundant after that (same local base and remote candidate) pruned to
/// the one of highest priority, highest priority first, at most `limit` pairs.
package enum ICEChecklist {
    package static func pairs(local: [ICECandidate], remote: [ICECandidate], controlling: Bool, limit: Int = 100) -> [ICEPair] {
        var best: [ICEPair: UInt64] = [:]
        var byKey: [String: ICEPair] = [:]
        for ours in local {
            var sent = ours
            if ours.kind == .serverReflexive {
                guard let base = ours.related else { continue }
                // The base as a host candidate, with the reflexive candidate's priority for the pair.
                sent = ICECandidate(foundation: ours.foundation, component: ours.component, priority: ours.priority, address: base, kind: .host)
            }
            for theirs in remote where theirs.component == sent.component && theirs.address.isIPv6 == sent.address.isIPv6 {
                let pair = ICEPair(local: sent, remote: theirs)
                let priority = pair.priority(controlling: controlling)
                let key = pair.redundancyKey
                if let existing = byKey[key], let existingPriority = best[existing], existingPriority >= priority { continue }
                if let existing = byKey[key] { best[existing] = nil }
                byKey[key] = pair
                best[pair] = priority
            }
        }
        return best.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.foundation < $1.key.foundation }.prefix(limit).map(\.key)
    }
}
