import Foundation
import GRDB
import RollcallStore
import RollcallTesting
import Testing

@Suite struct MigrationTests {
    @Test func migratesAFreshFileToEveryContractTableAndView() async throws {
        try await withTemporaryDirectory { dir in
            let store = try SQLiteHistoryStore(path: dir.appendingPathComponent("h.db").path)
            #expect(try store.appliedMigrations() == EmbeddedMigrations.all.map(\.name))
            let names = try store.writer.read { db in
                try String.fetchAll(db, sql: "SELECT type || ':' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%'")
            }
            for expected in ["table:agents", "table:sessions", "table:transitions", "table:server_runs", "view:presence_intervals", "view:uptime_daily"] {
                #expect(names.contains(expected), "\(expected) missing")
            }
            let journal = try store.writer.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(journal == "wal")
            // Opening again applies nothing twice.
            let again = try SQLiteHistoryStore(path: dir.appendingPathComponent("h.db").path)
            #expect(try again.appliedMigrations().count == EmbeddedMigrations.all.count)
        }
    }

    @Test func theContractColumnsExist() async throws {
        let store = try SQLiteHistoryStore(writer: DatabaseQueue())
        let columns: [String: [String]] = [
            "agents": ["id", "state", "state_since_ms", "first_seen_ms", "last_seen_ms", "labels", "token_hash"],
            "sessions": ["id", "agent_id", "started_at_ms", "ended_at_ms", "end_reason", "close_code", "remote_addr", "boot_id", "heartbeats"],
            "transitions": ["id", "agent_id", "from_state", "to_state", "reason", "effective_at_ms", "detected_at_ms", "session_id"],
            "server_runs": ["id", "started_at_ms", "stopped_at_ms", "stop_reason"],
            "presence_intervals": ["agent_id", "state", "started_at_ms", "ended_at_ms", "reason"],
            "uptime_daily": ["agent_id", "day", "online_ms", "suspect_ms", "offline_ms", "unknown_ms", "uptime_ratio"],
        ]
        try await store.writer.read { db in
            for (table, expected) in columns {
                let actual = try Row.fetchAll(db, sql: "PRAGMA table_info(\(table))").map { $0["name"] as String }
                for column in expected { #expect(actual.contains(column), "\(table).\(column) missing") }
            }
        }
    }

    @Test(arguments: ["migrations", "migrations/postgres"])
    func theEmbeddedMigrationsMatchTheFilesInMigrations(folder: String) throws {
        let migrations = folder == "migrations" ? EmbeddedMigrations.all : EmbeddedMigrations.postgres
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = root.appendingPathComponent(folder)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(!files.isEmpty)
        #expect(files.map { String($0.dropLast(4)) } == migrations.map(\.name), "run scripts/embed-migrations")
        for (file, embedded) in zip(files, migrations) {
            let text = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            #expect(text == embedded.sql, "\(file) differs from its embedded copy: run scripts/embed-migrations")
            #expect(file.range(of: #"^\d{4}_[a-z0-9_]+\.sql$"#, options: .regularExpression) != nil)
        }
    }
}
