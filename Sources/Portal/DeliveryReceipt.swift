import Synchronization

/// Tells a change when the realtime API has handed what the change tells to the sockets of the devices
/// online (what it must tell, not what they have read), so that the change's bookkeeping (deleting
/// thousands of revoked rows) follows the telling rather than competing with it for the processor.
/// Each subscriber of updates seals the receipt once it has sent everything; each batch sent is
/// expected, then done once it was flushed to its connection's channel. A wait is bounded: a
/// connection that ends with batches unwritten must not hold its account's changes up for long.
package final class DeliveryReceipt: Sendable {
    private struct State {
        var pending = 0
        var sealsMissing: Int
        var waiter: CheckedContinuation<Void, Never>?
        var gaveUp = false
        var settled: Bool { gaveUp || (pending == 0 && sealsMissing == 0) }
    }

    private let state: Mutex<State>

    /// Every subscriber sealed and every batch done.
    package var isSettled: Bool { state.withLock { $0.settled } }

    package init(subscribers: Int) {
        state = Mutex(State(sealsMissing: subscribers))
    }

    /// One more batch to hand over.
    package func expect() {
        state.withLock { $0.pending += 1 }
    }

    /// One batch handed over (or dropped with its connection).
    package func done() {
        resume { $0.pending -= 1 }
    }

    /// A subscriber has sent all it will send for this change.
    package func sealed() {
        resume { $0.sealsMissing -= 1 }
    }

    /// Waits until every batch was handed over, at most `limit`. True when everything was handed over,
    /// false when the bound ended the wait first (then the receipt counts as settled from now on).
    @discardableResult
    package func wait(atMost limit: Duration) async -> Bool {
        let timer = Task {
            try await Task.sleep(for: limit)
            self.resume { $0.gaveUp = true }
        }
        defer { timer.cancel() }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.settled { return true }
                state.waiter = continuation
                return false
            }
            if ready { continuation.resume() }
        }
        return state.withLock { !$0.gaveUp }
    }

    private func resume(_ update: (inout State) -> Void) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            update(&state)
            guard state.settled else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}
