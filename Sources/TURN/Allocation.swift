package import Addresses
import STUN

/// The route a channel binding gives the data path (user space and the kernel's XDP program alike):
/// ChannelData from `client` to `listener` on `channel` goes to `peer` from `relayed`, and datagrams
/// from `peer` to `relayed` go to `client` from `listener` as ChannelData on `channel`.
package struct ChannelRoute: Hashable, Sendable, CustomStringConvertible {
    package var client: SocketAddress
    package var listener: SocketAddress
    package var channel: UInt16
    package var peer: SocketAddress
    package var relayed: SocketAddress

    package init(client: SocketAddress, listener: SocketAddress, channel: UInt16, peer: SocketAddress, relayed: SocketAddress) {
        self.client = client
        self.listener = listener
        self.channel = channel
        self.peer = peer
        self.relayed = relayed
    }

    package var description: String {
        "\(client)→\(listener) ch 0x\(String(channel, radix: 16)) ⇄ \(relayed)→\(peer)"
    }
}

/// One allocation's state (RFC 8656 sections 7-12): its relayed addresses, lifetime, permissions and
/// channel bindings. Pure: every method takes `now`, and the changes the data path must follow come
/// back as route installs and removals.
package struct Allocation: Sendable {
    /// How long permissions and channel bindings last. RFC 8656 fixes these (`.rfc8656`); a relay may
    /// shorten them (coturn has `--permission-lifetime` and `--channel-lifetime` too), which tests of
    /// expiry need so as not to wait ten minutes.
    package struct Timers: Equatable, Sendable {
        package var permissionLifetime: Duration
        package var channelLifetime: Duration
        /// After a binding expires, its number and peer stay reserved this long (section 12).
        package var channelCooldown: Duration

        package init(permissionLifetime: Duration, channelLifetime: Duration, channelCooldown: Duration) {
            self.permissionLifetime = permissionLifetime
            self.channelLifetime = channelLifetime
            self.channelCooldown = channelCooldown
        }

        /// Section 9 (permissions, 300 s) and section 12 (channels, 600 s, reserved 300 s more).
        package static let rfc8656 = Timers(
            permissionLifetime: .seconds(300), channelLifetime: .seconds(600), channelCooldown: .seconds(300))
    }

    // From RFC 8656.
    package static let defaultLifetime: Duration = .seconds(600)  // section 7.2
    /// See `ChannelData.numbers` for why this is RFC 5766's range.
    package static let channelNumbers = ChannelData.numbers

    // Our choice.
    package static let maximumLifetime: Duration = .seconds(3600)
    /// More bindings than this on one allocation is abuse, not a peer-to-peer session.
    package static let maximumChannels = 4096
    package static let maximumPermissions = 4096

    package enum ChannelState: Equatable, Sendable {
        /// Usable until `until`.
        case active(until: Duration)
        /// Expired: unusable, but number and peer stay reserved until `until`.
        case coolingDown(until: Duration)
    }

    package struct Channel: Equatable, Sendable {
        package var peer: SocketAddress
        package var state: ChannelState
    }

    package enum BindError: Error, Equatable, Sendable {
        /// The number is bound (or cooling down) to another peer: 400.
        case numberInUse
        /// The peer is bound (or cooling down) to another number: 400.
        case peerBoundToAnotherNumber
        /// The allocation has no relayed address of the peer's family: 443.
        case familyNotRelayed
        /// Not a channel number (0x4000-0x7FFF): 400.
        case invalidNumber
        /// The allocation holds as many channels as it may: 508.
        case tooMany
    }

    package let client: SocketAddress
    package let listener: SocketAddress
    package let username: String
    /// The relayed transport addresses: one per family, same port.
    package let relayed: [SocketAddress]
    package let timers: Timers
    package private(set) var expiry: Duration
    package private(set) var permissions: [SocketAddress.IP: Duration] = [:]
    package private(set) var channels: [UInt16: Channel] = [:]
    private var channelByPeer: [SocketAddress: UInt16] = [:]
    /// Every route the data paths were told to install and not yet told to remove. Freeing the
    /// allocation removes exactly these: deriving them from the channels' states at that instant misses
    /// a channel that expired in the same tick (or whose timer fired late), and its routes would outlive
    /// the allocation in user space and in the kernel.
    package private(set) var installedRoutes: Set<ChannelRoute> = []

    package init(
        client: SocketAddress, listener: SocketAddress, username: String, relayed: [SocketAddress], lifetime: Duration, now: TURNTime,
        timers: Timers = .rfc8656
    ) {
        self.client = client
        self.listener = listener
        self.username = username
        self.relayed = relayed
        self.timers = timers
        self.expiry = now.monotonic + lifetime
    }

    package static func clampLifetime(requested seconds: UInt32?) -> Duration {
        guard let seconds else { return defaultLifetime }
        return min(.seconds(Int64(seconds)), maximumLifetime)
    }

    /// RFC 8656 section 7.3: the new expiry is now + lifetime, not an extension of the old one.
    package mutating func refresh(lifetime: Duration, now: TURNTime) {
        expiry = now.monotonic + lifetime
    }

    package func isExpired(now: TURNTime) -> Bool { expiry <= now.monotonic }

    /// The relayed address of `peer`'s family, if the allocation has one.
    package func relayedAddress(for peer: SocketAddress) -> SocketAddress? {
        relayed.first { $0.isIPv6 == peer.isIPv6 }
    }

    // MARK: Permissions (section 9)

    /// Installs or refreshes a permission for `ip`; false when the allocation already holds the most
    /// it may and this would be a new one.
    @discardableResult
    package mutating func installPermission(_ ip: SocketAddress.IP, now: TURNTime) -> Bool {
        if permissions[ip] == nil && permissions.count >= Self.maximumPermissions { return false }
        permissions[ip] = now.monotonic + timers.permissionLifetime
        return true
    }

    package func hasPermission(_ ip: SocketAddress.IP, now: TURNTime) -> Bool {
        guard let until = permissions[ip] else { return false }
        return until > now.monotonic
    }

    // MARK: Channels (section 11-12)

    /// Binds or refreshes `number` ↔ `peer` and installs the peer's permission. Returns the route the data
    /// path must (re)install: a refresh re-installs it even if the data path should already have it,
    /// because a binding refreshed after it expired was removed there.
    package mutating func bindChannel(_ number: UInt16, to peer: SocketAddress, now: TURNTime) throws(BindError) -> ChannelRoute {
        guard Self.channelNumbers.contains(number) else { throw .invalidNumber }
        guard let relayedAddress = relayedAddress(for: peer) else { throw .familyNotRelayed }
        if let existing = channels[number], existing.peer != peer { throw .numberInUse }
        if let boundNumber = channelByPeer[peer], boundNumber != number { throw .peerBoundToAnotherNumber }
        if channels[number] == nil && channels.count >= Self.maximumChannels { throw .tooMany }
        channels[number] = Channel(peer: peer, state: .active(until: now.monotonic + timers.channelLifetime))
        channelByPeer[peer] = number
        installPermission(peer.ip, now: now)
        let route = ChannelRoute(client: client, listener: listener, channel: number, peer: peer, relayed: relayedAddress)
        installedRoutes.insert(route)
        return route
    }

    /// The peer of an active channel.
    package func peer(onChannel number: UInt16, now: TURNTime) -> SocketAddress? {
        guard let channel = channels[number], case let .active(until) = channel.state, until > now.monotonic else { return nil }
        return channel.peer
    }

    /// The active channel bound to `peer`.
    package func channel(for peer: SocketAddress, now: TURNTime) -> UInt16? {
        guard let number = channelByPeer[peer], peer == channels[number]?.peer,
              case let .active(until)? = channels[number]?.state, until > now.monotonic else { return nil }
        return number
    }

    /// The routes of every active channel (what the data path should hold).
    package func activeRoutes(now: TURNTime) -> [ChannelRoute] {
        channels.compactMap { number, channel in
            guard case let .active(until) = channel.state, until > now.monotonic,
                  let relayedAddress = relayedAddress(for: channel.peer) else { return nil }
            return ChannelRoute(client: client, listener: listener, channel: number, peer: channel.peer, relayed: relayedAddress)
        }
    }

    /// Forgets every installed route and returns them, for the data paths to remove when the allocation
    /// goes.
    package mutating func removeAllRoutes() -> [ChannelRoute] {
        defer { installedRoutes.removeAll() }
        return installedRoutes.sorted { $0.channel < $1.channel }
    }

    /// Expires permissions and channels as of `now`; returns the routes of channels that stopped being
    /// active, for the data path to remove.
    package mutating func expire(now: TURNTime) -> [ChannelRoute] {
        permissions = permissions.filter { $0.value > now.monotonic }
        var removed: [ChannelRoute] = []
        for (number, channel) in channels {
            switch channel.state {
            case let .active(until) where until <= now.monotonic:
                channels[number]?.state = .coolingDown(until: until + timers.channelCooldown)
                if let relayedAddress = relayedAddress(for: channel.peer) {
                    let route = ChannelRoute(client: client, listener: listener, channel: number, peer: channel.peer, relayed: relayedAddress)
                    removed.append(route)
                    installedRoutes.remove(route)
                }
                if until + timers.channelCooldown <= now.monotonic { free(number) }
            case let .coolingDown(until) where until <= now.monotonic:
                free(number)
            case .active, .coolingDown:
                break
            }
        }
        return removed
    }

    /// The earliest moment something of this allocation expires.
    package var nextDeadline: Duration {
        var deadline = expiry
        for until in permissions.values { deadline = min(deadline, until) }
        for channel in channels.values {
            switch channel.state {
            case let .active(until), let .coolingDown(until): deadline = min(deadline, until)
            }
        }
        return deadline
    }

    private mutating func free(_ number: UInt16) {
        if let peer = channels.removeValue(forKey: number)?.peer, channelByPeer[peer] == number {
            channelByPeer[peer] = nil
        }
    }
}
