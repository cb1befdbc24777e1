import CBPF
import Glibc
import Synchronization

/// Collects what libbpf prints (warnings, the verifier log on a failed load) so that errors carry it,
/// instead of letting libbpf write to stderr behind the logger's back.
enum LibBPFLog {
    private static let lines = Mutex<[String]>([])
    private static let maximumLines = 256

    /// Installs the print callback once per process; every entry point of the module calls it.
    static let installed: Void = {
        _ = libbpf_set_print { level, format, arguments in
            guard let format, let arguments, level != LIBBPF_DEBUG else { return 0 }
            var buffer = [CChar](repeating: 0, count: 1024)
            let count = vsnprintf(&buffer, buffer.count, format, arguments)
            guard count > 0 else { return 0 }
            let text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            LibBPFLog.append(text)
            return count
        }
    }()

    static func append(_ text: String) {
        let split = text.split(separator: "\n", omittingEmptySubsequences: true).map { line in
            line.hasPrefix("libbpf: ") ? String(line.dropFirst("libbpf: ".count)) : String(line)
        }
        lines.withLock { lines in
            lines.append(contentsOf: split)
            if lines.count > maximumLines { lines.removeFirst(lines.count - maximumLines) }
        }
    }

    /// Runs `body` and returns what libbpf logged meanwhile along with its result. Calls from other
    /// threads at the same time may interleave their lines; that only adds context to an error.
    static func capturing<T>(_ body: () throws -> T) rethrows -> (T, [String]) {
        _ = installed
        let start = lines.withLock { $0.count }
        let result = try body()
        let logged = lines.withLock { lines in start <= lines.count ? Array(lines[start...]) : lines }
        return (result, logged)
    }

    /// Turns a libbpf return code (negative errno, libbpf 1.x convention) into a `BPFError`.
    static func check(_ operation: String, _ body: () -> Int32) throws(BPFError) {
        let (code, log) = capturing(body)
        if code < 0 { throw error(operation, code: -code, log: log) }
    }

    static func error(_ operation: String, code: Int32, log: [String] = []) -> BPFError {
        var buffer = [CChar](repeating: 0, count: 256)
        _ = libbpf_strerror(code, &buffer, buffer.count)
        let message = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return .libbpf(operation: operation, code: code, message: message, log: log)
    }
}
