import Dispatch
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import _ConnectionPoolModule
import RollcallCore
import Synchronization

/// The history in PostgreSQL (SPEC §10): the same tables, columns and views as the SQLite file,
/// in `migrations/postgres/`. The server calls its store from its own database threads, which
/// exist to wait for the database, so this store keeps `HistoryStore`'s blocking interface and
/// waits there for postgres-nio's asynchronous client.
///
/// Transition ids come from the database and follow commit order: every writing transaction
/// first takes a transaction-scoped advisory lock (`writerLock`), so no transaction can take an
/// id while another that took a smaller one has yet to commit, and a reader paging `id > cursor`
/// never skips a row that commits late.
public final class PostgresHistoryStore: HistoryStore {
    /// The advisory lock every writing transaction holds until it commits.
    static let writerLock: Int64 = 0x526F_6C6C_6361_6C6C  // "Rollcall"
    /// The channel of every NOTIFY: `t ID` (a batch committed, ID its newest transition) and
    /// `o EPOCH AGENT` (a node took the agent over with that epoch).
    static let channel = "rollcall"
    /// Session ids are reserved in blocks of this many (migration 0003).
    public static let sessionBlock: Int64 = 65_536
    /// The database's clock, in Unix-epoch milliseconds: leases are judged by it alone, so the
    /// nodes' own clocks never decide who is alive.
    static let databaseNow = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

    public let location: PostgresLocation
    public let nodeID: String
    /// How long a lease lasts without renewal (SPEC §10, default 10 s).
    public let leaseMs: Int64
    /// How long a read may wait for the database before it fails with ``HistoryUnavailable``:
    /// during an outage the API answers 503 at once instead of hanging. Writes have no deadline:
    /// a write given up on could still commit, and writing it again would invent history; the
    /// writer waits, and its backlog refuses new agents when it is full.
    public let readDeadline: Duration = .seconds(5)
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>
    let nodeConnection = Mutex<Task<Void, Never>?>(nil)
    let leaseKeeper = Mutex<Task<Void, Never>?>(nil)
    let book = NodeBook()

    /// Connects to `location` (the password from `password`, never from the URL) and applies the
    /// migrations this database lacks.
    public init(location: PostgresLocation, password: String?, nodeID: String, leaseMs: Int64 = 10_000, logger: Logger) throws {
        self.location = location
        self.nodeID = nodeID
        self.leaseMs = max(1_000, leaseMs)
        let leaseMs = self.leaseMs
        self.logger = logger
        var configuration = PostgresClient.Configuration(
            host: location.host, port: location.port, username: location.user, password: password, database: location.database,
            tls: location.requireTLS ? .require(.makeClientConfiguration()) : location.disableTLS ? .disable : .prefer(.makeClientConfiguration()))
        configuration.options.connectTimeout = .seconds(10)
        configuration.options.maximumConnections = 8
        // A node paused (or frozen) inside a transaction would hold the writers' lock, and so stop
        // every node's writes and every takeover, for as long as it stays paused: PostgreSQL ends
        // such a transaction (rolled back: retrying it is safe) well within a lease.
        configuration.options.additionalStartupParameters = [("idle_in_transaction_session_timeout", "\(max(2_000, leaseMs / 2))")]
        // The connections live on the same event loop as the store's tasks: a query's answer wakes
        // its task where it arrives, with no hop between threads (on a busy machine, each hop costs
        // a scheduling delay, and a writer awaits thousands of answers in a batch).
        let client = PostgresClient(configuration: configuration, eventLoopGroup: DatabaseTaskExecutor.shared.group, backgroundLogger: logger)
        self.client = client
        // The pool runs as long as the store: its connections are made, kept alive and closed by it.
        self.runner = Task.detached(executorPreference: DatabaseTaskExecutor.shared) { await client.run() }
        try blocking { try await Self.migrate(client: client, logger: logger) }
    }

    /// Closes every connection (and so gives up the node's lock).
    public func close() {
        leaseKeeper.withLock { $0?.cancel() }
        nodeConnection.withLock { $0?.cancel() }
        runner.cancel()
    }

    deinit {
        leaseKeeper.withLock { $0?.cancel() }
        nodeConnection.withLock { $0?.cancel() }
        runner.cancel()
    }

    // MARK: Migrations

