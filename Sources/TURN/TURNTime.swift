/// "Now", as the sans-IO core receives it: a monotonic instant for lifetimes and deadlines, and the
/// wall clock in Unix seconds for credential expiry (TURN REST API usernames carry a Unix time).
package struct TURNTime: Hashable, Sendable, Comparable {
    /// Time since an arbitrary origin that never jumps (the shell uses ContinuousClock).
    package var monotonic: Duration
    /// Seconds since 1970-01-01 UTC.
    package var unixSeconds: Int64

    package init(monotonic: Duration, unixSeconds: Int64) {
        self.monotonic = monotonic
        self.unixSeconds = unixSeconds
    }

    /// The same moment `duration` later, on both clocks.
    package func adding(_ duration: Duration) -> TURNTime {
        TURNTime(monotonic: monotonic + duration, unixSeconds: unixSeconds + duration.components.seconds)
    }

    package static func < (lhs: TURNTime, rhs: TURNTime) -> Bool { lhs.monotonic < rhs.monotonic }
}
