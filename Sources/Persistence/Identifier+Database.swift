package import Foundation
package import GRDB
package import Identifiers

/// Typed IDs are stored as lower-case UUID text, as every ID column of the schema holds them; so a
/// query compares `Column("id") == id` with no conversion at the call site.
extension Identifier: DatabaseValueConvertible {
    package var databaseValue: DatabaseValue { description.databaseValue }

    package static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Self? {
        String.fromDatabaseValue(dbValue).flatMap(Self.init)
    }
}