    /// Applies the embedded PostgreSQL migrations this database lacks, in order, each in a
    /// transaction, under an advisory lock so that nodes starting together apply each once.
    static func migrate(client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(writerLock))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at_ms bigint NOT NULL)", logger: logger)
            var applied = Set<String>()
            for try await name in try await connection.query("SELECT name FROM schema_migrations", logger: logger).decode(String.self) {
                applied.insert(name)
            }
            for (name, sql) in EmbeddedMigrations.postgres where !applied.contains(name) {
                logger.notice("applying migration", metadata: ["migration": "\(name)"])
                // One statement at a time: the extended protocol takes no more per query.
                for statement in Self.statements(sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    "INSERT INTO schema_migrations (name, applied_at_ms) VALUES (\(name), \(Int64((Date().timeIntervalSince1970 * 1000).rounded())))", logger: logger)
            }
        }
    }

    /// A migration file's statements: a statement ends with the line whose code (before any `--`
    /// comment) ends in `;`, outside a `$$`-quoted function body. The migration files are written
    /// that way; none has a `;` at the end of a line inside a string.
    static func statements(_ sql: String) -> [String] {
        var statements: [String] = []
        var current: [Substring] = []
        var inBody = false
        for line in sql.split(separator: "\n", omittingEmptySubsequences: false) {
            current.append(line)
            if line.components(separatedBy: "$$").count % 2 == 0 { inBody.toggle() }
            let code = line.components(separatedBy: "--")[0].trimmingCharacters(in: .whitespaces)
            if !inBody, code.hasSuffix(";") {
                statements.append(current.joined(separator: "\n"))
                current = []
            }
        }
        let rest = current.joined(separator: "\n")
        if !rest.split(separator: "\n").allSatisfy({ $0.trimmingCharacters(in: .whitespaces).hasPrefix("--") || $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            statements.append(rest)
        }
        return statements
    }

    /// The names of the applied migrations, oldest first.
    public func appliedMigrations() throws -> [String] {
        try blocking { [client, logger] in
            var names: [String] = []
            for try await name in try await client.query("SELECT name FROM schema_migrations ORDER BY name", logger: logger).decode(String.self) {
                names.append(name)
            }
            return names
        }
    }

    // MARK: Runs

    /// Starts this node's run: takes the node's lock (a second process with the same node id is
    /// refused), takes its lease, and repairs what this node's own previous run left open. Other
    /// nodes' agents, sessions and runs are theirs: a lapsed node's are taken over by
    /// ``upkeep(now:needSessionIDs:)``, by whichever node gets there first.
    public func startRun(now: Millis, pid: Int32, version: String) throws -> RunStart {
        guard try startNodeConnection() else {
            throw PostgresStoreError(
                "node '\(nodeID)' is already running on this database (another process holds its lock): stop it, or give this one another --node-id")
        }
        let start = try blocking { [client, logger, nodeID, leaseMs, book] in
            try await client.withTransaction(logger: logger) { db in
                try await db.query("SELECT pg_advisory_xact_lock(\(Self.writerLock))", logger: logger)
                try await Self.takeLease(db, nodeID: nodeID, leaseMs: leaseMs, logger: logger)
                var crashed = false
                var crashedAt: Millis?
                var open: [(id: Int64, alive: Int64)] = []
                // Runs before nodes were named belong to whichever node starts first.
                for try await (id, alive) in try await db.query(
                    """
                    SELECT id, last_alive_ms FROM server_runs
                    WHERE stopped_at_ms IS NULL AND stop_reason IS NULL AND (node_id = \(nodeID) OR node_id IS NULL)
                    """, logger: logger
                ).decode((Int64, Int64).self) {
                    open.append((id, alive))
                }
                // The node's lock is ours, so every run of this node still open died without stopping.
                for run in open {
                    crashed = true
                    crashedAt = max(crashedAt ?? run.alive, run.alive)
                    try await db.query("UPDATE server_runs SET stop_reason = 'crashed' WHERE id = \(run.id)", logger: logger)
                }
                let lastStop =
                    try await Self.scalar(
                        db, "SELECT MAX(COALESCE(stopped_at_ms, last_alive_ms)) FROM server_runs WHERE node_id = \(nodeID) OR node_id IS NULL",
                        logger) ?? now
                let downSince = crashedAt ?? lastStop
                let endReason = crashed ? SessionEndReason.serverCrashed.rawValue : SessionEndReason.serverStopped.rawValue
                try await db.query(
                    """
                    UPDATE sessions SET ended_at_ms = GREATEST(started_at_ms, COALESCE(last_seen_ms, started_at_ms), \(downSince)),
                        end_reason = \(endReason)
                    WHERE ended_at_ms IS NULL
                      AND (server_run_id IS NULL OR server_run_id IN (SELECT id FROM server_runs WHERE node_id = \(nodeID) OR node_id IS NULL))
                    """, logger: logger)
                // Agents nobody owns yet (registered, or from before ownership) become this node's.
                try await db.query(
                    """
                    INSERT INTO agent_owners (agent_id, node_id, epoch, session_id)
                    SELECT id, \(nodeID), 1, NULL FROM agents ON CONFLICT (agent_id) DO NOTHING
                    """, logger: logger)
                var epochs: [String: Int64] = [:]
                for try await (id, epoch) in try await db.query(
                    "SELECT agent_id, epoch FROM agent_owners WHERE node_id = \(nodeID)", logger: logger
                ).decode((String, Int64).self) {
                    epochs[id] = epoch
                }
                let reason: TransitionReason = crashed ? .serverCrashed : .serverStopped
                var stale: [(String, String, Int64)] = []
                for try await row in try await db.query(
                    """
                    SELECT a.id, a.state, a.state_since_ms FROM agents a JOIN agent_owners o ON o.agent_id = a.id
                    WHERE a.state IN ('online', 'suspect') AND o.node_id = \(nodeID) ORDER BY a.id
                    """, logger: logger
                ).decode((String, String, Int64).self) {
                    stale.append(row)
                }
                var repair: [Transition] = []
                for (id, from, since) in stale {
                    let effective = max(downSince, since)
                    if let t = try await Self.insertTransition(
                        db, agent: id, from: from, to: .unknown, reason: reason, effectiveAt: effective, detectedAt: now, session: nil, logger: logger)
                    {
                        repair.append(t)
                    }
                }
                let runID =
                    try await Self.scalar(
                        db,
                        """
                        INSERT INTO server_runs (started_at_ms, last_alive_ms, pid, version, node_id)
                        VALUES (\(now), \(now), \(Int(pid)), \(version), \(nodeID)) RETURNING id
                        """, logger) ?? 0
                let nextTransition = (try await Self.scalar(db, "SELECT MAX(id) FROM transitions", logger) ?? 0) + 1
                let block = try await Self.reserveSessionIDs(db, logger: logger)
                var agents: [StoredAgent] = []
                let rows = try await db.query(
                    PostgresQuery(
                        unsafeSQL: """
                            SELECT \(Self.agentColumns), (SELECT boot_id FROM sessions WHERE sessions.agent_id = agents.id ORDER BY id DESC LIMIT 1)
                            FROM agents ORDER BY id
                            """), logger: logger)
                for try await row in rows { agents.append(try Self.agent(from: row)) }
                if !repair.isEmpty { try await Self.announce(db, newest: repair.map(\.id).max() ?? 0, logger: logger) }
                book.startRun(epochs: epochs)
                var start = RunStart(
                    runID: runID, recoveredCrash: crashed, repairTransitions: repair, nextTransitionID: nextTransition,
                    nextSessionID: block.lowerBound, agents: agents)
                start.sessionIDs = block
                start.foreignAgents = Set(agents.map(\.id).filter { epochs[$0] == nil })
                return start
            }
        }
        startLeaseKeeper()
        return start
    }

    public func finishRun(_ runID: Int64, now: Millis) throws {
        leaseKeeper.withLock { $0?.cancel() }
        try blocking { [client, logger, nodeID] in
            try await client.withTransaction(logger: logger) { db in
                try await db.query(
                    "UPDATE server_runs SET stopped_at_ms = \(now), last_alive_ms = \(now), stop_reason = 'graceful' WHERE id = \(runID)",
                    logger: logger)
                // Stopped, not lapsed: another node takes over the agents that did not follow the
                // balancer elsewhere, as of this moment.
                try await db.query(
                    "UPDATE nodes SET stopped_at_ms = \(unescaped: Self.databaseNow), stop_reason = 'graceful' WHERE id = \(nodeID) AND stopped_at_ms IS NULL",
                    logger: logger)
            }
        }
    }

    // MARK: Writing

    @discardableResult
    public func write(_ events: [HistoryEvent], runID: Int64, aliveAt: Millis) throws -> [Transition] {
        let written = try blocking { [client, logger, nodeID, book] in
            try await client.withTransaction(logger: logger) { db in
                try await db.query("SELECT pg_advisory_xact_lock(\(Self.writerLock))", logger: logger)
                let (epochs, claimsFrom) = book.writeStart
                var context = WriteContext(nodeID: nodeID, runID: runID, epochs: epochs, claimsFrom: claimsFrom)
                var committed: [Transition] = []
                for event in events {
                    committed += try await Self.apply(event, context: &context, db: db, logger: logger)
                }
                try await db.query(
                    "UPDATE server_runs SET last_alive_ms = GREATEST(last_alive_ms, \(aliveAt)) WHERE id = \(runID)", logger: logger)
                if let newest = committed.map(\.id).max() { try await Self.announce(db, newest: newest, logger: logger) }
                return (committed, context)
            }
        }
        // Only once committed: a claim the database never saw gives up nothing.
        book.merge(written.1)
        return written.0
    }

    /// What one writing transaction learns about ownership, kept apart until it commits.
    struct WriteContext {
        let nodeID: String
        let runID: Int64
        /// This node's epoch for each agent it owns, as this transaction sees it.
        var epochs: [String: Int64]
        var changedEpochs: [String: Int64?] = [:]
        var relinquished: Set<String> = []
        /// Claims for sessions opened before this (node clock) are refused (see ``NodeBook``).
        var claimsFrom: Int64 = .min

        mutating func setEpoch(_ epoch: Int64?, for agent: String) {
            epochs[agent] = epoch
            changedEpochs[agent] = epoch
        }
    }

    /// Applies one event; returns the transitions it committed, with the ids the database gave.
    static func apply(_ event: HistoryEvent, context: inout WriteContext, db: PostgresConnection, logger: Logger) async throws -> [Transition] {
        switch event {
        case .transition(let t):
            let agent = t.agentID.rawValue
            guard let epoch = try await ownEpoch(agent, context: &context, db: db, logger: logger) else { return [] }
            // Fenced by the epoch and reconciled against the history, in one round trip
            // (migrations/postgres/0005_write_functions.sql).
            var result: (id: Int64?, from: String?, effective: Int64?, owned: Bool) = (nil, nil, nil, false)
            for try await row in try await db.query(
                """
                SELECT * FROM rollcall_transition(\(agent), \(context.nodeID), \(epoch), \(t.to.rawValue), \(t.reason.rawValue),
                    \(t.effectiveAt), \(t.detectedAt), \(t.sessionID))
                """, logger: logger
            ).decode((Int64?, String?, Int64?, Bool).self) {
                result = row
            }
            // A stale epoch changes nothing: another node owns the agent now.
            guard result.owned else {
                context.setEpoch(nil, for: agent)
                context.relinquished.insert(agent)
                return []
            }
            guard let id = result.id, let effective = result.effective else { return [] }
            return [
                Transition(
                    id: id, agentID: t.agentID, from: result.from.flatMap(PresenceState.init(rawValue:)), to: t.to, reason: t.reason,
                    effectiveAt: effective, detectedAt: t.detectedAt, sessionID: t.sessionID)
            ]
        case .sessionOpened(let s):
            let agent = s.agentID.rawValue
            // Recorded, claimed (unless refused) and made online, in one round trip.
            var result: (claimed: Bool, epoch: Int64?, id: Int64?, from: String?, effective: Int64?, reason: String?) = (false, nil, nil, nil, nil, nil)
            for try await row in try await db.query(
                """
                SELECT * FROM rollcall_open_session(\(s.id), \(agent), \(s.startedAt), \(s.remoteAddress), \(s.bootID), \(s.intervalMs),
                    \(s.timeoutMs), \(s.agentRestarted.map { Int32($0 ? 1 : 0) }), \(context.runID), \(context.nodeID), \(context.claimsFrom))
                """, logger: logger
            ).decode((Bool, Int64?, Int64?, String?, Int64?, String?).self) {
                result = row
            }
            guard result.claimed, let epoch = result.epoch else {
                context.setEpoch(nil, for: agent)
                context.relinquished.insert(agent)
                return []
            }
            context.setEpoch(epoch, for: agent)
            context.relinquished.remove(agent)
            guard let id = result.id, let effective = result.effective, let reason = result.reason else { return [] }
            return [
                Transition(
                    id: id, agentID: s.agentID, from: result.from.flatMap(PresenceState.init(rawValue:)), to: .online,
                    reason: TransitionReason(rawValue: reason), effectiveAt: effective, detectedAt: s.startedAt, sessionID: s.id)
            ]
        case .sessionClosed(let e):
            // A session another node closed when it took this one over stays as that node wrote it.
            try await db.query(
                """
                UPDATE sessions SET ended_at_ms = \(e.endedAt), end_reason = \(e.reason.rawValue), close_code = \(e.closeCode),
                    heartbeats = \(e.heartbeats), last_seen_ms = GREATEST(COALESCE(last_seen_ms, 0), \(e.lastSeen)),
                    rtt_ms = COALESCE(\(e.rttMs)::double precision, rtt_ms)
                WHERE id = \(e.id) AND ended_at_ms IS NULL
                """, logger: logger)
            try await db.query(
                "UPDATE agents SET last_seen_ms = GREATEST(COALESCE(last_seen_ms, 0), \(e.lastSeen)) WHERE id = \(e.agentID.rawValue)",
                logger: logger)
        case .counters(let counters):
            guard !counters.isEmpty else { return [] }
            // One statement for the whole checkpoint, not two per session: arrays, unnested.
            let ids = counters.map(\.sessionID)
            let beats = counters.map { Int64($0.heartbeats) }
            let seen = counters.map(\.lastSeen)
            let rtts = counters.map { $0.rttMs ?? -1 }  // no RTT yet: kept as it is
            let agentIDs = counters.map(\.agentID.rawValue)
            try await db.query(
                """
                UPDATE sessions SET heartbeats = u.beats, last_seen_ms = GREATEST(COALESCE(sessions.last_seen_ms, 0), u.seen),
                    rtt_ms = COALESCE(NULLIF(u.rtt, -1), sessions.rtt_ms)
                FROM unnest(\(ids)::bigint[], \(beats)::bigint[], \(seen)::bigint[], \(rtts)::double precision[]) AS u(id, beats, seen, rtt)
                WHERE sessions.id = u.id AND sessions.ended_at_ms IS NULL
                """, logger: logger)
            try await db.query(
                """
                UPDATE agents SET last_seen_ms = GREATEST(COALESCE(agents.last_seen_ms, 0), u.seen)
                FROM (SELECT id, MAX(seen) AS seen FROM unnest(\(agentIDs)::text[], \(seen)::bigint[]) AS v(id, seen) GROUP BY id) AS u
                WHERE agents.id = u.id
                """, logger: logger)
        case .hello(let id, let hello):
            let labels = JSONValue.object(hello.labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }).serialized()
            try await db.query(
                """
                UPDATE agents SET labels = \(labels), hostname = \(hello.hostname), agent_version = \(hello.agentVersion),
                    metadata = \(hello.raw.serialized()) WHERE id = \(id.rawValue)
                """, logger: logger)
        case .status(let id, let status):
            try await db.query("UPDATE agents SET status = \(status.serialized()) WHERE id = \(id.rawValue)", logger: logger)
        }
        return []
    }

    // MARK: Reading

    public func agents(_ query: AgentQuery) throws -> [StoredAgent] {
        var clauses: [String] = []
        var binds = PostgresBindings()
        func placeholder() -> String { "$\(binds.count)" }
        if let state = query.state {
            binds.append(state.rawValue)
            clauses.append("state = \(placeholder())")
        }
        if let prefix = query.idPrefix, !prefix.isEmpty {
            // A literal prefix: LIKE's wildcards and the escape character are escaped.
            let escaped = prefix.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_")
            binds.append(escaped + "%")
            clauses.append("id LIKE \(placeholder()) ESCAPE '\\'")
        }
        for (key, value) in query.labels {
            binds.append(key)
            let keyParameter = placeholder()
            binds.append(value)
            clauses.append("(labels::jsonb ->> \(keyParameter)) = \(placeholder())")
        }
        if let after = query.after {
            binds.append(after)
            clauses.append("id > \(placeholder())")
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        binds.append(Int64(query.limit))
        let sql = "SELECT \(Self.agentColumns), NULL::text FROM agents \(whereClause) ORDER BY id LIMIT \(placeholder())"
        return try blocking(within: readDeadline) { [client, logger, binds] in
            var agents: [StoredAgent] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger) {
                agents.append(try Self.agent(from: row))
            }
            return agents
        }
    }

    public func agent(_ id: String) throws -> StoredAgent? {
        var binds = PostgresBindings()
        binds.append(id)
        return try blocking(within: readDeadline) { [client, logger, binds] in
            for try await row in try await client.query(
                PostgresQuery(unsafeSQL: "SELECT \(Self.agentColumns), NULL::text FROM agents WHERE id = $1", binds: binds), logger: logger)
            {
                return try Self.agent(from: row)
            }
            return nil
        }
    }

    public func transitions(agent: String?, after: Int64, limit: Int) throws -> [Transition] {
        try blocking(within: readDeadline) { [client, logger] in
            let query: PostgresQuery =
                if let agent {
                    "SELECT \(unescaped: Self.transitionColumns) FROM transitions WHERE agent_id = \(agent) AND id > \(after) ORDER BY id LIMIT \(Int64(limit))"
                } else {
                    "SELECT \(unescaped: Self.transitionColumns) FROM transitions WHERE id > \(after) ORDER BY id LIMIT \(Int64(limit))"
                }
            return try await Self.transitions(client.query(query, logger: logger))
        }
    }

    public func transitions(agent: String, after: Int64, before: Int64?, effectiveFrom: Millis, limit: Int) throws -> [Transition] {
        try blocking(within: readDeadline) { [client, logger] in
            let query: PostgresQuery =
                if let before {
                    """
                    SELECT \(unescaped: Self.transitionColumns) FROM transitions
                    WHERE agent_id = \(agent) AND id > \(after) AND id < \(before) AND effective_at_ms >= \(effectiveFrom) ORDER BY id DESC LIMIT \(Int64(limit))
                    """
                } else {
                    """
                    SELECT \(unescaped: Self.transitionColumns) FROM transitions
                    WHERE agent_id = \(agent) AND id > \(after) AND effective_at_ms >= \(effectiveFrom) ORDER BY id LIMIT \(Int64(limit))
                    """
                }
            return try await Self.transitions(client.query(query, logger: logger))
        }
    }

    public func fleetStats(first: String, last: String, from: Millis, now: Millis) throws -> [String: FleetStats] {
        try blocking(within: readDeadline) { [client, logger] in
            var stats: [String: FleetStats] = [:]
            let rows = try await client.query(
                """
                SELECT agent_id, state, SUM(LEAST(COALESCE(ended_at_ms, \(now)), \(now)) - GREATEST(started_at_ms, \(from)))::bigint AS ms
                FROM presence_intervals
                WHERE agent_id >= \(first) AND agent_id <= \(last) AND started_at_ms < \(now) AND COALESCE(ended_at_ms, \(now)) > \(from)
                GROUP BY agent_id, state
                """, logger: logger)
            for try await (id, state, ms) in rows.decode((String, String, Int64).self) {
                stats[id, default: FleetStats()].uptime.set(ms, forState: state)
            }
            let flaps = try await client.query(
                """
                SELECT agent_id, COUNT(*) FROM transitions
                WHERE agent_id >= \(first) AND agent_id <= \(last) AND effective_at_ms >= \(from) AND from_state = 'online'
                  AND to_state IN ('suspect', 'offline')
                GROUP BY agent_id
                """, logger: logger)
            for try await (id, count) in flaps.decode((String, Int64).self) {
                stats[id, default: FleetStats()].flaps = Int(count)
            }
            return stats
        }
    }

    public func sessions(agent: String, before: Int64?, limit: Int) throws -> [StoredSession] {
        try blocking(within: readDeadline) { [client, logger] in
            var sessions: [StoredSession] = []
            let rows = try await client.query(
                """
                SELECT \(unescaped: Self.sessionColumns) FROM sessions
                WHERE agent_id = \(agent) AND id < \(before ?? Int64.max) ORDER BY id DESC LIMIT \(Int64(limit))
                """, logger: logger)
            for try await row in rows { sessions.append(try Self.session(from: row)) }
            return sessions
        }
    }

    public func uptime(agent: String, from: Millis, to: Millis, now: Millis) throws -> Uptime {
        try blocking(within: readDeadline) { [client, logger] in
            var uptime = Uptime()
            let rows = try await client.query(
                """
                SELECT state, SUM(LEAST(COALESCE(ended_at_ms, \(now)), \(to)) - GREATEST(started_at_ms, \(from)))::bigint AS ms
                FROM presence_intervals
                WHERE agent_id = \(agent) AND started_at_ms < \(to) AND COALESCE(ended_at_ms, \(now)) > \(from)
                GROUP BY state
                """, logger: logger)
            for try await (state, ms) in rows.decode((String, Int64).self) { uptime.set(ms, forState: state) }
            return uptime
        }
    }

    public func uptimeDaily(agent: String, fromDay: String, now: Millis) throws -> [UptimeDay] {
        guard let from = Timestamp.parseDay(fromDay) else { return [] }
        let intervals = try blocking(within: readDeadline) { [client, logger] in
            var intervals: [(state: PresenceState?, start: Int64, end: Int64)] = []
            let rows = try await client.query(
                """
                SELECT state, started_at_ms, ended_at_ms FROM presence_intervals
                WHERE agent_id = \(agent) AND COALESCE(ended_at_ms, \(now)) > \(from) ORDER BY started_at_ms
                """, logger: logger)
            for try await (state, start, end) in rows.decode((String, Int64, Int64?).self) {
                intervals.append((PresenceState(rawValue: state), start, end ?? now))
            }
            return intervals
        }
        return UptimeDay.split(intervals, fromDayStart: from)
    }

    public func register(agent: String, tokenHash: String, labels: [String: String], now: Millis) throws -> Bool {
        let labelText = JSONValue.object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }).serialized()
        return try blocking { [client, logger] in
            try await client.withTransaction(logger: logger) { db in
                try await db.query("SELECT pg_advisory_xact_lock(\(Self.writerLock))", logger: logger)
                for try await (hash, disabled) in try await db.query(
                    "SELECT token_hash, disabled FROM agents WHERE id = \(agent)", logger: logger
                ).decode((String?, Int32).self) {
                    if hash != nil && disabled == 0 { return false }
                    try await db.query(
                        """
                        UPDATE agents SET token_hash = \(tokenHash), disabled = 0,
                            labels = CASE WHEN \(labelText) = '{}' THEN labels ELSE \(labelText) END WHERE id = \(agent)
                        """, logger: logger)
                    return true
                }
                try await db.query(
                    """
                    INSERT INTO agents (id, state, state_since_ms, first_seen_ms, labels, token_hash)
                    VALUES (\(agent), 'offline', \(now), \(now), \(labelText), \(tokenHash))
                    """, logger: logger)
                return true
            }
        }
    }

    public func revoke(agent: String) throws {
        try blocking { [client, logger] in
            try await client.query("UPDATE agents SET token_hash = NULL, disabled = 1 WHERE id = \(agent)", logger: logger)
        }
    }

    public func prune(before cutoff: Millis) throws -> PruneReport {
        try blocking { [client, logger] in
            try await client.withTransaction(logger: logger) { db in
                try await db.query("SELECT pg_advisory_xact_lock(\(Self.writerLock))", logger: logger)
                // Each agent's transition in force at the cutoff becomes the first row, starting there.
                try await db.query(
                    """
                    CREATE TEMP TABLE prune_cut ON COMMIT DROP AS
                    SELECT agent_id, MAX(id) AS id FROM transitions WHERE effective_at_ms <= \(cutoff) GROUP BY agent_id
                    """, logger: logger)
                try await db.query(
                    """
                    UPDATE transitions SET effective_at_ms = \(cutoff), detected_at_ms = GREATEST(detected_at_ms, \(cutoff))
                    WHERE id IN (SELECT id FROM prune_cut) AND effective_at_ms < \(cutoff)
                    """, logger: logger)
                let transitions = try await Self.scalar(
                    db,
                    """
                    WITH gone AS (
                        DELETE FROM transitions t USING prune_cut c WHERE t.agent_id = c.agent_id AND t.id < c.id RETURNING 1)
                    SELECT COUNT(*) FROM gone
                    """, logger) ?? 0
                // An agent's current state started no earlier than its first remaining interval.
                try await db.query(
                    "UPDATE agents SET state_since_ms = \(cutoff) WHERE state_since_ms < \(cutoff)", logger: logger)
                let sessions = try await Self.scalar(
                    db,
                    """
                    WITH gone AS (DELETE FROM sessions WHERE ended_at_ms IS NOT NULL AND ended_at_ms < \(cutoff) RETURNING 1)
                    SELECT COUNT(*) FROM gone
                    """, logger) ?? 0
                let runs = try await Self.scalar(
                    db,
                    """
                    WITH gone AS (
                        DELETE FROM server_runs WHERE COALESCE(stopped_at_ms, last_alive_ms) < \(cutoff)
                            AND id < (SELECT MAX(id) FROM server_runs) RETURNING 1)
                    SELECT COUNT(*) FROM gone
                    """, logger) ?? 0
                return PruneReport(transitions: Int(transitions), sessions: Int(sessions), serverRuns: Int(runs))
            }
        }
    }

    // MARK: Helpers

    /// The first column of the first row as a number, or `nil` (no row, or NULL).
    static func scalar(_ db: PostgresConnection, _ query: PostgresQuery, _ logger: Logger) async throws -> Int64? {
        for try await value in try await db.query(query, logger: logger).decode(Int64?.self) { return value }
        return nil
    }

    static let agentColumns = SQLiteHistoryStore.agentColumns
    static let transitionColumns = "id, agent_id, from_state, to_state, reason, effective_at_ms, detected_at_ms, session_id"
    static let sessionColumns = """
        id, agent_id, started_at_ms, ended_at_ms, end_reason, close_code, remote_addr, boot_id, heartbeats, last_seen_ms, \
        interval_ms, timeout_ms, agent_restarted, rtt_ms
        """

    static func agent(from row: PostgresRow) throws -> StoredAgent {
        let c = PostgresRandomAccessRow(row)
        return StoredAgent(
            id: try c[0].decode(String.self), state: PresenceState(rawValue: try c[1].decode(String.self)) ?? .unknown,
            stateSince: try c[2].decode(Int64.self), firstSeen: try c[3].decode(Int64.self), lastSeen: try c[4].decode(Int64?.self),
            labels: try c[5].decode(String.self), hostname: try c[6].decode(String?.self), agentVersion: try c[7].decode(String?.self),
            metadata: try c[8].decode(String?.self), status: try c[9].decode(String?.self), intervalMs: try c[10].decode(Int64?.self),
            timeoutMs: try c[11].decode(Int64?.self), tokenHash: try c[12].decode(String?.self), disabled: try c[13].decode(Int32.self) != 0,
            lastBootID: try c[14].decode(String?.self))
    }

    static func transitions(_ rows: PostgresRowSequence) async throws -> [Transition] {
        var transitions: [Transition] = []
        for try await (id, agent, from, to, reason, effective, detected, session) in rows.decode(
            (Int64, String, String?, String, String, Int64, Int64, Int64?).self)
        {
            // A row Rollcall could not have written (put there by hand) is left out, as in SQLite.
            guard let agentID = AgentID(agent), let state = PresenceState(rawValue: to) else { continue }
            transitions.append(
                Transition(
                    id: id, agentID: agentID, from: from.flatMap(PresenceState.init(rawValue:)), to: state, reason: TransitionReason(rawValue: reason),
                    effectiveAt: effective, detectedAt: detected, sessionID: session))
        }
        return transitions
    }

    static func session(from row: PostgresRow) throws -> StoredSession {
        let c = PostgresRandomAccessRow(row)
        return StoredSession(
            id: try c[0].decode(Int64.self), agentID: try c[1].decode(String.self), startedAt: try c[2].decode(Int64.self),
            endedAt: try c[3].decode(Int64?.self), endReason: try c[4].decode(String?.self), closeCode: try c[5].decode(Int32?.self).map(Int.init),
            remoteAddress: try c[6].decode(String?.self), bootID: try c[7].decode(String?.self), heartbeats: try c[8].decode(Int64.self),
            lastSeen: try c[9].decode(Int64?.self), intervalMs: try c[10].decode(Int64?.self), timeoutMs: try c[11].decode(Int64?.self),
            agentRestarted: try c[12].decode(Int32?.self).map { $0 != 0 }, rttMs: try c[13].decode(Double?.self))
    }
}

