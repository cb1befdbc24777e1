import Addresses
import Foundation
import Testing
import Tunnel

/// The flow log's file: JSON lines, rotated at its size bound with the newest old file first and only
/// `kept` old files kept.
@Suite struct FlowLogTests {
    static func record(_ index: Int) -> FlowRecord {
        FlowRecord(label: FlowLabel(client: "c", actor: "a", resource: "r", policy: "p"), protocolNumber: 17,
                   clientAddress: (try? SocketAddress("100.64.0.7", port: 0))!.ip, clientPort: UInt16(40000 + index),
                   resourceAddress: (try? SocketAddress("198.18.1.10", port: 0))!.ip, resourcePort: 7000,
                   start: Date(timeIntervalSince1970: 1_800_000_000), end: Date(timeIntervalSince1970: 1_800_000_001.5),
                   verdict: .allowed, reason: "idle")
    }

    @Test func recordsAreWrittenAndTheFileRotates() throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "gatehouse-flowlog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appending(path: "flows.jsonl").path
        let line = Self.record(0).json().utf8.count + 1
        let log = try FlowLog(path: path, maximumBytes: 3 * line, kept: 2)
        for index in 0..<10 { log.append([Self.record(index)]) }
        log.flush()
        let files = [path, path + ".1", path + ".2"].map { try? String(contentsOfFile: $0, encoding: .utf8) }
        #expect(!FileManager.default.fileExists(atPath: path + ".3"), "only two old files kept")
        let ports = files.map { text in (text ?? "").split(separator: "\n").compactMap { line -> Int? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["client_port"] as? Int
        } }
        #expect(ports == [[40009], [40006, 40007, 40008], [40003, 40004, 40005]], "the newest in the file, then .1, then .2")
        #expect(log.written(.allowed) == 10)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(Self.record(1).json().utf8)) as? [String: Any])
        #expect(object["start"] as? String == "2027-01-15T08:00:00.000Z" && object["end"] as? String == "2027-01-15T08:00:01.500Z")
        #expect(object["protocol"] as? String == "udp" && object["verdict"] as? String == "allowed")
    }
}
