import Foundation
package import Addresses

/// The address of a resource (portal spec, "resource"): a network, one IP address, or a DNS name
/// pattern. Parsing validates every rule of the spec and says exactly what is wrong.
package enum ResourceAddress: Hashable, Sendable, CustomStringConvertible {
    case cidr(AddressRange)
    case ip(SocketAddress.IP)
    case dns(DNSPattern)

    /// The tunnel ranges a CIDR resource may not overlap (the account's setting; these are the defaults),
    /// and the DNS proxy ranges, which are Gatehouse's own.
    package static let defaultReservedRanges: [AddressRange] = [
        "100.64.0.0/11", "fd00:6761:7465::/48", "100.96.0.0/11", "fd00:6761:7465:8000::/64",
    ].compactMap { try? AddressRange($0) }

    /// Where clients' DNS proxy answers come from: Gatehouse's own, whatever the account's tunnel ranges.
    package static let dnsProxyRanges = ["100.96.0.0/11", "fd00:6761:7465:8000::/64"]

    package enum Kind: String, Sendable, CaseIterable {
        case cidr, ip, dns
    }

    /// Parses `text` as a resource of `kind`. CIDR resources may not be a default route, contain
    /// loopback, or overlap `reserved`.
    package static func parse(_ text: String, kind: Kind, reserved: [AddressRange] = defaultReservedRanges) throws(ResourceAddressError) -> ResourceAddress {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .ip:
            guard !trimmed.contains("/"), let address = try? SocketAddress(trimmed, port: 0) else {
                throw .invalid(text, "not an IPv4 or IPv6 address")
            }
            if isLoopback(address.ip) { throw .invalid(text, "a loopback address is not a resource") }
            return .ip(address.ip)
        case .cidr:
            guard trimmed.contains("/") else { throw .invalid(text, "a CIDR resource needs a prefix length, like 10.0.0.0/24") }
            let range: AddressRange
            do {
                range = try AddressRange(trimmed)
            } catch {
                switch error {
                case let .prefixLength(_, maximum): throw .invalid(text, "prefix length must be 0-\(maximum)")
                case .hostBitsSet: throw .invalid(text, "bits after the prefix must be zero")
                case .malformed: throw .invalid(text, "not a network like 10.0.0.0/24 or fd00::/64")
                }
            }
            if range.prefixLength == 0 { throw .invalid(text, "a default route cannot be a resource") }
            if isLoopback(range.network) || range.contains(.v4(0x7F00_0001)) || range.contains(.v6(0, 1)) {
                throw .invalid(text, "the network contains loopback")
            }
            if let clash = reserved.first(where: { $0.overlaps(range) }) {
                throw .invalid(text, "overlaps the tunnel range \(clash)")
            }
            return .cidr(range)
        case .dns:
            do {
                return .dns(try DNSPattern(trimmed))
            } catch let DNSPatternError.invalid(_, reason) {
                throw .invalid(text, reason)
            } catch {
                throw .invalid(text, "not a DNS name pattern")
            }
        }
    }

    private static func isLoopback(_ ip: SocketAddress.IP) -> Bool {
        switch ip {
        case let .v4(value): value >> 24 == 127
        case .v6: ip == .v6(0, 1) || ip.embeddedIPv4.map(isLoopback) == true
        }
    }

    package var kind: Kind {
        switch self {
        case .cidr: .cidr
        case .ip: .ip
        case .dns: .dns
        }
    }

    package var description: String {
        switch self {
        case let .cidr(range): range.description
        case let .ip(ip): SocketAddress(ip: ip, port: 0).address
        case let .dns(pattern): pattern.text
        }
    }
}

/// A resource address the spec refuses.
package enum ResourceAddressError: Error, Equatable, CustomStringConvertible {
    /// The text and what is wrong with it.
    case invalid(String, String)

    package var description: String {
        switch self {
        case let .invalid(text, reason): "resource address \"\(text)\": \(reason)"
        }
    }
}

extension AddressRange {
    /// Whether the two ranges share any address (one contains the other's network).
    package func overlaps(_ other: AddressRange) -> Bool {
        contains(other.network) || other.contains(network)
    }
}
