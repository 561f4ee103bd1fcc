import Logging
import PostgresNIO
import RollcallCore
import Synchronization

/// Several nodes on one PostgreSQL (SPEC §10): ownership with epochs, leases, takeovers.
///
/// - **Ownership.** `agent_owners` names the node that times each agent and an epoch that grows
///   with every change of owner. A node claims an agent when it commits the agent's new session;
///   the claim tells the old owner (`NOTIFY`), which closes its socket with 4001. Every transition
///   a node writes is fenced by its epoch: a stale one changes nothing.
/// - **Leases.** Each node renews `nodes.lease_until_ms` on the database's clock. A node whose
///   lease lapsed is taken over by the first node that locks its row (`FOR UPDATE SKIP LOCKED`):
///   its open sessions close `server_crashed`, its present agents become `unknown` as of its last
///   renewal, and the taker times their warm-up. A node that finds its own lease lost drops its
///   agents and rejoins; it cannot claim while its lease is not fresh.
extension PostgresHistoryStore {
    public var isShared: Bool { true }

    public var announcedTransitionID: Int64 { book.announced.load(ordering: .relaxed) }

    public var leaseLost: Bool { book.leaseIsLost }

    public func takeRelinquished() -> [AgentID] { book.takeRelinquished().compactMap(AgentID.init) }

    public func tellNodes(_ command: NodeCommand) throws {
        try blocking(within: readDeadline) { [client, logger] in
            try await client.query("SELECT pg_notify(\(Self.channel), \(command.payload))", logger: logger)
        }
    }

    public func takeCommands() -> [NodeCommand] { book.takeCommands() }

    public func credentials() throws -> [(id: String, tokenHash: String?, disabled: Bool)] {
        try blocking(within: readDeadline) { [client, logger] in
            var rows: [(id: String, tokenHash: String?, disabled: Bool)] = []
            for try await (id, hash, disabled) in try await client.query(
                "SELECT id, token_hash, disabled FROM agents WHERE token_hash IS NOT NULL OR disabled <> 0", logger: logger
            ).decode((String, String?, Int32).self) {
                rows.append((id, hash, disabled != 0))
            }
            return rows
        }
    }

