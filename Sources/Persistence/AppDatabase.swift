package import GRDB

/// The portal's database: one SQLite file in WAL mode with foreign keys on, migrated to the current
/// schema when opened. Writes that must hold together go through `write`, one transaction each.
package final class AppDatabase: Sendable {
    package let writer: any DatabaseWriter

    /// Opens (creating if needed) the database at `path` and applies pending migrations (up to and
    /// including `upTo` when given: tests of a migration start from the schema before it).
    package init(path: String, upTo lastMigration: String? = nil) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        // A page cache of up to 64 MiB per connection (SQLite's default is 2 MiB): a large account's
        // writes (a policy taking 10,000 authorisations with it) then read their pages from memory.
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA cache_size = -65536") }
        // DatabasePool uses WAL: readers never block the writer.
        writer = try DatabasePool(path: path, configuration: configuration)
        if let lastMigration {
            try Migrations.migrator.migrate(writer, upTo: lastMigration)
        } else {
            try Migrations.migrator.migrate(writer)
        }
    }

    /// Runs `updates` in one write transaction; in a dry run (`DryRun.isActive`), the transaction is
    /// rolled back and the caller still gets what it would have returned.
    package func write<T: Sendable>(_ updates: @Sendable (Database) throws -> T) async throws -> T {
        guard DryRun.isActive else { return try await writer.write(updates) }
        return try await writer.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction {
                result = try updates(db)
                return .rollback
            }
            guard let result else { throw DatabaseError(message: "a dry run's transaction returned nothing") }
            return result
        }
    }

    package func read<T: Sendable>(_ value: @Sendable (Database) throws -> T) async throws -> T {
        try await writer.read(value)
    }

    /// The names of applied migrations, oldest first.
    package func appliedMigrations() throws -> [String] {
        try writer.read { db in try Migrations.migrator.appliedIdentifiers(db).sorted() }
    }
}

/// Set around a write that must change nothing: every transaction of `AppDatabase.write` in its scope
/// runs, so that the schema checks it and the caller sees what it would do, and is rolled back.
package enum DryRun {
    @TaskLocal package static var isActive = false
}
