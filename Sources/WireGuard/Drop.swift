/// Why a WireGuard datagram, or a packet for or out of a tunnel, was dropped: the runtime counts each
/// reason (the gateway's `/metrics`), so an operator can tell a probe from a misconfigured client.
package enum WireGuardDrop: String, Error, CaseIterable, Sendable {
    /// Too short, the wrong size for its type, an unknown type, or non-zero reserved bytes.
    case malformed
    /// A handshake message whose MAC1 is not for this endpoint's key.
    case badMAC = "bad_mac"
    /// An initiation from a key no authorisation holds (never authorised, or revoked).
    case unknownKey = "unknown_key"
    /// A handshake message or cookie reply that does not decrypt or authenticate.
    case invalidHandshake = "invalid_handshake"
    /// An initiation whose timestamp is not later than one seen before from its key.
    case replayedHandshake = "replayed_handshake"
    /// Data or a response for a session index nobody holds.
    case unknownSession = "unknown_session"
    /// Data whose counter was seen before or is older than the replay window.
    case replayed
    /// Data that does not authenticate under its session's keys (forged or corrupted).
    case unauthenticated
    /// Data under keys older than REJECT-AFTER-TIME.
    case expired
    /// A packet out of a tunnel whose source is not one of the peer's tunnel addresses.
    case spoofed
    /// A packet for a tunnel address no peer holds.
    case noPeer = "no_peer"
    /// A packet out of a tunnel to an address outside every resource its client may reach (or, from a
    /// resource, from such an address).
    case noRule = "no_rule"
    /// A packet to an authorised resource that its filters refuse (a protocol or port, or a later
    /// fragment where not everything is allowed).
    case filtered
    /// A session this end answered that its initiator never confirmed (a wrong preshared key looks
    /// like this: the initiator cannot open the response).
    case unconfirmedSession = "unconfirmed_session"
    /// A packet to a DNS resource's proxy address that no resolved address stands behind (the name did
    /// not resolve, or has no address of that family).
    case unresolved
}
