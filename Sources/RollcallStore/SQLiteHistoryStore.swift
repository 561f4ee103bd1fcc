import Foundation
import GRDB
import RollcallCore

/// The history in one SQLite file in WAL mode, so `sqlite3 rollcall.db` reads freely while the
/// server writes.
public final class SQLiteHistoryStore: HistoryStore {
    public let writer: any DatabaseWriter

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String) throws {
        var configuration = Configuration()
        // An analyst's `sqlite3` session may hold a lock briefly; wait instead of failing.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        self.writer = try DatabasePool(path: path, configuration: configuration)
        try Self.migrator.migrate(writer)
    }

    /// Wraps an existing writer (an in-memory `DatabaseQueue` in tests) and migrates it.
    public init(writer: any DatabaseWriter) throws {
        self.writer = writer
        try Self.migrator.migrate(writer)
    }

    /// The names of the applied migrations, oldest first.
    public func appliedMigrations() throws -> [String] {
        try writer.read { db in try Self.migrator.appliedMigrations(db) }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for (name, sql) in EmbeddedMigrations.all {
            migrator.registerMigration(name) { db in try db.execute(sql: sql) }
        }
        return migrator
    }

    // MARK: Runs

    public func startRun(now: Millis, pid: Int32, version: String) throws -> RunStart {
        try writer.write { db in
            var crashed = false
            var repair: [Transition] = []
            let open = try Row.fetchAll(db, sql: "SELECT id, last_alive_ms FROM server_runs WHERE stopped_at_ms IS NULL AND stop_reason IS NULL")
            var crashedAt: Millis?
            for row in open {
                crashed = true
                let alive: Int64 = row["last_alive_ms"]
                crashedAt = max(crashedAt ?? alive, alive)
                try db.execute(sql: "UPDATE server_runs SET stop_reason = 'crashed' WHERE id = ?", arguments: [row["id"] as Int64])
            }
            let lastStop = try Int64.fetchOne(db, sql: "SELECT MAX(COALESCE(stopped_at_ms, last_alive_ms)) FROM server_runs") ?? now
            let downSince = crashedAt ?? lastStop
            let endReason = crashed ? SessionEndReason.serverCrashed.rawValue : SessionEndReason.serverStopped.rawValue
            // Close every session the previous run left open, never before it started.
            try db.execute(
                sql: """
                    UPDATE sessions SET ended_at_ms = MAX(started_at_ms, COALESCE(last_seen_ms, started_at_ms), ?),
                        end_reason = ? WHERE ended_at_ms IS NULL
                    """, arguments: [downSince, endReason])
            // Agents the previous run saw online or suspect are now unknown.
            let reason = crashed ? TransitionReason.serverCrashed.rawValue : TransitionReason.serverStopped.rawValue
            let stale = try Row.fetchAll(
                db, sql: "SELECT id, state, state_since_ms FROM agents WHERE state IN ('online', 'suspect') ORDER BY id")
            for row in stale {
                let id: String = row["id"]
                let from: String = row["state"]
                let effective = max(downSince, row["state_since_ms"] as Int64)
                try db.execute(
                    sql: """
                        INSERT INTO transitions (agent_id, from_state, to_state, reason, effective_at_ms, detected_at_ms, session_id)
                        VALUES (?, ?, 'unknown', ?, ?, ?, NULL)
                        """, arguments: [id, from, reason, effective, now])
                if let agentID = AgentID(id) {
                    repair.append(
                        Transition(
                            id: db.lastInsertedRowID, agentID: agentID, from: PresenceState(rawValue: from), to: .unknown,
                            reason: crashed ? .serverCrashed : .serverStopped, effectiveAt: effective, detectedAt: now, sessionID: nil))
                }
                try db.execute(
                    sql: "UPDATE agents SET state = 'unknown', state_since_ms = ? WHERE id = ?", arguments: [effective, id])
            }
            try db.execute(
                sql: "INSERT INTO server_runs (started_at_ms, last_alive_ms, pid, version) VALUES (?, ?, ?, ?)",
                arguments: [now, now, Int(pid), version])
            let runID = db.lastInsertedRowID
            let nextTransition = (try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM transitions") ?? 0) + 1
            let nextSession = (try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM sessions") ?? 0) + 1
            let agents = try Row.fetchAll(
                db,
                sql: """
                    SELECT \(Self.agentColumns), (SELECT boot_id FROM sessions WHERE sessions.agent_id = agents.id ORDER BY id DESC LIMIT 1)
                    FROM agents ORDER BY id
                    """
            ).map(Self.agent(from:))
            return RunStart(
                runID: runID, recoveredCrash: crashed, repairTransitions: repair, nextTransitionID: nextTransition,
                nextSessionID: nextSession, agents: agents)
        }
    }

    public func finishRun(_ runID: Int64, now: Millis) throws {
        try writer.write { db in
            try db.execute(
                sql: "UPDATE server_runs SET stopped_at_ms = ?, last_alive_ms = ?, stop_reason = 'graceful' WHERE id = ?",
                arguments: [now, now, runID])
        }
    }

    // MARK: Writing

    @discardableResult
    public func write(_ events: [HistoryEvent], runID: Int64, aliveAt: Millis) throws -> [Transition] {
        try writer.write { db in
            var committed: [Transition] = []
            for event in events {
                if let t = try Self.apply(event, runID: runID, db: db) { committed.append(t) }
            }
            try db.cachedStatement(sql: "UPDATE server_runs SET last_alive_ms = MAX(last_alive_ms, ?) WHERE id = ?")
                .execute(arguments: [aliveAt, runID])
            return committed
        }
    }

    /// Applies one event; for a transition, returns it with the id the database gave it.
    ///
    /// The database, not the engine, numbers transitions: the next rowid, so ids follow commit
    /// order, and a row someone else put in the file can never collide with one of ours.
    @discardableResult
    static func apply(_ event: HistoryEvent, runID: Int64, db: Database) throws -> Transition? {
        switch event {
        case .transition(var t):
            try db.cachedStatement(
                sql: """
                    INSERT INTO transitions (agent_id, from_state, to_state, reason, effective_at_ms, detected_at_ms, session_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                t.agentID.rawValue, t.from?.rawValue, t.to.rawValue, t.reason.rawValue, t.effectiveAt, t.detectedAt, t.sessionID,
            ])
            t.id = db.lastInsertedRowID
            try db.cachedStatement(
                sql: """
                    INSERT INTO agents (id, state, state_since_ms, first_seen_ms) VALUES (?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET state = excluded.state, state_since_ms = excluded.state_since_ms
                    """
            ).execute(arguments: [t.agentID.rawValue, t.to.rawValue, t.effectiveAt, t.effectiveAt])
            return t
        case .sessionOpened(let s):
            try db.cachedStatement(
                sql: """
                    INSERT INTO sessions (id, agent_id, started_at_ms, remote_addr, boot_id, interval_ms, timeout_ms,
                        agent_restarted, server_run_id, last_seen_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                s.id, s.agentID.rawValue, s.startedAt, s.remoteAddress, s.bootID, s.intervalMs, s.timeoutMs,
                s.agentRestarted.map { $0 ? 1 : 0 }, runID, s.startedAt,
            ])
            try db.cachedStatement(
                sql: """
                    INSERT INTO agents (id, state, state_since_ms, first_seen_ms, last_seen_ms, interval_ms, timeout_ms)
                    VALUES (?, 'offline', ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET interval_ms = excluded.interval_ms, timeout_ms = excluded.timeout_ms,
                        last_seen_ms = MAX(COALESCE(last_seen_ms, 0), excluded.last_seen_ms)
                    """
            ).execute(arguments: [s.agentID.rawValue, s.startedAt, s.startedAt, s.startedAt, s.intervalMs, s.timeoutMs])
        case .sessionClosed(let e):
            try db.cachedStatement(
                sql: """
                    UPDATE sessions SET ended_at_ms = ?, end_reason = ?, close_code = ?, heartbeats = ?,
                        last_seen_ms = MAX(COALESCE(last_seen_ms, 0), ?), rtt_ms = COALESCE(?, rtt_ms)
                    WHERE id = ?
                    """
            ).execute(arguments: [e.endedAt, e.reason.rawValue, e.closeCode, e.heartbeats, e.lastSeen, e.rttMs, e.id])
            try db.cachedStatement(sql: "UPDATE agents SET last_seen_ms = MAX(COALESCE(last_seen_ms, 0), ?) WHERE id = ?")
                .execute(arguments: [e.lastSeen, e.agentID.rawValue])
        case .counters(let counters):
            let session = try db.cachedStatement(
                sql: """
                    UPDATE sessions SET heartbeats = ?, last_seen_ms = MAX(COALESCE(last_seen_ms, 0), ?), rtt_ms = COALESCE(?, rtt_ms)
                    WHERE id = ? AND ended_at_ms IS NULL
                    """)
            let agent = try db.cachedStatement(sql: "UPDATE agents SET last_seen_ms = MAX(COALESCE(last_seen_ms, 0), ?) WHERE id = ?")
            for c in counters {
                try session.execute(arguments: [c.heartbeats, c.lastSeen, c.rttMs, c.sessionID])
                try agent.execute(arguments: [c.lastSeen, c.agentID.rawValue])
            }
        case .hello(let id, let hello):
            let labels = JSONValue.object(hello.labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }).serialized()
            try db.cachedStatement(
                sql: "UPDATE agents SET labels = ?, hostname = ?, agent_version = ?, metadata = ? WHERE id = ?"
            ).execute(arguments: [labels, hello.hostname, hello.agentVersion, hello.raw.serialized(), id.rawValue])
        case .status(let id, let status):
            try db.cachedStatement(sql: "UPDATE agents SET status = ? WHERE id = ?").execute(arguments: [status.serialized(), id.rawValue])
        }
        return nil
    }

    // MARK: Reading

    public func agents(_ query: AgentQuery) throws -> [StoredAgent] {
        var clauses: [String] = []
        var arguments: StatementArguments = []
        if let state = query.state {
            clauses.append("state = ?")
            arguments += [state.rawValue]
        }
        if let prefix = query.idPrefix, !prefix.isEmpty {
            // A literal prefix: LIKE's wildcards and the escape character are escaped.
            clauses.append("id LIKE ? ESCAPE '\\'")
            let escaped = prefix.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_")
            arguments += [escaped + "%"]
        }
        for (key, value) in query.labels {
            clauses.append("json_extract(labels, ?) = ?")
            arguments += ["$.\"\(key.replacingOccurrences(of: "\"", with: ""))\"", value]
        }
        if let after = query.after {
            clauses.append("id > ?")
            arguments += [after]
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        arguments += [query.limit]
        return try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.agentColumns), NULL FROM agents \(whereClause) ORDER BY id LIMIT ?", arguments: arguments).map(Self.agent(from:))
        }
    }

    public func agent(_ id: String) throws -> StoredAgent? {
        try writer.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.agentColumns), NULL FROM agents WHERE id = ?", arguments: [id]).map(Self.agent(from:))
        }
    }

    public func transitions(agent: String?, after: Int64, limit: Int) throws -> [Transition] {
        try writer.read { db in
            let rows: [Row]
            if let agent {
                rows = try Row.fetchAll(
                    db, sql: "SELECT * FROM transitions WHERE agent_id = ? AND id > ? ORDER BY id LIMIT ?", arguments: [agent, after, limit])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT * FROM transitions WHERE id > ? ORDER BY id LIMIT ?", arguments: [after, limit])
            }
            return rows.compactMap(Self.transition(from:))
        }
    }

    public func transitions(agent: String, after: Int64, before: Int64?, effectiveFrom: Millis, limit: Int) throws -> [Transition] {
        try writer.read { db in
            if let before {
                return try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM transitions WHERE agent_id = ? AND id > ? AND id < ? AND effective_at_ms >= ? ORDER BY id DESC LIMIT ?",
                    arguments: [agent, after, before, effectiveFrom, limit]
                ).compactMap(Self.transition(from:))
            }
            return try Row.fetchAll(
                db, sql: "SELECT * FROM transitions WHERE agent_id = ? AND id > ? AND effective_at_ms >= ? ORDER BY id LIMIT ?",
                arguments: [agent, after, effectiveFrom, limit]
            ).compactMap(Self.transition(from:))
        }
    }

    public func fleetStats(first: String, last: String, from: Millis, now: Millis) throws -> [String: FleetStats] {
        try writer.read { db in
            var stats: [String: FleetStats] = [:]
            // The agent range is a constraint on the view's PARTITION BY column, which SQLite pushes
            // below the window function: only these agents' transitions are read.
            let rows = try Row.fetchCursor(
                db,
                sql: """
                    SELECT agent_id, state, SUM(MIN(COALESCE(ended_at_ms, :now), :now) - MAX(started_at_ms, :from)) AS ms
                    FROM presence_intervals
                    WHERE agent_id >= :first AND agent_id <= :last AND started_at_ms < :now AND COALESCE(ended_at_ms, :now) > :from
                    GROUP BY agent_id, state
                    """, arguments: ["first": first, "last": last, "from": from, "now": now])
            while let row = try rows.next() {
                stats[row["agent_id"] as String, default: FleetStats()].uptime.set(row["ms"], forState: row["state"])
            }
            let flaps = try Row.fetchCursor(
                db,
                sql: """
                    SELECT agent_id, COUNT(*) AS n FROM transitions
                    WHERE agent_id >= ? AND agent_id <= ? AND effective_at_ms >= ? AND from_state = 'online'
                      AND to_state IN ('suspect', 'offline')
                    GROUP BY agent_id
                    """, arguments: [first, last, from])
            while let row = try flaps.next() {
                stats[row["agent_id"], default: FleetStats()].flaps = row["n"]
            }
            return stats
        }
    }

    public func sessions(agent: String, before: Int64?, limit: Int) throws -> [StoredSession] {
        try writer.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM sessions WHERE agent_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                arguments: [agent, before ?? Int64.max, limit]
            ).map(Self.session(from:))
        }
    }

    public func uptime(agent: String, from: Millis, to: Millis, now: Millis) throws -> Uptime {
        try writer.read { db in
            var uptime = Uptime()
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT state, SUM(MIN(COALESCE(ended_at_ms, :now), :to) - MAX(started_at_ms, :from)) AS ms
                    FROM presence_intervals
                    WHERE agent_id = :agent AND started_at_ms < :to AND COALESCE(ended_at_ms, :now) > :from
                    GROUP BY state
                    """, arguments: ["agent": agent, "from": from, "to": to, "now": now])
            for row in rows { uptime.set(row["ms"], forState: row["state"]) }
            return uptime
        }
    }

    public func uptimeDaily(agent: String, fromDay: String, now: Millis) throws -> [UptimeDay] {
        guard let from = Timestamp.parseDay(fromDay) else { return [] }
        let intervals = try writer.read { db in
            // The view's window function is partitioned by agent, so this filter is applied before
            // it runs: only this agent's transitions are read.
            try Row.fetchAll(
                db,
                sql: """
                    SELECT state, started_at_ms, ended_at_ms FROM presence_intervals
                    WHERE agent_id = ? AND COALESCE(ended_at_ms, ?) > ? ORDER BY started_at_ms
                    """, arguments: [agent, now, from]
            ).map { (state: PresenceState(rawValue: $0[0] as String), start: $0[1] as Int64, end: ($0[2] as Int64?) ?? now) }
        }
        return UptimeDay.split(intervals, fromDayStart: from)
    }

    public func register(agent: String, tokenHash: String, labels: [String: String], now: Millis) throws -> Bool {
        let labelText = JSONValue.object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }).serialized()
        return try writer.write { db in
            if let existing = try Row.fetchOne(db, sql: "SELECT token_hash, disabled FROM agents WHERE id = ?", arguments: [agent]) {
                if (existing["token_hash"] as String?) != nil && (existing["disabled"] as Int) == 0 { return false }
                try db.execute(
                    sql: "UPDATE agents SET token_hash = ?, disabled = 0, labels = CASE WHEN ? = '{}' THEN labels ELSE ? END WHERE id = ?",
                    arguments: [tokenHash, labelText, labelText, agent])
                return true
            }
            try db.execute(
                sql: "INSERT INTO agents (id, state, state_since_ms, first_seen_ms, labels, token_hash) VALUES (?, 'offline', ?, ?, ?, ?)",
                arguments: [agent, now, now, labelText, tokenHash])
            return true
        }
    }

    public func revoke(agent: String) throws {
        try writer.write { db in
            try db.execute(sql: "UPDATE agents SET token_hash = NULL, disabled = 1 WHERE id = ?", arguments: [agent])
        }
    }

    public func prune(before cutoff: Millis) throws -> PruneReport {
        try writer.write { db in
            // Each agent's transition in force at the cutoff becomes the first row, starting there.
            try db.execute(sql: "DROP TABLE IF EXISTS temp.prune_cut")
            try db.execute(
                sql: "CREATE TEMP TABLE prune_cut AS SELECT agent_id, MAX(id) AS id FROM transitions WHERE effective_at_ms <= ? GROUP BY agent_id",
                arguments: [cutoff])
            try db.execute(
                sql: """
                    UPDATE transitions SET effective_at_ms = ?1, detected_at_ms = MAX(detected_at_ms, ?1)
                    WHERE id IN (SELECT id FROM temp.prune_cut) AND effective_at_ms < ?1
                    """,
                arguments: [cutoff])
            try db.execute(
                sql: """
                    DELETE FROM transitions WHERE id IN (
                        SELECT t.id FROM transitions t JOIN temp.prune_cut c ON t.agent_id = c.agent_id WHERE t.id < c.id)
                    """)
            let transitions = db.changesCount
            // An agent's current state started no earlier than its first remaining interval.
            try db.execute(sql: "UPDATE agents SET state_since_ms = ? WHERE state_since_ms < ?", arguments: [cutoff, cutoff])
            try db.execute(sql: "DROP TABLE temp.prune_cut")
            try db.execute(sql: "DELETE FROM sessions WHERE ended_at_ms IS NOT NULL AND ended_at_ms < ?", arguments: [cutoff])
            let sessions = db.changesCount
            try db.execute(
                sql: "DELETE FROM server_runs WHERE COALESCE(stopped_at_ms, last_alive_ms) < ? AND id < (SELECT MAX(id) FROM server_runs)",
                arguments: [cutoff])
            let runs = db.changesCount
            return PruneReport(transitions: transitions, sessions: sessions, serverRuns: runs)
        }
    }

    // MARK: Row mapping

    /// The columns `agent(from:)` reads, by position (a listing decodes thousands of rows: looking
    /// each column up by name was a fifth of a `/v1/agents` page), then the last boot id.
    static let agentColumns = """
        agents.id, agents.state, agents.state_since_ms, agents.first_seen_ms, agents.last_seen_ms, agents.labels, agents.hostname, \
        agents.agent_version, agents.metadata, agents.status, agents.interval_ms, agents.timeout_ms, agents.token_hash, agents.disabled
        """

    static func agent(from row: Row) -> StoredAgent {
        StoredAgent(
            id: row[0], state: PresenceState(rawValue: row[1]) ?? .unknown, stateSince: row[2], firstSeen: row[3], lastSeen: row[4],
            labels: row[5], hostname: row[6], agentVersion: row[7], metadata: row[8], status: row[9], intervalMs: row[10],
            timeoutMs: row[11], tokenHash: row[12], disabled: (row[13] as Int? ?? 0) != 0, lastBootID: row[14])
    }

    /// A row as the one ``Transition`` type; `nil` for a row Rollcall could not have written (an
    /// unknown state or an invalid id put there by hand), which no answer can describe.
    static func transition(from row: Row) -> Transition? {
        guard let agent = AgentID(row["agent_id"] as String), let to = PresenceState(rawValue: row["to_state"]) else { return nil }
        return Transition(
            id: row["id"], agentID: agent, from: (row["from_state"] as String?).flatMap(PresenceState.init(rawValue:)), to: to,
            reason: TransitionReason(rawValue: row["reason"]),
            effectiveAt: row["effective_at_ms"], detectedAt: row["detected_at_ms"], sessionID: row["session_id"])
    }

    static func session(from row: Row) -> StoredSession {
        let restarted: Int? = row["agent_restarted"]
        return StoredSession(
            id: row["id"], agentID: row["agent_id"], startedAt: row["started_at_ms"], endedAt: row["ended_at_ms"],
            endReason: row["end_reason"], closeCode: row["close_code"], remoteAddress: row["remote_addr"], bootID: row["boot_id"],
            heartbeats: row["heartbeats"], lastSeen: row["last_seen_ms"], intervalMs: row["interval_ms"], timeoutMs: row["timeout_ms"],
            agentRestarted: restarted.map { $0 != 0 }, rttMs: row["rtt_ms"])
    }
}