    public func otherNodesRunning() throws -> Bool {
        try blocking(within: readDeadline) { [client, logger, nodeID] in
            for try await running in try await client.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT EXISTS (SELECT 1 FROM nodes WHERE id <> $1 AND stopped_at_ms IS NULL AND lease_until_ms >= \(Self.databaseNow))
                        """, binds: { var b = PostgresBindings(); b.append(nodeID); return b }()), logger: logger
            ).decode(Bool.self) {
                return running
            }
            return false
        }
    }

    // MARK: The node's own connection

    /// Opens the connection the node keeps for itself: it holds the node's session-level advisory
    /// lock (so a second process with the same node id is refused, and a crashed one's lock goes
    /// with its connection) and listens on ``channel``. When it drops it is made again, and this
    /// node's ownership is checked against the table for takeovers missed meanwhile. `false`
    /// when another process holds the lock.
    func startNodeConnection() throws -> Bool {
        if nodeConnection.withLock({ $0 != nil }) { return true }
        let (answers, answer) = AsyncStream.makeStream(of: Result<Bool, PostgresStoreError>.self)
        let task = Task.detached(executorPreference: DatabaseTaskExecutor.shared) { [client, logger, nodeID, book] in
            var first = true
            // A process of this node that just died may still hold the lock for a moment, until
            // PostgreSQL notices its connection is gone: a restart waits up to 5 s for it.
            let patience = ContinuousClock.now + .seconds(5)
            while !Task.isCancelled {
                do {
                    try await client.withConnection { connection in
                        var taken = false
                        for try await value in try await connection.query(
                            "SELECT pg_try_advisory_lock(hashtextextended(\(nodeID), 0))", logger: logger
                        ).decode(Bool.self) {
                            taken = value
                        }
                        guard taken else { throw NodeLockHeld() }
                        // Whatever ends the listening, the lock goes back before the connection
                        // returns to the pool (or the next attempt would find it "held elsewhere").
                        let unlock = {
                            // A connection that died took the lock with it.
                            guard !connection.isClosed else { return }
                            _ = try? await connection.query("SELECT pg_advisory_unlock(hashtextextended(\(nodeID), 0))", logger: logger)
                        }
                        let wasFirst = first
                        if first {
                            first = false
                            answer.yield(.success(true))
                        }
                        do {
                            try await Self.listen(connection, client: client, nodeID: nodeID, book: book, first: wasFirst, logger: logger)
                        } catch {
                            await unlock()
                            throw error
                        }
                        await unlock()
                    }
                } catch {
                    if first, ContinuousClock.now >= patience || !(error is NodeLockHeld) {
                        first = false
                        answer.yield(
                            error is NodeLockHeld
                                ? .success(false)
                                : .failure(PostgresStoreError("cannot open this node's connection to the database: \(String("\(error)".prefix(300)))")))
                        answer.finish()
                        return
                    }
                    if !Task.isCancelled {
                        logger.warning("node connection to the database lost; making it again", metadata: ["error": "\(String(String(reflecting: error).prefix(300)))"])
                    }
                }
                try? await Task.sleep(for: first ? .milliseconds(200) : .seconds(1))
            }
            answer.finish()
        }
        let taken = try blocking {
            for await value in answers { return try value.get() }
            return false
        }
        if taken { nodeConnection.withLock { $0 = task } } else { task.cancel() }
        return taken
    }

    /// Listens on ``channel`` until the connection fails or the task is cancelled; after a
    /// reconnection it first checks the owner map for takeovers announced while it was away.
    static func listen(_ connection: PostgresConnection, client: PostgresClient, nodeID: String, book: NodeBook, first: Bool, logger: Logger) async throws {
        try await connection.listen(on: channel) { notifications in
            if !first {
                var owned: [String: Int64] = [:]
                for try await (agent, epoch) in try await client.query(
                    "SELECT agent_id, epoch FROM agent_owners WHERE node_id = \(nodeID)", logger: logger
                ).decode((String, Int64).self) {
                    owned[agent] = epoch
                }
                book.reconcile(owned: owned)
                logger.notice("node connection to the database made again")
            }
            // The notifications do not always end when the server drops the connection
            // (pg_terminate_backend): a watchdog ends the listening once the connection is closed.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await notification in notifications { book.heard(notification.payload) }
                }
                group.addTask {
                    while !connection.isClosed { try await Task.sleep(for: .milliseconds(250)) }
                    throw PostgresStoreError("the node connection was closed")
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    // MARK: Upkeep

    /// Keeps this node's lease, on a task and a connection of its own, so that no long flush or
    /// takeover on the writer's thread can let it lapse. A lease that lapsed but that nobody took
    /// over is simply renewed (after a database outage every node's has lapsed, and none of them
    /// lost anything); one that was taken over is marked lost until the writer has dropped every
    /// agent and calls ``upkeep(now:needSessionIDs:)`` to rejoin.
    func startLeaseKeeper() {
        let task = Task.detached(executorPreference: DatabaseTaskExecutor.shared) { [client, logger, nodeID, leaseMs, book] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(max(300, leaseMs / 3)))
                guard !book.leaseIsLost else { continue }
                do {
                    var renewed = false
                    var hadLapsed = false
                    for try await lapsed in try await client.query(
                        """
                        WITH old AS (SELECT lease_until_ms AS until FROM nodes WHERE id = \(nodeID) FOR UPDATE)
                        UPDATE nodes SET lease_until_ms = \(unescaped: Self.databaseNow) + \(leaseMs), renewed_at_ms = \(unescaped: Self.databaseNow)
                        FROM old WHERE nodes.id = \(nodeID) AND nodes.stopped_at_ms IS NULL RETURNING old.until < \(unescaped: Self.databaseNow)
                        """, logger: logger
                    ).decode(Bool.self) {
                        renewed = true
                        hadLapsed = lapsed
                    }
                    // This node could not renew for a lease or more (the database was away, or this
                    // node was): the others probably could not either. Give them one lease to renew
                    // before taking any of them over.
                    if hadLapsed { book.holdTakeovers(for: .milliseconds(leaseMs)) }
                    if !renewed {
                        logger.warning("this node's lease was taken over; dropping its agents to rejoin")
                        book.loseLease()
                    }
                } catch {
                    if !Task.isCancelled {
                        logger.warning("could not renew this node's lease; will retry", metadata: ["error": "\(String(String(reflecting: error).prefix(300)))"])
                    }
                }
            }
        }
        leaseKeeper.withLock { $0?.cancel(); $0 = task }
    }

    public func upkeep(now: Millis, needSessionIDs: Bool) throws -> NodeUpkeep {
        try blocking { [client, logger, nodeID, leaseMs, book] in
            var upkeep = NodeUpkeep()
            if book.leaseIsLost {
                // The writer has dropped every agent (its caller acts on `leaseLost`): from now on
                // no claim for a session opened before this moment lands, and the node rejoins.
                upkeep.leaseLost = true
                book.holdTakeovers(for: .milliseconds(leaseMs))
                try await client.withTransaction(logger: logger) { db in
                    try await Self.takeLease(db, nodeID: nodeID, leaseMs: leaseMs, logger: logger)
                }
                book.rejoined(claimsFrom: now)
            }
            try await client.withTransaction(logger: logger) { db in
                try await db.query("SELECT pg_advisory_xact_lock(\(Self.writerLock))", logger: logger)
                if needSessionIDs { upkeep.sessionIDs = try await Self.reserveSessionIDs(db, logger: logger) }
                var lapsed: [(id: String, at: Int64, crashed: Bool)] = []
                guard !book.holdingTakeovers else { return }
                for try await (id, renewedAt, stoppedAt) in try await db.query(
                    """
                    SELECT id, COALESCE(renewed_at_ms, lease_until_ms - \(leaseMs)), stopped_at_ms FROM nodes
                    WHERE id <> \(nodeID)
                      AND ((stopped_at_ms IS NULL AND lease_until_ms < \(unescaped: Self.databaseNow))
                        OR (stopped_at_ms IS NOT NULL AND stopped_at_ms + \(leaseMs) < \(unescaped: Self.databaseNow)
                            AND EXISTS (SELECT 1 FROM agent_owners o JOIN agents a ON a.id = o.agent_id
                                        WHERE o.node_id = nodes.id AND a.state IN ('online', 'suspect', 'unknown'))))
                    FOR UPDATE SKIP LOCKED
                    """, logger: logger
                ).decode((String, Int64, Int64?).self) {
                    // A crashed node was last known alive at its last renewal; a stopped one at its stop.
                    lapsed.append((id, stoppedAt ?? renewedAt, stoppedAt == nil))
                }
                var committed: [Transition] = []
                for node in lapsed {
                    committed += try await Self.takeOver(node, by: nodeID, now: now, upkeep: &upkeep, db: db, logger: logger)
                }
                if let newest = committed.map(\.id).max() { try await Self.announce(db, newest: newest, logger: logger) }
            }
            book.adopt(upkeep.adoptedEpochs)
            upkeep.adoptedEpochs = [:]
            return upkeep
        }
    }

    /// Takes over one lapsed node: closes its open sessions, makes its present agents `unknown`
    /// as of `at`, and makes every agent it owned this node's (epoch + 1).
    static func takeOver(
        _ node: (id: String, at: Int64, crashed: Bool), by nodeID: String, now: Millis, upkeep: inout NodeUpkeep, db: PostgresConnection, logger: Logger
    ) async throws -> [Transition] {
        let endReason = node.crashed ? SessionEndReason.serverCrashed : .serverStopped
        let reason: TransitionReason = node.crashed ? .serverCrashed : .serverStopped
        try await db.query(
            """
            UPDATE sessions SET ended_at_ms = GREATEST(started_at_ms, COALESCE(last_seen_ms, started_at_ms), \(node.at)),
                end_reason = \(endReason.rawValue)
            WHERE ended_at_ms IS NULL AND server_run_id IN (SELECT id FROM server_runs WHERE node_id = \(node.id))
            """, logger: logger)
        try await db.query(
            """
            UPDATE server_runs SET stop_reason = 'crashed'
            WHERE node_id = \(node.id) AND stopped_at_ms IS NULL AND stop_reason IS NULL
            """, logger: logger)
        var agents: [(id: String, state: String, since: Int64, timeout: Int64?, epoch: Int64)] = []
        for try await (id, state, since, timeout, epoch) in try await db.query(
            """
            UPDATE agent_owners o SET node_id = \(nodeID), epoch = o.epoch + 1, session_id = NULL
            FROM agents a WHERE a.id = o.agent_id AND o.node_id = \(node.id)
            RETURNING a.id, a.state, a.state_since_ms, a.timeout_ms, o.epoch
            """, logger: logger
        ).decode((String, String, Int64, Int64?, Int64).self) {
            agents.append((id, state, since, timeout, epoch))
        }
        var committed: [Transition] = []
        for agent in agents.sorted(by: { $0.id < $1.id }) {
            var state = PresenceState(rawValue: agent.state) ?? .unknown
            var since = agent.since
            if state == .online || state == .suspect {
                let effective = max(node.at, agent.since)
                if let t = try await insertTransition(
                    db, agent: agent.id, from: agent.state, to: .unknown, reason: reason, effectiveAt: effective, detectedAt: now, session: nil,
                    logger: logger)
                {
                    committed.append(t)
                    state = .unknown
                    since = effective
                }
            }
            upkeep.adoptedEpochs[agent.id] = agent.epoch
            if let id = AgentID(agent.id) { upkeep.adopted.append((id, state, since, agent.timeout)) }
        }
        try await db.query(
            """
            UPDATE nodes SET stopped_at_ms = COALESCE(stopped_at_ms, \(node.at)), stop_reason = COALESCE(stop_reason, 'lease lapsed')
            WHERE id = \(node.id)
            """, logger: logger)
        upkeep.nodesTakenOver.append(node.id)
        logger.warning(
            "took over a node whose lease lapsed", metadata: ["node": "\(node.id)", "agents": "\(agents.count)", "unknown": "\(committed.count)"])
        return committed
    }

    // MARK: Pieces of the writing transactions

    /// Takes (or takes again) this node's lease.
    static func takeLease(_ db: PostgresConnection, nodeID: String, leaseMs: Int64, logger: Logger) async throws {
        try await db.query(
            """
            INSERT INTO nodes (id, started_at_ms, lease_until_ms, renewed_at_ms)
            VALUES (\(nodeID), \(unescaped: databaseNow), \(unescaped: databaseNow) + \(leaseMs), \(unescaped: databaseNow))
            ON CONFLICT (id) DO UPDATE SET started_at_ms = EXCLUDED.started_at_ms, lease_until_ms = EXCLUDED.lease_until_ms,
                renewed_at_ms = EXCLUDED.renewed_at_ms, stopped_at_ms = NULL, stop_reason = NULL
            """, logger: logger)
    }

    /// Tells every node that transitions up to `newest` are committed (delivered with the commit).
    static func announce(_ db: PostgresConnection, newest: Int64, logger: Logger) async throws {
        try await db.query("SELECT pg_notify(\(channel), \("t \(newest)"))", logger: logger)
    }

    static func reserveSessionIDs(_ db: PostgresConnection, logger: Logger) async throws -> Range<Int64> {
        let block = try await scalar(db, "SELECT nextval('session_id_blocks')", logger) ?? 1
        let start = block.multipliedReportingOverflow(by: sessionBlock)
        guard !start.overflow, start.partialValue <= Int64.max - sessionBlock else { throw PostgresStoreError("session ids are exhausted") }
        return start.partialValue..<(start.partialValue + sessionBlock)
    }

    /// Inserts a transition and moves the agent's row; returns it with its id.
    static func insertTransition(
        _ db: PostgresConnection, agent: String, from: String?, to: PresenceState, reason: TransitionReason, effectiveAt: Int64, detectedAt: Int64,
        session: Int64?, logger: Logger
    ) async throws -> Transition? {
        let id =
            try await scalar(
                db,
                """
                INSERT INTO transitions (agent_id, from_state, to_state, reason, effective_at_ms, detected_at_ms, session_id)
                VALUES (\(agent), \(from), \(to.rawValue), \(reason.rawValue), \(effectiveAt), \(detectedAt), \(session)) RETURNING id
                """, logger) ?? 0
        try await db.query(
            """
            INSERT INTO agents (id, state, state_since_ms, first_seen_ms) VALUES (\(agent), \(to.rawValue), \(effectiveAt), \(effectiveAt))
            ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, state_since_ms = EXCLUDED.state_since_ms
            """, logger: logger)
        guard let agentID = AgentID(agent) else { return nil }
        return Transition(
            id: id, agentID: agentID, from: from.flatMap(PresenceState.init(rawValue:)), to: to, reason: reason, effectiveAt: effectiveAt,
            detectedAt: detectedAt, sessionID: session)
    }

    /// This node's epoch for `agent`: the one it holds, or, for an agent nobody owns yet, a new
    /// claim. `nil` when another node owns it (the agent is then given up here).
    static func ownEpoch(_ agent: String, context: inout WriteContext, db: PostgresConnection, logger: Logger) async throws -> Int64? {
        if let epoch = context.epochs[agent] { return epoch }
        if let epoch = try await scalar(
            db,
            """
            INSERT INTO agent_owners (agent_id, node_id, epoch, session_id) VALUES (\(agent), \(context.nodeID), 1, NULL)
            ON CONFLICT (agent_id) DO NOTHING RETURNING epoch
            """, logger)
        {
            context.setEpoch(epoch, for: agent)
            return epoch
        }
        context.relinquished.insert(agent)
        return nil
    }
}

/// Another process holds this node's lock.
struct NodeLockHeld: Error {}

/// What a node knows of its own ownership, between its writer, its node connection and its
/// upkeep: each agent's epoch, the agents to give up, the newest id announced.
final class NodeBook: Sendable {
    struct State {
        var epochs: [String: Int64] = [:]
        /// The highest epoch any node announced for each agent: a claim of this node's that
        /// commits with a lower one is already superseded.
        var heard: [String: Int64] = [:]
        var relinquished: Set<String> = []
        var leaseLost = false
        /// Claims for sessions opened before this moment (node clock) are refused: set when the
        /// node rejoins after its lease was taken over.
        var claimsFrom: Int64 = .min
        /// Operators' actions heard, oldest first; bounded, since each is cheap to repeat and a
        /// node that falls this far behind reloads on its next start anyway.
        var commands: [NodeCommand] = []
    }

    private let state = Mutex(State())
    let announced = Atomic<Int64>(0)
    private let takeoversHeldUntil = Mutex<ContinuousClock.Instant?>(nil)

    func holdTakeovers(for duration: Duration) { takeoversHeldUntil.withLock { $0 = .now + duration } }

    var holdingTakeovers: Bool { takeoversHeldUntil.withLock { $0.map { ContinuousClock.now < $0 } ?? false } }

    var epochs: [String: Int64] { state.withLock { $0.epochs } }

    /// What a writing transaction starts from.
    var writeStart: (epochs: [String: Int64], claimsFrom: Int64) { state.withLock { ($0.epochs, $0.claimsFrom) } }

    var leaseIsLost: Bool { state.withLock { $0.leaseLost } }

    /// The lease keeper found this node taken over. Sticky until the writer rejoins.
    func loseLease() {
        state.withLock { s in
            s.leaseLost = true
            s.epochs = [:]
        }
    }

    func rejoined(claimsFrom: Int64) {
        state.withLock { s in
            s.leaseLost = false
            s.epochs = [:]
            s.claimsFrom = claimsFrom
        }
    }

    func startRun(epochs: [String: Int64]) { state.withLock { $0.epochs = epochs } }

    func takeCommands() -> [NodeCommand] {
        state.withLock { s in
            defer { s.commands = [] }
            return s.commands
        }
    }

    /// After a commit: the epochs the transaction changed and the agents it found lost.
    func merge(_ context: PostgresHistoryStore.WriteContext) {
        guard !context.changedEpochs.isEmpty || !context.relinquished.isEmpty else { return }
        state.withLock { s in
            s.relinquished.formUnion(context.relinquished)
            for (agent, epoch) in context.changedEpochs {
                guard let epoch, !s.leaseLost else {
                    s.epochs[agent] = nil
                    continue
                }
                if let heard = s.heard[agent], heard > epoch {
                    // Another node took it over after this claim committed (its NOTIFY came first).
                    s.epochs[agent] = nil
                    s.relinquished.insert(agent)
                } else {
                    // Claimed by this transaction, after anything heard: whatever was heard before
                    // is about an older connection.
                    s.epochs[agent] = epoch
                    s.relinquished.remove(agent)
                }
            }
        }
    }

    func adopt(_ epochs: [String: Int64]) {
        guard !epochs.isEmpty else { return }
        state.withLock { s in
            for (agent, epoch) in epochs {
                s.epochs[agent] = epoch
                s.relinquished.remove(agent)
            }
        }
    }


    func takeRelinquished() -> [String] {
        state.withLock { s in
            defer { s.relinquished = [] }
            return Array(s.relinquished)
        }
    }

    /// After the node connection was made again: every agent this node thinks it owns but the
    /// table gives to another node (or another epoch) is given up.
    func reconcile(owned: [String: Int64]) {
        state.withLock { s in
            // An owned epoch below this node's is a claim that committed after the table was read.
            for (agent, epoch) in s.epochs where owned[agent].map({ $0 > epoch }) ?? true {
                s.epochs[agent] = nil
                s.relinquished.insert(agent)
            }
        }
    }

    /// One notification: `t ID` or `o EPOCH AGENT`.
    func heard(_ payload: String) {
        if let command = NodeCommand(payload: payload) {
            state.withLock { s in
                if s.commands.count < 10_000 { s.commands.append(command) }
            }
            return
        }
        let parts = payload.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, let number = Int64(parts[1]) else { return }
        switch parts[0] {
        case "t":
            var current = announced.load(ordering: .relaxed)
            while number > current {
                let (exchanged, original) = announced.compareExchange(expected: current, desired: number, ordering: .relaxed)
                if exchanged { break }
                current = original
            }
        case "o" where parts.count == 3:
            let agent = String(parts[2])
            state.withLock { s in
                s.heard[agent] = max(s.heard[agent] ?? 0, number)
                guard let mine = s.epochs[agent], mine < number else { return }
                s.epochs[agent] = nil
                s.relinquished.insert(agent)
            }
        default:
            break
        }
    }
}
