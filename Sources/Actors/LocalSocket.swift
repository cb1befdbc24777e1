package import Foundation
import Glibc

/// A Unix stream socket a running process answers local questions on (`gatehouse client status`):
/// one request line in, one answer out, then the connection closes. The socket file is made with mode
/// 600 (only its owner may ask) and removed on `close()`. A live socket at the path means another
/// process already answers there: refused, so two clients never share a state directory.
package final class LocalSocketServer: @unchecked Sendable {
    package let path: String
    private let descriptor: Int32
    private let thread: Thread

    package init(path: String, answer: @escaping @Sendable (String) async -> String) throws(LocalSocketError) {
        if FileManager.default.fileExists(atPath: path) {
            if (try? LocalSocketClient.request(path: path, "ping", timeout: 1)) != nil { throw .inUse(path) }
            unlink(path)  // left by a process that is gone
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", path, errno) }
        let previousMask = umask(0o177)
        defer { umask(previousMask) }
        let bound = try Self.withAddress(path) { address, length in bind(fd, address, length) }
        guard bound == 0, listen(fd, 16) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw .system("bind", path, code)
        }
        self.path = path
        descriptor = fd
        thread = Thread {
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 {
                    if errno == EINTR { continue }
                    return  // closed
                }
                Self.serve(connection, answer: answer)
            }
        }
        thread.name = "gatehouse-local-socket"
        thread.start()
    }

    /// Stops answering and removes the socket file.
    package func close() {
        shutdown(descriptor, Int32(SHUT_RDWR))
        Glibc.close(descriptor)
        unlink(path)
    }

    private static func serve(_ connection: Int32, answer: @escaping @Sendable (String) async -> String) {
        defer { Glibc.close(connection) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while request.count < 4096, !request.contains(UInt8(ascii: "\n")) {
            let count = chunk.withUnsafeMutableBytes { read(connection, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            request += chunk.prefix(count)
        }
        let line = String(decoding: request.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
        let result = LockedBox<String>()
        let done = DispatchSemaphore(value: 0)
        Task {
            result.value = await answer(line)
            done.signal()
        }
        done.wait()
        let bytes = Array((result.value ?? "").utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { return }
            sent += count
        }
    }

    static func withAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) throws(LocalSocketError) -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { throw .pathTooLong(path, capacity - 1) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}

/// Asks a `LocalSocketServer`.
package enum LocalSocketClient {
    /// Sends `line` and reads the answer until the server closes (at most `timeout` seconds).
    package static func request(path: String, _ line: String, timeout: Int = 5) throws(LocalSocketError) -> String {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", path, errno) }
        defer { close(fd) }
        var limit = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        let connected = try LocalSocketServer.withAddress(path) { address, length in connect(fd, address, length) }
        guard connected == 0 else {
            let code = errno
            throw code == ENOENT || code == ECONNREFUSED ? .notRunning(path) : .system("connect", path, code)
        }
        let request = Array((line + "\n").utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw .system("send", path, errno)
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { break }
            guard count > 0 else { throw .system("read", path, errno) }
            answer += chunk.prefix(count)
        }
        return String(decoding: answer, as: UTF8.self)
    }
}

package enum LocalSocketError: Error, CustomStringConvertible, Equatable {
    case inUse(String)
    case notRunning(String)
    case pathTooLong(String, Int)
    case system(String, String, Int32)

    package var description: String {
        switch self {
        case let .inUse(path): "\(path): another process answers there (is a client already running with this state directory?)"
        case let .notRunning(path): "nothing answers at \(path): is the client running (with this --state-dir)?"
        case let .pathTooLong(path, limit): "\(path): a socket path is at most \(limit) bytes"
        case let .system(call, path, code): "\(call) \(path): \(String(cString: strerror(code)))"
        }
    }
}

/// A value one thread sets and another reads after a semaphore.
final class LockedBox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value?
    var value: Value? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
