package import Addresses

/// A token bucket per source address, bounded in size: the relay answers unauthenticated requests
/// (401, 438) at most `burst` at once and `perSecond` on average per source, so that it cannot be used
/// to amplify traffic toward a spoofed victim.
///
/// At most `capacity` sources are tracked; a new source beyond that evicts the least recently seen
/// one. Every operation is O(1): the buckets sit in a fixed array threaded into a recency list, so a
/// flood from ever-new sources costs the same per packet as one from a single source, and forgets only
/// the sources it has not heard from for longest (whose buckets have most likely refilled).
package struct RateLimiter: Sendable {
    package let burst: Double
    package let perSecond: Double
    package let capacity: Int

    private struct Bucket {
        var source: SocketAddress.IP
        var tokens: Double
        var updated: Duration
        /// Neighbours in the recency list (indices into `buckets`; -1 for none).
        var newer: Int
        var older: Int
    }

    private var buckets: [Bucket] = []
    private var index: [SocketAddress.IP: Int] = [:]
    private var newest = -1
    private var oldest = -1

    package init(burst: Double = 10, perSecond: Double = 5, capacity: Int = 16_384) {
        self.burst = burst
        self.perSecond = perSecond
        self.capacity = max(1, capacity)
    }

    package var trackedSources: Int { index.count }

    /// Takes a token for `source`; false when its bucket is empty.
    package mutating func allow(_ source: SocketAddress.IP, now: TURNTime) -> Bool {
        let slot: Int
        if let known = index[source] {
            slot = known
            unlink(slot)
        } else if buckets.count < capacity {
            slot = buckets.count
            buckets.append(Bucket(source: source, tokens: burst, updated: now.monotonic, newer: -1, older: -1))
            index[source] = slot
        } else {
            // Full: the least recently seen source gives up its slot.
            slot = oldest
            unlink(slot)
            index[buckets[slot].source] = nil
            buckets[slot] = Bucket(source: source, tokens: burst, updated: now.monotonic, newer: -1, older: -1)
            index[source] = slot
        }
        pushNewest(slot)
        let tokens = refilled(buckets[slot], now: now)
        buckets[slot].updated = now.monotonic
        guard tokens >= 1 else {
            buckets[slot].tokens = tokens
            return false
        }
        buckets[slot].tokens = tokens - 1
        return true
    }

    private func refilled(_ bucket: Bucket, now: TURNTime) -> Double {
        let elapsed = now.monotonic - bucket.updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return min(burst, bucket.tokens + max(0, seconds) * perSecond)
    }

    private mutating func unlink(_ slot: Int) {
        let (newer, older) = (buckets[slot].newer, buckets[slot].older)
        if newer >= 0 { buckets[newer].older = older } else { newest = older }
        if older >= 0 { buckets[older].newer = newer } else { oldest = newer }
        buckets[slot].newer = -1
        buckets[slot].older = -1
    }

    private mutating func pushNewest(_ slot: Int) {
        buckets[slot].older = newest
        buckets[slot].newer = -1
        if newest >= 0 { buckets[newest].newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }
}
