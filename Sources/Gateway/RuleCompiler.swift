package import Addresses
package import Policy
package import Tunnel

/// A destination a client is authorised for, as the gateway enforces it: the resource's prefix and its
/// filters (an empty list allows all traffic, as in `Policy.Filter`).
package struct GrantedDestination: Hashable, Sendable {
    package var prefix: AddressRange
    package var filters: [Filter]

    package init(prefix: AddressRange, filters: [Filter]) {
        self.prefix = prefix
        self.filters = filters
    }
}

/// One entry of the gateway's LPM trie: packets from `client` to an address inside `destination` (its
/// longest match) are let through when `ports` allows them.
package struct KernelRule: Hashable, Sendable {
    package var client: SocketAddress.IP
    package var destination: AddressRange
    package var ports: RulePorts
}

/// Compiles a client's authorised destinations into LPM trie entries (gateway spec, "Sessions and
/// enforcement"). A trie answers only the longest prefix that holds the destination, so each entry
/// carries the filters of every destination of the client whose prefix covers its own: any authorised
/// prefix that holds a packet's destination covers the longest one that does (two prefixes holding
/// one address are nested), so the entry found allows exactly what the policy allows. Port ranges are
/// bounded per entry; past the bound the closest ranges are joined (`RulePorts.widened`).
package enum RuleCompiler {
    /// Port ranges per protocol an entry holds (the kernel's entry layout fixes it).
    package static let rangesPerEntry = 8

    /// The entries for a client with `addresses` (its tunnel addresses: each destination is keyed by the
    /// client's address of the same family).
    package static func compile(client addresses: [SocketAddress.IP], _ destinations: [GrantedDestination],
                                rangesPerEntry: Int = rangesPerEntry) -> [KernelRule] {
        var filtersByPrefix: [AddressRange: [[Filter]]] = [:]
        for destination in destinations { filtersByPrefix[destination.prefix, default: []].append(destination.filters) }
        var rules: [KernelRule] = []
        // Every client address has an entry: one with nothing allowed at the family's /0 unless a
        // resource is that /0, so that the kernel tells a client's unauthorised destination from a
        // source that is no client's.
        for client in addresses {
            let everything = AddressRange(network: client.masked(to: 0), prefixLength: 0)
            if filtersByPrefix[everything] == nil { rules.append(KernelRule(client: client, destination: everything, ports: RulePorts())) }
        }
        let entries = filtersByPrefix.sorted { orderedBefore($0.key, $1.key) }
        for (prefix, _) in entries {
            var covering: [[Filter]] = []
            for (other, lists) in entries where other.prefixLength <= prefix.prefixLength && other.contains(prefix.network) {
                covering.append(contentsOf: lists)
            }
            let ports = merge(covering, rangesPerEntry: rangesPerEntry)
            for client in addresses where client.bitWidth == prefix.network.bitWidth {
                rules.append(KernelRule(client: client, destination: prefix, ports: ports))
            }
        }
        return rules
    }

    /// The entry the kernel's trie answers for a packet from `client` to `destination`: the longest
    /// prefix holding it among the client's entries (an entry allowing nothing when no resource holds
    /// it); nil when `client` is no client's address. Either way short of a rule allowing it, the
    /// packet is dropped.
    package static func lookup(_ rules: [KernelRule], client: SocketAddress.IP, destination: SocketAddress.IP) -> KernelRule? {
        rules.filter { $0.client == client && $0.destination.contains(destination) }.max { $0.destination.prefixLength < $1.destination.prefixLength }
    }

    /// The union of several filter lists (each empty list allows everything).
    static func merge(_ lists: [[Filter]], rangesPerEntry: Int) -> RulePorts {
        var ports = RulePorts()
        if lists.contains(where: \.isEmpty) {
            ports.allowsAll = true
            return ports
        }
        var tcp: [ClosedRange<UInt16>] = []
        var udp: [ClosedRange<UInt16>] = []
        for filter in lists.joined() {
            switch filter {
            case .icmp: ports.icmp = true
            case let .tcp(range): tcp.append(range)
            case let .udp(range): udp.append(range)
            }
        }
        var widened = false
        (ports.tcp, widened) = bounded(normalized(tcp), to: rangesPerEntry)
        ports.widened = widened
        (ports.udp, widened) = bounded(normalized(udp), to: rangesPerEntry)
        ports.widened = ports.widened || widened
        return ports
    }

    /// Sorted, with overlapping and adjacent ranges joined.
    package static func normalized(_ ranges: [ClosedRange<UInt16>]) -> [ClosedRange<UInt16>] {
        var result: [ClosedRange<UInt16>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = result.last, UInt32(range.lowerBound) <= UInt32(last.upperBound) + 1 {
                result[result.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                result.append(range)
            }
        }
        return result
    }

    /// At most `count` ranges: the two with the smallest gap between them joined until they fit.
    static func bounded(_ ranges: [ClosedRange<UInt16>], to count: Int) -> ([ClosedRange<UInt16>], Bool) {
        var ranges = ranges
        guard ranges.count > count, count > 0 else { return (ranges, false) }
        while ranges.count > count {
            var narrowest = 0
            for index in 1..<(ranges.count - 1) where gap(ranges, index) < gap(ranges, narrowest) { narrowest = index }
            ranges[narrowest] = ranges[narrowest].lowerBound...ranges[narrowest + 1].upperBound
            ranges.remove(at: narrowest + 1)
        }
        return (ranges, true)
    }

    private static func gap(_ ranges: [ClosedRange<UInt16>], _ index: Int) -> Int {
        Int(ranges[index + 1].lowerBound) - Int(ranges[index].upperBound)
    }

    /// A stable order of prefixes (family, network, length), without formatting them.
    private static func orderedBefore(_ left: AddressRange, _ right: AddressRange) -> Bool {
        switch (left.network, right.network) {
        case let (.v4(a), .v4(b)): (a, left.prefixLength) < (b, right.prefixLength)
        case let (.v6(ah, al), .v6(bh, bl)): (ah, al, left.prefixLength) < (bh, bl, right.prefixLength)
        case (.v4, .v6): true
        case (.v6, .v4): false
        }
    }

}
