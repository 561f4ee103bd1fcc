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
                        // Every transition changes its agent's state (one that would not is no transition).
                        var flips: [Int: Int] = [:]
                        for i in 0..<perWriter {
                            let agent = AgentID("node\(n)-agent\(i % 7)")!
                            let events = (0...(i % 3)).map { _ in
                                flips[i % 7, default: 0] += 1
                                return HistoryEvent.transition(
                                    Transition(
                                        id: 0, agentID: agent, from: nil, to: flips[i % 7]! % 2 == 1 ? .online : .suspect, reason: .connected,
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
    func aSecondProcessWithTheSameNodeIDIsRefusedWhileAnotherNodeRunsBeside() async throws {
        let test = try TestStore(.postgres)
        let first = try #require(try test.sibling(nodeID: "node-a"))
        defer { first.close() }
        _ = try first.startRun(now: t0, pid: 1, version: "test")
        let twin = try #require(try test.sibling(nodeID: "node-a"))
        defer { twin.close() }
        do {
            _ = try twin.startRun(now: t0 + 3_600_000, pid: 2, version: "test")
            Issue.record("a second node-a was let in beside the running one")
        } catch {
            #expect("\(error)".contains("node 'node-a' is already running on this database"))
        }
        let other = try #require(try test.sibling(nodeID: "node-b"))
        defer { other.close() }
        let b = try other.startRun(now: t0 + 5_000, pid: 3, version: "test")
        #expect(b.recoveredCrash == false)
        #expect(try test.rows("SELECT node_id || ':' || COALESCE(stop_reason, '') FROM server_runs ORDER BY id") == ["node-a:", "node-b:"])
        #expect(try test.rows("SELECT id FROM nodes WHERE stopped_at_ms IS NULL ORDER BY id") == ["node-a", "node-b"])
        #expect(try other.otherNodesRunning())
    }

    /// What every node reloads now and then: each agent with a token, and each one disabled.
    @Test(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(1)))
    func everyNodeCanReloadEveryCredentialFromTheSharedHistory() throws {
        let test = try TestStore(.postgres)
        let store = try #require(test.store as? PostgresHistoryStore)
        #expect(try store.register(agent: "kept", tokenHash: "hash-kept", labels: [:], now: t0))
        #expect(try store.register(agent: "gone", tokenHash: "hash-gone", labels: [:], now: t0))
        try store.revoke(agent: "gone")
        let rows = try store.credentials().sorted { $0.id < $1.id }
        #expect(rows.map(\.id) == ["gone", "kept"])
        #expect(rows.map(\.tokenHash) == [nil, "hash-kept"] && rows.map(\.disabled) == [true, false])
    }

    /// Session ids come in blocks per node, so two nodes never open the same one.
    @Test(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(1)))
    func nodesHandOutSessionIDsFromBlocksThatNeverOverlap() throws {
        let test = try TestStore(.postgres)
        let a = try #require(try test.sibling(nodeID: "node-a"))
        let b = try #require(try test.sibling(nodeID: "node-b"))
        defer { a.close(); b.close() }
        let blockA = try #require(try a.startRun(now: t0, pid: 1, version: "test").sessionIDs)
        let blockB = try #require(try b.startRun(now: t0, pid: 2, version: "test").sessionIDs)
        let more = try #require(try a.upkeep(now: t0 + 1, needSessionIDs: true).sessionIDs)
        #expect(blockA.count == 65_536 && blockB.count == 65_536 && more.count == 65_536)
        #expect(!blockA.overlaps(blockB) && !blockA.overlaps(more) && !blockB.overlaps(more))
    }

    /// The newer connection owns the agent: the old owner is told, and what it writes afterwards
    /// for that agent (with its stale epoch) changes nothing.
    @Test(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(1)))
    func aNewerConnectionOnAnotherNodeTakesTheAgentAndTheOldOwnersWritesChangeNothing() async throws {
        let test = try TestStore(.postgres)
        let a = try #require(try test.sibling(nodeID: "node-a"))
        let b = try #require(try test.sibling(nodeID: "node-b"))
        defer { a.close(); b.close() }
        let runA = try a.startRun(now: t0, pid: 1, version: "test")
        let runB = try b.startRun(now: t0, pid: 2, version: "test")
        let agent = AgentID("mover")!
        let sessionA = try #require(runA.sessionIDs).lowerBound
        let sessionB = try #require(runB.sessionIDs).lowerBound
        func opened(_ id: Int64, at time: Millis) -> HistoryEvent {
            .sessionOpened(SessionStart(id: id, agentID: agent, startedAt: time, remoteAddress: nil, bootID: nil, intervalMs: 1000, timeoutMs: 3000, agentRestarted: nil))
        }
        let online = try a.write([opened(sessionA, at: t0 + 10)], runID: runA.runID, aliveAt: t0 + 10)
        #expect(online.map(\.to) == [.online])
        #expect(try test.rows("SELECT node_id || ':' || epoch FROM agent_owners WHERE agent_id = 'mover'") == ["node-a:1"])
        // It connects to B too (A has not noticed its old connection is gone): no transition.
        let atB = try b.write([opened(sessionB, at: t0 + 500)], runID: runB.runID, aliveAt: t0 + 500)
        #expect(atB.isEmpty)
        #expect(try test.rows("SELECT node_id || ':' || epoch FROM agent_owners WHERE agent_id = 'mover'") == ["node-b:2"])
        // A hears of it (NOTIFY) and gives the agent up.
        try await waitUntil("node-a hears that node-b took the agent", within: .seconds(5)) { a.takeRelinquished() == [agent] }
        // A late timeout from A changes nothing; nor does a late claim of its older connection.
        let late = try a.write(
            [.transition(Transition(id: 0, agentID: agent, from: .online, to: .suspect, reason: .missedHeartbeat, effectiveAt: t0 + 600, detectedAt: t0 + 600, sessionID: sessionA)),
             opened(sessionA + 1, at: t0 + 400)],
            runID: runA.runID, aliveAt: t0 + 600)
        #expect(late.isEmpty)
        #expect(try test.rows("SELECT node_id || ':' || epoch FROM agent_owners WHERE agent_id = 'mover'") == ["node-b:2"])
        #expect(try test.rows("SELECT to_state || ':' || reason FROM transitions WHERE agent_id = 'mover' ORDER BY id") == ["online:connected"])
    }

    /// A node that goes away without stopping keeps its lease until it lapses; then another node
    /// closes its sessions, makes its agents unknown as of its last renewal, and times them.
    @Test(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(1)))
    func aNodeWhoseLeaseLapsesIsTakenOverByAnotherAsOfItsLastRenewal() async throws {
        let test = try TestStore(.postgres)
        let a = try #require(try test.sibling(nodeID: "node-a", leaseMs: 1_000))
        let b = try #require(try test.sibling(nodeID: "node-b", leaseMs: 1_000))
        defer { b.close() }
        let runA = try a.startRun(now: t0, pid: 1, version: "test")
        _ = try b.startRun(now: t0, pid: 2, version: "test")
        let agent = AgentID("stranded")!
        let session = try #require(runA.sessionIDs).lowerBound
        _ = try a.write(
            [.sessionOpened(SessionStart(id: session, agentID: agent, startedAt: t0, remoteAddress: nil, bootID: nil, intervalMs: 1000, timeoutMs: 3000, agentRestarted: nil))],
            runID: runA.runID, aliveAt: t0)
        // Not before the lease lapses.
        #expect(try b.upkeep(now: t0 + 1, needSessionIDs: false).nodesTakenOver.isEmpty)
        a.close()  // gone without a word
        var upkeep = NodeUpkeep()
        try await waitUntil("node-b takes node-a over", within: .seconds(10)) {
            upkeep = (try? b.upkeep(now: t0 + 2, needSessionIDs: false)) ?? NodeUpkeep()
            return !upkeep.nodesTakenOver.isEmpty
        }
        #expect(upkeep.nodesTakenOver == ["node-a"])
        #expect(upkeep.adopted.map(\.id) == [agent] && upkeep.adopted.map(\.state) == [.unknown])
        // As of node-a's last renewal (the database's clock), whatever node-b's own lease.
        let lastRenewal = try #require(Int64(try test.rows("SELECT renewed_at_ms FROM nodes WHERE id = 'node-a'").first ?? ""))
        #expect(try test.rows("SELECT to_state || ':' || reason || ':' || effective_at_ms FROM transitions WHERE agent_id = 'stranded' ORDER BY id")
            == ["online:connected:\(t0)", "unknown:server_crashed:\(max(t0, lastRenewal))"])
        #expect(try test.rows("SELECT end_reason FROM sessions WHERE agent_id = 'stranded'") == ["server_crashed"])
        #expect(try test.rows("SELECT node_id || ':' || epoch FROM agent_owners WHERE agent_id = 'stranded'") == ["node-b:2"])
        #expect(try test.rows("SELECT stop_reason FROM nodes WHERE id = 'node-a'") == ["lease lapsed"])
        // Nobody takes it over twice.
        #expect(try b.upkeep(now: t0 + 3, needSessionIDs: false).nodesTakenOver.isEmpty)
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
