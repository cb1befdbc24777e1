package import Addresses

/// Which peer addresses an allocation may talk to (RFC 8656 section 21.2 on relaying to internal
/// addresses; every check below stopped a CVE in some TURN server).
///
/// Refused by default: loopback, link-local (including the cloud metadata address 169.254.169.254),
/// multicast, unspecified and broadcast addresses, and the relay's own addresses except when the peer is
/// another allocation on this relay (the hairpin) — and the IPv4-mapped and IPv4-compatible IPv6 forms
/// of all of them. Private ranges stay allowed: gateways live there. `deny` ranges are refused whatever
/// else holds; `allow` ranges lift the defaults (tests on loopback need them).
package struct PeerPolicy: Sendable {
    package var allow: [AddressRange]
    package var deny: [AddressRange]
    package var relayAddresses: Set<SocketAddress.IP>

    package init(allow: [AddressRange] = [], deny: [AddressRange] = [], relayAddresses: Set<SocketAddress.IP> = []) {
        self.allow = allow
        self.deny = deny
        self.relayAddresses = relayAddresses
    }

    /// Whether data may flow to and from `ip`. `isRelayedAddress` says the peer is a relayed transport
    /// address of this relay (the hairpin case), which only the caller can know.
    package func permits(_ ip: SocketAddress.IP, isRelayedAddress: Bool = false) -> Bool {
        let forms = [ip] + (ip.embeddedIPv4.map { [$0] } ?? [])
        if forms.contains(where: { form in deny.contains { $0.contains(form) } }) { return false }
        if forms.contains(where: { form in allow.contains { $0.contains(form) } }) { return true }
        for form in forms {
            if Self.refusedByDefault.contains(where: { $0.contains(form) }) { return false }
            if relayAddresses.contains(form) && !isRelayedAddress { return false }
        }
        return true
    }

    static let refusedByDefault: [AddressRange] = [
        "0.0.0.0/8",  // "this network", including the unspecified address
        "127.0.0.0/8",  // loopback
        "169.254.0.0/16",  // link-local, including 169.254.169.254 (cloud metadata)
        "224.0.0.0/4",  // multicast
        "255.255.255.255/32",  // limited broadcast
        "::/128",  // unspecified
        "::1/128",  // loopback
        "fe80::/10",  // link-local
        "ff00::/8",  // multicast
    ].map { text in
        // The literals above are valid ranges; a typo would fail every test of this type.
        (try? AddressRange(text)) ?? AddressRange(network: .v4(0), prefixLength: 0)
    }
}
