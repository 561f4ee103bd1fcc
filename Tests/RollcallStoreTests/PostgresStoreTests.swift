import Foundation
import Synchronization
import RollcallCore
@testable import RollcallStore
import RollcallTesting
import Testing

/// What only the PostgreSQL store has: its migrations, several writers, its URL.
@Suite struct PostgresStoreTests {
    let t0: Millis = 1_764_000_000_000

    @Test(.enabled(if: StoreBackend.available.contains(.postgres)))
    func migratesAFreshDatabaseToEveryContractTableViewAndColumnOnce() throws {
        let test = try TestStore(.postgres)
        let store = try #require(test.store as? PostgresHistoryStore)
        #expect(try store.appliedMigrations() == EmbeddedMigrations.postgres.map(\.name))
        let columns = Set(try test.rows("SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public'"))
        let expected: [String: [String]] = [
            "agents": ["id", "state", "state_since_ms", "first_seen_ms", "last_seen_ms", "labels", "token_hash", "disabled", "hostname", "status"],
            "sessions": ["id", "agent_id", "started_at_ms", "ended_at_ms", "end_reason", "close_code", "remote_addr", "boot_id", "heartbeats", "rtt_ms"],
            "transitions": ["id", "agent_id", "from_state", "to_state", "reason", "effective_at_ms", "detected_at_ms", "session_id"],
            "server_runs": ["id", "started_at_ms", "stopped_at_ms", "stop_reason", "last_alive_ms", "node_id"],
            "nodes": ["id", "started_at_ms", "lease_until_ms", "stopped_at_ms", "stop_reason"],
            "agent_owners": ["agent_id", "node_id", "epoch", "session_id"],
            "presence_intervals": ["agent_id", "state", "started_at_ms", "ended_at_ms", "reason"],
            "uptime_daily": ["agent_id", "day", "online_ms", "suspect_ms", "offline_ms", "unknown_ms", "uptime_ratio"],
        ]
        for (table, names) in expected {
            for name in names { #expect(columns.contains("\(table).\(name)"), "\(table).\(name) missing") }
        }
        // Every time column is bigint milliseconds (rtt_ms is a duration with a fraction).
        let notBigint = try test.rows(
            "SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public' AND column_name LIKE '%\\_ms' AND data_type <> 'bigint' AND table_name <> 'uptime_daily' AND column_name <> 'rtt_ms'"
        )
        #expect(notBigint == [])
        // A second node opening the same database applies nothing twice.
        let again = try #require(try test.sibling(nodeID: "other"))
        defer { again.close() }
        #expect(try again.appliedMigrations() == EmbeddedMigrations.postgres.map(\.name))
        #expect(try test.rows("SELECT COUNT(*) FROM schema_migrations") == ["\(EmbeddedMigrations.postgres.count)"])
    }

    /// Identity values are handed out before commit; without the writers' advisory lock a reader
    /// paging `id > cursor` would step over an id whose transaction commits after a larger one.
    @Test(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(1)))
    func transitionIDsFollowCommitOrderSoACursorReaderNeverSkipsOneAcrossConcurrentWriters() async throws {
        let test = try TestStore(.postgres)
        let writers = try (1...3).map { try #require(try test.sibling(nodeID: "writer-\($0)")) }
        defer { writers.forEach { $0.close() } }
        let perWriter = 60
        let done = Flag()
        async let seen: [Int64] = Task.detached {
            // The reader pages by cursor while the writers commit, as /v1/events and the watch do.
            var cursor: Int64 = 0
            var ids: [Int64] = []
            while true {
                let finished = done.isSet
                let page = try test.store.transitions(agent: nil, after: cursor, limit: 50)
                ids += page.map(\.id)
                cursor = page.last?.id ?? cursor
                if finished && page.isEmpty { return ids }
            }
        }.value
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (n, writer) in writers.enumerated() {
                group.addTask {
                    try await Task.detached {
                        for i in 0..<perWriter {
                            let agent = AgentID("node\(n)-agent\(i % 7)")!
                            let events = (0...(i % 3)).map { k in
                                HistoryEvent.transition(
                                    Transition(
                                        id: 0, agentID: agent, from: nil, to: k % 2 == 0 ? .online : .suspect, reason: .connected,
                                        effectiveAt: t0 + Int64(i), detectedAt: t0 + Int64(i), sessionID: nil))
                            }
                            try writer.write(events, runID: 0, aliveAt: t0)
                        }
                    }.value
                }
            }
            try await group.waitForAll()
        }
        done.set()
        let ids = try await seen
        let all = try test.rows("SELECT id FROM transitions ORDER BY id").compactMap { Int64($0) }
        var written = 0
        for i in 0..<perWriter { written += 3 * (i % 3 + 1) }
        #expect(all.count == written)
        #expect(ids == all, "the reader saw every committed id once, in order")
    }