/// The history database did not answer a read in time (an outage, an overloaded server).
public struct HistoryUnavailable: Error, CustomStringConvertible {
    public var waited: Duration
    public var description: String { "the history database did not answer within \(waited)" }
}

/// A PostgreSQL error of Rollcall's own, as a sentence.
public struct PostgresStoreError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Waits on this thread for `body`, run as a task. For the server's database threads (they exist
/// to block on the database) and for start-up; never for an event loop. The task, and the
/// client's own, run on an event loop of their own (``DatabaseTaskExecutor``), not on Swift's
/// cooperative pool: a caller blocking one of the pool's few threads must not be able to starve
/// the very task it waits for.
@discardableResult
func blocking<T: Sendable>(within deadline: Duration? = nil, _ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<Result<T, any Error>?>(nil)
    let task = Task.detached(executorPreference: DatabaseTaskExecutor.shared) {
        let outcome: Result<T, any Error>
        do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
        result.withLock { $0 = outcome }
        done.signal()
    }
    if let deadline {
        let nanoseconds = Int(min(deadline.components.seconds, 3600)) * 1_000_000_000 + Int(deadline.components.attoseconds / 1_000_000_000)
        if done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .timedOut {
            // Only reads get here: cancelled, they give their place in the pool's queue back.
            task.cancel()
            throw HistoryUnavailable(waited: deadline)
        }
    } else {
        done.wait()
    }
    let outcome = result.withLock { $0! }
    // A read that failed because the database is out of reach (refused, dropped, or the pool's
    // circuit open after a long outage) is "unavailable", answered 503, not a server error.
    if deadline != nil, case .failure(let error) = outcome, isUnreachable(error) {
        throw HistoryUnavailable(waited: deadline ?? .zero)
    }
    return try outcome.get()
}

