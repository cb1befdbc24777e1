import CGatehouseSystem
import Glibc

/// A readiness loop over file descriptors (epoll) for a thread that owns its sockets: the relay's data
/// path runs on one of these, with no actor hop per packet. `wake()` may be called from any thread.
package final class EventLoop: @unchecked Sendable {
    private let epoll: Int32
    private let wakeup: Int32
    private var ready = [Int32](repeating: 0, count: 256)

    package init() throws(SocketError) {
        epoll = gatehouse_epoll_create()
        guard epoll >= 0 else { throw .system("epoll_create1", errno) }
        wakeup = gatehouse_eventfd()
        guard wakeup >= 0 else {
            close(epoll)
            throw .system("eventfd", errno)
        }
        guard gatehouse_epoll_add(epoll, wakeup) == 0 else {
            close(epoll)
            close(wakeup)
            throw .system("epoll_ctl", errno)
        }
    }

    deinit {
        close(epoll)
        close(wakeup)
    }

    package func add(_ fd: Int32) throws(SocketError) {
        guard gatehouse_epoll_add(epoll, fd) == 0 else { throw .system("epoll_ctl add", errno) }
    }

    package func remove(_ fd: Int32) {
        _ = gatehouse_epoll_remove(epoll, fd)
    }

    /// Also reports `fd` when it becomes writable (after a send met a full buffer), or stops doing so.
    /// A reported descriptor may then be readable, writable or both: callers try both.
    package func watchWritable(_ fd: Int32, _ writable: Bool) {
        _ = gatehouse_epoll_watch_writable(epoll, fd, writable ? 1 : 0)
    }

    /// Wakes the thread in `wait`, from anywhere.
    package func wake() {
        _ = gatehouse_eventfd_signal(wakeup)
    }

    /// Parks until descriptors are readable, `wake()` is called, or `timeout` passes (nil: no limit).
    /// Returns the readable descriptors (not the wake-up one).
    package func wait(timeout: Duration?) throws(SocketError) -> ArraySlice<Int32> {
        let milliseconds: Int32
        if let timeout {
            let (seconds, attoseconds) = timeout.components
            let total = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
            milliseconds = Int32(clamping: max(0, total))
        } else {
            milliseconds = -1
        }
        let count = ready.withUnsafeMutableBufferPointer { buffer in
            gatehouse_epoll_wait(epoll, buffer.baseAddress, Int32(buffer.count), milliseconds)
        }
        if count < 0 {
            if errno == EINTR { return [] }
            throw .system("epoll_wait", errno)
        }
        var result = ready[0..<Int(count)]
        if let index = result.firstIndex(of: wakeup) {
            _ = gatehouse_eventfd_drain(wakeup)
            result.remove(at: index)
        }
        return result
    }
}