    @Test(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(1)))
    func aSecondNodeIsRefusedWhileTheFirstRunsWhateverItsNameAndTakesOverOnceItIsGone() async throws {
        let test = try TestStore(.postgres)
        let first = try #require(try test.sibling(nodeID: "node-a"))
        _ = try first.startRun(now: t0, pid: 1, version: "test")
        // A second node, by another name or by the same one, with any clock: refused.
        for (name, now) in [("node-b", t0 + 5_000), ("node-a", t0 + 3_600_000)] {
            let second = try #require(try test.sibling(nodeID: name))
            defer { second.close() }
            do {
                _ = try second.startRun(now: now, pid: 2, version: "test")
                Issue.record("\(name) was let in beside a running node")
            } catch {
                #expect("\(error)".contains("another node is running on this database"))
            }
        }
        // The first goes away without stopping (its connections close): the next one takes over
        // and repairs what it left open.
        first.close()
        let second = try #require(try test.sibling(nodeID: "node-b"))
        defer { second.close() }
        let deadline = ContinuousClock.now + .seconds(20)
        var start: RunStart?
        while start == nil {
            do {
                start = try second.startRun(now: t0 + 40_000, pid: 2, version: "test")
            } catch {
                guard ContinuousClock.now < deadline else { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(start?.recoveredCrash == true)
        #expect(try test.rows("SELECT node_id || ':' || COALESCE(stop_reason, '') FROM server_runs ORDER BY id") == ["node-a:crashed", "node-b:"])
    }

    @Test func splitsAMigrationIntoItsStatementsAtTheLinesThatEndOne() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE a (x int); -- trailing\nCREATE VIEW v AS\nSELECT 1;\n\n-- the end\n"
        #expect(PostgresHistoryStore.statements(sql).count == 2)
        #expect(PostgresHistoryStore.statements(sql)[1].contains("CREATE VIEW v AS\nSELECT 1;"))
        for (name, text) in EmbeddedMigrations.postgres {
            #expect(!PostgresHistoryStore.statements(text).isEmpty, "\(name)")
        }
    }

    @Test(arguments: [
        ("postgres://rollcall@127.0.0.1:5432/rollcall", "postgres://rollcall@127.0.0.1:5432/rollcall"),
        ("postgresql://ops@db.example/history?sslmode=require", "postgres://ops@db.example:5432/history"),
        ("postgres://rollcall@[::1]:6543/r", "postgres://rollcall@[::1]:6543/r"),
    ])
    func readsADatabaseURL(text: String, shown: String) throws {
        #expect(try PostgresLocation(parsing: text).description == shown)
    }

    @Test(arguments: [
        ("postgres://rollcall:secret@127.0.0.1/rollcall", "PGPASSWORD"),
        ("postgres://127.0.0.1/rollcall", "names no user"),
        ("postgres://rollcall@127.0.0.1/", "names no database"),
        ("postgres://rollcall@127.0.0.1/r?sslmode=maybe", "unknown option"),
        ("mysql://rollcall@127.0.0.1/r", "must look like"),
    ])
    func refusesADatabaseURLWithASentence(text: String, says: String) {
        #expect(throws: PostgresStoreError.self) { try PostgresLocation(parsing: text) }
        do { _ = try PostgresLocation(parsing: text) } catch { #expect(error.description.contains(says), "\(text): \(error)") }
    }
}

final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
