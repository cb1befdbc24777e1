package import Foundation
package import GRDB

// One Codable record per table. IDs are UUIDs stored as lower-case text (readable in the sqlite3 shell
// and portable to PostgreSQL); dates are stored by GRDB as UTC text.

/// What every record shares: UUIDs as lower-case text.
package protocol GatehouseRecord: Codable, Sendable, FetchableRecord, PersistableRecord {}

/// A record with a UUID primary key.
package protocol Identified {
    var id: UUID { get }
}

extension GatehouseRecord {
    package static func databaseUUIDEncodingStrategy(for column: String) -> DatabaseUUIDEncodingStrategy {
        .lowercaseString
    }
}