/// Whether `error` means the database could not be reached, rather than that a query was wrong.
func isUnreachable(_ error: any Error) -> Bool {
    if error is ConnectionPoolError { return true }
    if let error = error as? PSQLError {
        return [.connectionError, .serverClosedConnection, .clientClosedConnection].contains(error.code)
    }
    return false
}

/// Runs the PostgreSQL store's tasks on one event loop of a group of its own.
final class DatabaseTaskExecutor: TaskExecutor {
    static let shared = DatabaseTaskExecutor()
    let group: MultiThreadedEventLoopGroup
    let eventLoop: any EventLoop

    private init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        eventLoop = group.next()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Where a PostgreSQL database is: `postgres://USER@HOST:PORT/DATABASE[?sslmode=disable|prefer|require]`.
/// The password never comes from the URL (it would show in `ps` and in shell history).
public struct PostgresLocation: Sendable, Equatable, CustomStringConvertible {
    public var user: String
    public var host: String
    public var port: Int
    public var database: String
    public var disableTLS = false
    public var requireTLS = false

    public static func isPostgresURL(_ text: String) -> Bool {
        text.lowercased().hasPrefix("postgres://") || text.lowercased().hasPrefix("postgresql://")
    }

    public init(parsing text: String) throws(PostgresStoreError) {
        let example = "postgres://rollcall@127.0.0.1:5432/rollcall"
        guard Self.isPostgresURL(text), let url = URL(string: text), let host = url.host(percentEncoded: false), !host.isEmpty else {
            throw PostgresStoreError("--db must look like \(example)")
        }
        if url.password != nil {
            throw PostgresStoreError("put the database password in PGPASSWORD or a file named by --db-password-file, not in the URL")
        }
        guard let user = url.user(percentEncoded: false), !user.isEmpty else {
            throw PostgresStoreError("--db names no user: \(example)")
        }
        let database = String(url.path(percentEncoded: false).drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw PostgresStoreError("--db names no database: \(example)") }
        if let port = url.port, !(1...65535).contains(port) { throw PostgresStoreError("the port of --db must be between 1 and 65535") }
        self.user = user
        self.host = host
        self.port = url.port ?? 5432
        self.database = database
        for item in url.query(percentEncoded: false)?.split(separator: "&") ?? [] {
            switch item {
            case "sslmode=disable": disableTLS = true
            case "sslmode=require", "sslmode=verify-full": requireTLS = true
            case "sslmode=prefer", "sslmode=allow": break
            default: throw PostgresStoreError("--db: unknown option '\(TerminalText.escaped(String(item)))' (known: sslmode=disable|prefer|require)")
            }
        }
    }

    public var description: String { "postgres://\(user)@\(host.contains(":") ? "[\(host)]" : host):\(port)/\(database)" }
}
