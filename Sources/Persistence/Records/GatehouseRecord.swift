package import Foundation
package import GRDB
package import Identifiers

// One Codable record per table. IDs are typed (`SiteID`, `GroupID`, ...) and stored as lower-case UUID
// text (readable in the sqlite3 shell and portable to PostgreSQL); dates are stored by GRDB as UTC text.

/// What every record shares.
package protocol GatehouseRecord: Codable, Sendable, FetchableRecord, PersistableRecord {}

/// A record with a typed ID as its primary key.
package protocol Identified: Identifiable where ID: DatabaseValueConvertible & LosslessStringConvertible & Sendable {}

extension GatehouseRecord {
    package static func databaseUUIDEncodingStrategy(for column: String) -> DatabaseUUIDEncodingStrategy {
        .lowercaseString
    }
}
