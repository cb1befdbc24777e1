import Foundation
import Synchronization

// TEMPORARY: phase timings of a change, printed to stderr when GATEHOUSE_TRACE_CHANGES is set.
package enum ChangeTrace {
    static let enabled = ProcessInfo.processInfo.environment["GATEHOUSE_TRACE_CHANGES"] != nil
    static let start = Mutex<Double>(0)
    static let lastWrite = Mutex<Double>(0)
    static let writes = Mutex<Int>(0)
    static func now() -> Double { Date().timeIntervalSince1970 * 1000 }
    package static func mark(_ what: String, begin: Bool = false) {
        guard enabled else { return }
        let t = now()
        if begin { start.withLock { $0 = t }; lastWrite.withLock { $0 = 0 }; writes.withLock { $0 = 0 } }
        let s = start.withLock { $0 }
        var mono = timespec()
        clock_gettime(CLOCK_MONOTONIC, &mono)
        FileHandle.standardError.write(Data(String(format: "TRACE %@ +%.1f ms (monotonic %d.%09d)\n", what, t - s, mono.tv_sec, mono.tv_nsec).utf8))
    }
    static func wrote() {
        guard enabled else { return }
        let t = now()
        lastWrite.withLock { $0 = t }
        writes.withLock { $0 += 1 }
    }
    static func report() {
        guard enabled else { return }
        let s = start.withLock { $0 }
        let l = lastWrite.withLock { $0 }
        let n = writes.withLock { $0 }
        FileHandle.standardError.write(Data(String(format: "TRACE last batch written +%.1f ms (%d batches)\n", l - s, n).utf8))
    }
}
