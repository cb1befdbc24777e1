import Foundation

/// A traffic filter of a resource (portal spec): TCP or UDP with port ranges (`tcp:443`,
/// `udp:8000-8100`; a protocol alone means all its ports) or ICMP. An empty filter list allows all
/// traffic. The text form is what `gatehouse admin resource create --filter` takes and what is stored.
package enum Filter: Hashable, Sendable, CustomStringConvertible {
    case tcp(ClosedRange<UInt16>)
    case udp(ClosedRange<UInt16>)
    case icmp

    package static let allPorts: ClosedRange<UInt16> = 1...65535

    package init(_ text: String) throws(FilterError) {
        let lowered = text.lowercased().trimmingCharacters(in: .whitespaces)
        let parts = lowered.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let name = parts[0]
        if name == "icmp" {
            guard parts.count == 1 else { throw .invalid(text, "icmp takes no ports") }
            self = .icmp
            return
        }
        guard name == "tcp" || name == "udp" else { throw .invalid(text, "the protocol must be tcp, udp or icmp") }
        var range = Self.allPorts
        if parts.count == 2 {
            let bounds = parts[1].split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count), let low = UInt16(bounds[0]), let high = UInt16(bounds.last ?? bounds[0]) else {
                throw .invalid(text, "ports must be a number or a range like 8000-8100, each 1-65535")
            }
            guard low >= 1 else { throw .invalid(text, "port 0 is not a port") }
            guard low <= high else { throw .invalid(text, "the range \(low)-\(high) is reversed") }
            range = low...high
        }
        self = name == "tcp" ? .tcp(range) : .udp(range)
    }

    package var description: String {
        switch self {
        case .icmp: "icmp"
        case let .tcp(range): "tcp" + Self.ports(range)
        case let .udp(range): "udp" + Self.ports(range)
        }
    }

    private static func ports(_ range: ClosedRange<UInt16>) -> String {
        if range == allPorts { return "" }
        return range.lowerBound == range.upperBound ? ":\(range.lowerBound)" : ":\(range.lowerBound)-\(range.upperBound)"
    }

    /// Whether a packet of `protocolNumber` (6 TCP, 17 UDP, 1/58 ICMP) to `port` passes this filter.
    package func allows(protocolNumber: UInt8, port: UInt16) -> Bool {
        switch self {
        case .icmp: protocolNumber == 1 || protocolNumber == 58
        case let .tcp(range): protocolNumber == 6 && range.contains(port)
        case let .udp(range): protocolNumber == 17 && range.contains(port)
        }
    }
}

package enum FilterError: Error, Equatable, CustomStringConvertible {
    /// The filter text and what is wrong with it.
    case invalid(String, String)

    package var description: String {
        switch self {
        case let .invalid(text, reason): "filter \"\(text)\": \(reason)"
        }
    }
}

extension [Filter] {
    /// An empty list allows everything; otherwise one filter must allow the packet.
    package func allows(protocolNumber: UInt8, port: UInt16) -> Bool {
        isEmpty || contains { $0.allows(protocolNumber: protocolNumber, port: port) }
    }
}
