package import Addresses
package import Foundation
import Synchronization

/// Who and what a flow belongs to, as the portal said when it authorised it (empty: not known).
package struct FlowLabel: Sendable, Equatable {
    package var client: String
    package var actor: String
    package var resource: String
    package var policy: String

    package init(client: String, actor: String = "", resource: String = "", policy: String = "") {
        self.client = client
        self.actor = actor
        self.resource = resource
        self.policy = policy
    }
}

/// One flow as the gateway saw it (gateway spec, "flow log"): a 5-tuple between a client and a
/// resource, when it began and ended, what went each way, and whether it was allowed (and why it
/// ended) or refused (and why).
package struct FlowRecord: Sendable, Equatable {
    package enum Verdict: String, Sendable {
        case allowed, refused
    }

    package var label: FlowLabel
    package var protocolNumber: UInt8
    package var clientAddress: SocketAddress.IP
    package var clientPort: UInt16
    package var resourceAddress: SocketAddress.IP
    package var resourcePort: UInt16
    package var start: Date
    package var end: Date
    package var bytesFromClient = 0
    package var packetsFromClient = 0
    package var bytesToClient = 0
    package var packetsToClient = 0
    package var verdict: Verdict
    /// Refused: `no_rule` or `filtered`. Allowed: how it ended (`closed`, `idle`, `revoked`, `shutdown`).
    package var reason: String
    /// For a flow to a DNS resource: the proxy address the client sent to (`resource_address` is the
    /// real address it went to).
    package var proxyAddress: SocketAddress.IP?

    package init(label: FlowLabel, protocolNumber: UInt8, clientAddress: SocketAddress.IP, clientPort: UInt16, resourceAddress: SocketAddress.IP,
                 resourcePort: UInt16, start: Date, end: Date, verdict: Verdict, reason: String) {
        self.label = label
        self.protocolNumber = protocolNumber
        self.clientAddress = clientAddress
        self.clientPort = clientPort
        self.resourceAddress = resourceAddress
        self.resourcePort = resourcePort
        self.start = start
        self.end = end
        self.verdict = verdict
        self.reason = reason
    }

    /// The record as one line of JSON.
    package func json() -> String {
        var object: [String: Any] = [
            "client": label.client, "actor": label.actor, "resource": label.resource, "policy": label.policy,
            "protocol": Self.protocolName(protocolNumber),
            "client_address": SocketAddress(ip: clientAddress, port: 0).address, "client_port": Int(clientPort),
            "resource_address": SocketAddress(ip: resourceAddress, port: 0).address, "resource_port": Int(resourcePort),
            "start": Self.format(start), "end": Self.format(end),
            "bytes_from_client": bytesFromClient, "packets_from_client": packetsFromClient,
            "bytes_to_client": bytesToClient, "packets_to_client": packetsToClient,
            "verdict": verdict.rawValue, "reason": reason,
        ]
        if let proxyAddress { object["proxy_address"] = SocketAddress(ip: proxyAddress, port: 0).address }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func protocolName(_ number: UInt8) -> String {
        switch number {
        case 1: "icmp"
        case 6: "tcp"
        case 17: "udp"
        case 58: "icmpv6"
        default: "\(number)"
        }
    }

    static func format(_ date: Date) -> String {
        Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date)
    }
}

/// The flow log: records appended as JSON lines to a file, written on a queue of its own (never on
/// the data path), rotated when it reaches `maximumBytes` (PATH.1 is the newest old file, PATH.`kept`
/// the oldest kept).
package final class FlowLog: Sendable {
    package let path: String
    private let maximumBytes: Int
    private let kept: Int
    private let queue = DispatchQueue(label: "gatehouse-flow-log")
    private let file = Mutex<(handle: FileHandle?, size: Int)>((nil, 0))
    private let counts = Mutex<[FlowRecord.Verdict: Int]>([:])

    /// Opens (or makes) the log at `path`; throws when it cannot be written.
    package init(path: String, maximumBytes: Int = 64 << 20, kept: Int = 5) throws {
        self.path = path
        self.maximumBytes = maximumBytes
        self.kept = kept
        try file.withLock { $0 = try Self.open(path) }
    }

    private static func open(_ path: String) throws -> (handle: FileHandle?, size: Int) {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o640]) else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        let size = Int(try handle.seekToEnd())
        return (handle, size)
    }

    /// Records written so far, by verdict.
    package func written(_ verdict: FlowRecord.Verdict) -> Int { counts.withLock { $0[verdict] ?? 0 } }

    /// Appends records (returns at once; the queue writes them).
    package func append(_ records: [FlowRecord]) {
        guard !records.isEmpty else { return }
        queue.async { self.write(records) }
    }

    /// Waits until everything appended so far is written.
    package func flush() {
        queue.sync {}
    }

    private func write(_ records: [FlowRecord]) {
        let lines = Data(records.map { $0.json() + "\n" }.joined().utf8)
        let written = file.withLock { file -> Bool in
            if file.size > 0, file.size + lines.count > maximumBytes { rotate(&file) }
            guard let handle = file.handle, (try? handle.write(contentsOf: lines)) != nil else { return false }
            file.size += lines.count
            return true
        }
        guard written else { return }
        counts.withLock { counts in for record in records { counts[record.verdict, default: 0] += 1 } }
    }

    /// PATH → PATH.1 → … → PATH.`kept` (the oldest goes), and a new PATH.
    private func rotate(_ file: inout (handle: FileHandle?, size: Int)) {
        try? file.handle?.close()
        let manager = FileManager.default
        try? manager.removeItem(atPath: "\(path).\(kept)")
        for index in stride(from: kept - 1, through: 1, by: -1) where manager.fileExists(atPath: "\(path).\(index)") {
            try? manager.moveItem(atPath: "\(path).\(index)", toPath: "\(path).\(index + 1)")
        }
        try? manager.moveItem(atPath: path, toPath: "\(path).1")
        file = (try? Self.open(path)) ?? (nil, 0)
    }
}
