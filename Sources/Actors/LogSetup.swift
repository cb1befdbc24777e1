import CGatehouseSystem
import Foundation
package import Logging

/// How logs are written: `human` lines for a terminal, `json` objects (one per line) for collectors.
package enum LogFormat: String, Sendable, CaseIterable {
    case human
    case json
}

package enum LogSetup {
    /// Installs the process-wide log handler. Call once, from `main`. `GATEHOUSE_LOG_LEVEL` (trace,
    /// debug, info, notice, warning, error, critical) overrides `level`.
    package static func bootstrap(level: Logger.Level, format: LogFormat) {
        let level = ProcessInfo.processInfo.environment["GATEHOUSE_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? level
        LoggingSystem.bootstrap { label in
            switch format {
            case .human:
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            case .json:
                return JSONLogHandler(label: label, logLevel: level)
            }
        }
    }
}

/// One JSON object per line on stderr: `{"time":..,"level":..,"label":..,"message":..,<metadata>}`.
/// Messages are fixed text and values are metadata, so collectors can index them.
package struct JSONLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level
    private let label: String

    package init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var object: [String: Any] = [
            "time": Self.timestamp(),
            "level": event.level.rawValue,
            "label": label,
            "message": event.message.description,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            object[key] = Self.json(value)
        }
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        line.append(0x0A)
        FileHandle.standardError.write(line)
    }

    /// UTC, ISO 8601 with milliseconds and the zone: 2026-11-24T21:09:39.835Z.
    private static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }

    private static func json(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case let .string(text): text
        case let .stringConvertible(convertible): convertible.description
        case let .array(values): values.map(json)
        case let .dictionary(values): values.mapValues(json)
        }
    }
}

/// Process-wide memory settings.
package enum MemorySetup {
    /// Caps glibc's malloc arenas (by default eight per core), unless MALLOC_ARENA_MAX is set: a server
    /// of thousands of connections on a few threads keeps freed memory apart in per-thread arenas.
    package static func limitMallocArenas(_ count: Int32 = 2) {
        guard getenv("MALLOC_ARENA_MAX") == nil else { return }
        _ = gatehouse_limit_malloc_arenas(count)
    }
}
