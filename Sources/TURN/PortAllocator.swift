/// Hands out relayed ports at random from a range (RFC 8656 section 7.2: unpredictable ports make
/// off-path attacks harder), never one in use. A dual-stack allocation takes the same number in both
/// families, so the allocator tracks one set of numbers for both.
package struct PortAllocator: Sendable {
    package let range: ClosedRange<UInt16>
    private var used: Set<UInt16> = []

    package init(range: ClosedRange<UInt16>) {
        self.range = range
    }

    package var inUse: Int { used.count }

    /// A free port, or nil when every port of the range is taken (the caller answers 508).
    package mutating func take(random: inout some RandomNumberGenerator) -> UInt16? {
        guard used.count < range.count else { return nil }
        // Random probes find a free port quickly while the range is mostly free; a scan from a random
        // start finishes the job when it is nearly full.
        for _ in 0..<16 {
            let port = UInt16.random(in: range, using: &random)
            if used.insert(port).inserted { return port }
        }
        let start = Int(UInt16.random(in: range, using: &random))
        let low = Int(range.lowerBound)
        let count = range.count
        for offset in 0..<count {
            let port = UInt16(low + (start - low + offset) % count)
            if used.insert(port).inserted { return port }
        }
        return nil
    }

    /// An even free port whose next-higher port is free too, both taken (EVEN-PORT with the R bit, RFC
    /// 8656 section 7.2: the pair serves RTP and RTCP); nil when no such pair is left.
    package mutating func takeEvenPair(random: inout some RandomNumberGenerator) -> UInt16? {
        let low = Int(range.lowerBound) + Int(range.lowerBound) % 2  // the first even port
        let high = Int(range.upperBound) - 1  // the last port that still has a next-higher one
        guard low <= high else { return nil }
        let pairs = (high - low) / 2 + 1
        let start = Int.random(in: 0..<pairs, using: &random)
        for offset in 0..<pairs {
            let port = UInt16(low + 2 * ((start + offset) % pairs))
            if !used.contains(port) && !used.contains(port + 1) {
                used.insert(port)
                used.insert(port + 1)
                return port
            }
        }
        return nil
    }

    /// An even free port (EVEN-PORT without the R bit); nil when none is left.
    package mutating func takeEven(random: inout some RandomNumberGenerator) -> UInt16? {
        let low = Int(range.lowerBound) + Int(range.lowerBound) % 2
        let high = Int(range.upperBound)
        guard low <= high else { return nil }
        let evens = (high - low) / 2 + 1
        let start = Int.random(in: 0..<evens, using: &random)
        for offset in 0..<evens {
            let port = UInt16(low + 2 * ((start + offset) % evens))
            if used.insert(port).inserted { return port }
        }
        return nil
    }

    package mutating func release(_ port: UInt16) {
        used.remove(port)
    }
}
