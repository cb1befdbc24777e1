package import Addresses

/// A token bucket per source address, bounded in size: the relay answers unauthenticated requests
/// (401) at most `burst` at once and `perSecond` on average per source, so that it cannot be used to
/// amplify traffic toward a spoofed victim.
package struct RateLimiter: Sendable {
    package var burst: Double
    package var perSecond: Double
    package var capacity: Int
    private var buckets: [SocketAddress.IP: (tokens: Double, updated: Duration)] = [:]

    package init(burst: Double = 10, perSecond: Double = 5, capacity: Int = 16_384) {
        self.burst = burst
        self.perSecond = perSecond
        self.capacity = capacity
    }

    package var trackedSources: Int { buckets.count }

    /// Takes a token for `source`; false when its bucket is empty.
    package mutating func allow(_ source: SocketAddress.IP, now: TURNTime) -> Bool {
        if buckets[source] == nil && buckets.count >= capacity {
            // Full: forget the sources whose buckets have refilled (they are indistinguishable from new
            // ones); if none has, forget everything rather than grow.
            buckets = buckets.filter { refilled($0.value, now: now) < burst }
            if buckets.count >= capacity { buckets.removeAll(keepingCapacity: true) }
        }
        let bucket = buckets[source] ?? (burst, now.monotonic)
        let tokens = refilled(bucket, now: now)
        guard tokens >= 1 else {
            buckets[source] = (tokens, now.monotonic)
            return false
        }
        buckets[source] = (tokens - 1, now.monotonic)
        return true
    }

    private func refilled(_ bucket: (tokens: Double, updated: Duration), now: TURNTime) -> Double {
        let elapsed = now.monotonic - bucket.updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return min(burst, bucket.tokens + max(0, seconds) * perSecond)
    }
}
