/// The ERROR-CODE values the relay answers with, named and phrased as their RFCs name them
/// (RFC 8489 section 14.8, RFC 8656 section 19).
package enum STUNErrorCode: Int, CaseIterable, Sendable {
    /// RFC 8489: the client should contact an alternate server.
    case tryAlternate = 300
    /// RFC 8489: malformed, or a combination of attributes the method forbids.
    case badRequest = 400
    /// RFC 8489: missing or wrong long-term credentials.
    case unauthorized = 401
    /// RFC 8656: the request was valid but is refused (a peer the relay will not reach).
    case forbidden = 403
    /// RFC 8489: a comprehension-required attribute the server does not understand.
    case unknownAttribute = 420
    /// RFC 8656: an Allocate for a 5-tuple that has one, or a request for one that has none.
    case allocationMismatch = 437
    /// RFC 8489: the NONCE is no longer valid; the response carries a fresh one.
    case staleNonce = 438
    /// RFC 8656: the relay has no relayed address of the requested family.
    case addressFamilyNotSupported = 440
    /// RFC 8656: the credentials are not those the allocation was made with.
    case wrongCredentials = 441
    /// RFC 8656: REQUESTED-TRANSPORT is not UDP.
    case unsupportedTransportProtocol = 442
    /// RFC 8656: the peer's family has no relayed address on this allocation.
    case peerAddressFamilyMismatch = 443
    /// RFC 8656: the username holds as many allocations as it may.
    case allocationQuotaReached = 486
    /// RFC 8489: the server failed.
    case serverError = 500
    /// RFC 8656: no port, reservation or table room left for the request.
    case insufficientCapacity = 508

    /// The reason phrase the RFCs give the code.
    package var reasonPhrase: String {
        switch self {
        case .tryAlternate: "Try Alternate"
        case .badRequest: "Bad Request"
        case .unauthorized: "Unauthorized"
        case .forbidden: "Forbidden"
        case .unknownAttribute: "Unknown Attribute"
        case .allocationMismatch: "Allocation Mismatch"
        case .staleNonce: "Stale Nonce"
        case .addressFamilyNotSupported: "Address Family not Supported"
        case .wrongCredentials: "Wrong Credentials"
        case .unsupportedTransportProtocol: "Unsupported Transport Protocol"
        case .peerAddressFamilyMismatch: "Peer Address Family Mismatch"
        case .allocationQuotaReached: "Allocation Quota Reached"
        case .serverError: "Server Error"
        case .insufficientCapacity: "Insufficient Capacity"
        }
    }
}
