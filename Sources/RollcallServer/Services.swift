import Foundation
import Logging
import NIOPosix
import RollcallCore
import RollcallStore
import ServiceLifecycle
import Synchronization

/// Threads of the database's own, so no query, however large, and no transaction runs on Swift's
/// cooperative pool, where the sweeper and the route handlers run: a slow read delays nobody's
/// deadline. Reads have two threads (GRDB's pool lets them run beside the writer); the writer has
/// one, which also keeps its transactions in order.
public final class DatabaseThreads: Sendable {
    let reads: NIOThreadPool
    let writes: NIOThreadPool
    /// Watchers catching up from the file read (and encode) their pages here, one at a time, so
    /// however many replay the history at once they share one thread: never the event loops,
    /// never the API's readers.
    let catchUp: NIOThreadPool

    /// Started once and kept for the life of the process (servers in tests share them).
    public static let shared = DatabaseThreads()

    private init() {
        reads = NIOThreadPool(numberOfThreads: 2)
        writes = NIOThreadPool(numberOfThreads: 1)
        catchUp = NIOThreadPool(numberOfThreads: 1)
        reads.start()
        writes.start()
        catchUp.start()
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await reads.runIfActive(body)
    }

    public func write<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await writes.runIfActive(body)
    }
}

/// The single writer of the history and the only publisher of transitions.
///
/// Each round it takes the outbox (and, at checkpoints, heartbeat counters and agents' latest
/// status), commits it in batched transactions on the database's writer thread, and only after a
/// batch commits hands its transitions to the hub (watchers, the dashboard, later notifications):
/// an id anyone sees is durable. A batch the database refuses is retried; when the database is
/// otherwise healthy the batch is split until the one event it refuses is found, logged and set
/// aside, so one bad event never wedges the rest. It is the last service to stop, so its final
/// flush sees every transition of the shutdown.
struct HistoryWriterService: Service {
    static let maxBatch = 10_000

    let store: any HistoryStore
    let outbox: Outbox
    let presence: Presence
    let hub: TransitionHub
    let runID: Int64
    let configuration: ServerConfiguration
    /// Released once the history is closed, so the next server may start on this file.
    let lock: DatabaseLock?
    let logger: Logger
    /// Carries out an operator's action another node announced (several nodes only).
    var onCommand: @Sendable (NodeCommand) async -> Void = { _ in }
    /// Every agent's credential as the shared history holds it (several nodes only).
    var onCredentials: @Sendable ([(id: String, tokenHash: String?, disabled: Bool)]) -> Void = { _ in }
    let threads = DatabaseThreads.shared

    /// What the writer carries between rounds.
    struct Round {
        var pending: [HistoryEvent] = []
        var failures = 0
        var lastFailureLog: ContinuousClock.Instant?
        var suppressedFailureLogs = 0
        /// Several nodes: when this node last renewed its lease and looked for lapsed nodes, and
        /// last read the shared log without being told to.
        var lastUpkeep: ContinuousClock.Instant?
        var lastFeed = ContinuousClock.now
        var lastCredentials = ContinuousClock.now
    }

    func run() async throws {
        var round = Round()
        var lastCheckpoint = ContinuousClock.now
        var lastCounters = ContinuousClock.now
        var lastPrune: ContinuousClock.Instant?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // After failures, back off (up to a second) instead of hammering a sick database.
            let pause = round.failures == 0 ? configuration.flushInterval : min(.seconds(1), configuration.flushInterval * (1 << min(round.failures, 5)))
            // Woken early by a graceful shutdown, so the final flush follows the stop at once.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: pause) }
            let checkpoint = ContinuousClock.now - lastCheckpoint >= configuration.checkpointInterval
            if checkpoint { lastCheckpoint = .now }
            let counters = ContinuousClock.now - lastCounters >= configuration.countersInterval
            if counters { lastCounters = .now }
            if store.isShared { await upkeep(&round) }
            await flush(&round, withCounters: counters, touchAlive: checkpoint)
            if store.isShared { await share(&round) }
            if configuration.retainMs != nil, lastPrune.map({ ContinuousClock.now - $0 >= configuration.pruneInterval }) ?? true {
                lastPrune = .now
                await prune()
            }
        }
        // Everything before us has stopped: write what is left and record a graceful stop.
        await flush(&round, withCounters: true, touchAlive: true)
        if round.pending.isEmpty {
            do {
                let (store, runID, now) = (store, runID, presence.clock.now())
                try await threads.write { try store.finishRun(runID, now: now) }
                logger.info("history closed", metadata: ["run": "\(runID)"])
            } catch {
                logger.error("could not record the server stop", metadata: ["error": "\(error)"])
            }
        } else {
            logger.critical("history writer stopped with unwritten events", metadata: ["count": "\(round.pending.count)"])
        }
        hub.finishAll()
        lock?.release()
    }

    /// Writes what is pending. On failure keeps it for the next round, so no row is lost; every
    /// write also moves the run's alive mark, and `touchAlive` writes it even with nothing else.
    func flush(_ round: inout Round, withCounters: Bool, touchAlive: Bool) async {
        // Metadata first, events second: a `hello` taken here was recorded after its session's
        // row was queued, so that row is in the events drained next and is written before it.
        let metadata = outbox.drainMetadata(withStatuses: withCounters)
        round.pending += outbox.drain()
        if withCounters, !round.pending.contains(where: { if case .counters = $0 { true } else { false } }) {
            let counters = presence.takeDirtyCounters()
            if !counters.isEmpty { round.pending.append(.counters(counters)) }
        }
        round.pending += metadata
        outbox.setHeld(round.pending.count)
        defer { outbox.setHeld(round.pending.count) }
        guard !round.pending.isEmpty || touchAlive else { return }
        var written = 0
        repeat {
            let batch = Array(round.pending[written..<min(round.pending.count, written + Self.maxBatch)])
            do {
                try await commit(batch)
                round.failures = 0
            } catch {
                presence.counters.metrics.historyWriteFailed()
                round.failures += 1
                logFailure(error, round: &round, events: round.pending.count - written)
                // The database may be refusing one event and accepting the rest: find out.
                if await isolate(batch) {
                    round.failures = 0
                    written += batch.count
                    continue
                }
                round.pending.removeFirst(written)
                return
            }
            written += batch.count
        } while written < round.pending.count
        round.pending.removeAll(keepingCapacity: true)
    }

    /// Commits one batch on the writer thread, then publishes its transitions.
    func commit(_ batch: [HistoryEvent]) async throws {
        let (store, runID, hub, metrics, now, outbox) = (store, runID, hub, presence.counters.metrics, presence.clock.now(), outbox)
        let logger = self.logger
        try await threads.write {
            let started = ContinuousClock.now
            // The committed transitions carry the ids the database gave them.
            let transitions = try store.write(batch, runID: runID, aliveAt: now)
            let elapsed = started.duration(to: .now)
            metrics.batchWritten(nanoseconds: elapsed.nanoseconds, events: batch.count)
            for t in transitions {
                metrics.transition(t)
                Self.log(t, logger: logger)
            }
            // Durable now: only from here on may anyone see these ids. With several nodes the
            // hub is fed from the shared log instead, in id order, this node's rows among the rest.
            if store.isShared {
                try? Self.feed(store: store, hub: hub, presence: presence)
            } else {
                hub.publish(transitions)
            }
            outbox.settled(batch)
        }
    }

    // MARK: Several nodes

    /// Reads every node's committed transitions after the hub's newest id and publishes them, in
    /// id order: gap-free, since ids follow commit order. Other nodes' transitions also update
    /// this node's view of agents it does not own.
    static func feed(store: any HistoryStore, hub: TransitionHub, presence: Presence) throws {
        while true {
            let page = try store.transitions(agent: nil, after: hub.lastID, limit: 1_000)
            guard !page.isEmpty else { return }
            presence.observe(page)
            hub.publish(page)
            if page.count < 1_000 { return }
        }
    }

    /// Gives up the agents other nodes took over, and reads the shared log when another node
    /// announced a commit (or every second, should a notification be missed).
    func share(_ round: inout Round) async {
        let relinquished = store.takeRelinquished()
        presence.relinquish(relinquished)
        for command in store.takeCommands() { await onCommand(command) }
        if ContinuousClock.now - round.lastCredentials >= .seconds(10) {
            round.lastCredentials = .now
            let store = store
            if let rows = try? await threads.read({ try store.credentials() }) { onCredentials(rows) }
        }
        guard store.announcedTransitionID > hub.lastID || ContinuousClock.now - round.lastFeed >= .seconds(1) else { return }
        round.lastFeed = .now
        let (store, hub, presence) = (store, hub, presence)
        do {
            try await threads.write { try Self.feed(store: store, hub: hub, presence: presence) }
        } catch {
            logger.warning("could not read the shared history; will retry", metadata: ["error": "\(error)"])
        }
    }

    /// Every third of a lease: renews it, takes over lapsed nodes, reserves session ids.
    func upkeep(_ round: inout Round) async {
        let period = Duration.milliseconds(max(300, configuration.leaseMs / 3))
        let lost = store.leaseLost
        if !lost, let last = round.lastUpkeep, ContinuousClock.now - last < period { return }
        round.lastUpkeep = .now
        if lost {
            // First drop every agent, then rejoin: a claim for any session opened before the
            // rejoin is refused, so nothing this node held while taken over comes back to it.
            presence.counters.metrics.leaseLost()
            presence.relinquishAll()
        }
        let (store, now) = (store, presence.clock.now())
        let needSessionIDs = presence.sessionIDsLeft < PostgresHistoryStore.sessionBlock / 2
        do {
            let upkeep = try await threads.write { try store.upkeep(now: now, needSessionIDs: needSessionIDs) }
            if let block = upkeep.sessionIDs { presence.addSessionIDs(block) }
            if !upkeep.nodesTakenOver.isEmpty {
                presence.counters.metrics.nodeTakenOver(agents: upkeep.adopted.count)
                presence.adopt(upkeep.adopted)
            }
        } catch {
            logger.warning("node upkeep failed; will retry", metadata: ["error": "\(error)"])
        }
    }

    /// After a failed batch: when the database accepts a write of nothing but the alive mark, the
    /// batch itself holds an event it refuses. Splits the batch until each such event stands
    /// alone, sets it aside with a log line and a counter, and commits (and publishes) the rest
    /// in order. Returns `false`, keeping everything, when the database refuses even that.
    func isolate(_ batch: [HistoryEvent]) async -> Bool {
        do {
            try await commit([])
        } catch {
            return false
        }
        var stack: [ArraySlice<HistoryEvent>] = [batch[...]]
        while let part = stack.popLast() {
            do {
                try await commit(Array(part))
            } catch {
                if part.count == 1 {
                    outbox.settled(part)
                    presence.counters.metrics.historyEventDropped()
                    logger.critical(
                        "history event refused by the database; set aside so the rest is written",
                        metadata: ["event": "\(part.first!.summary)", "error": "\(error)"])
                    continue
                }
                let middle = part.startIndex + part.count / 2
                // Left half first: events stay in order.
                stack.append(part[middle...])
                stack.append(part[..<middle])
            }
        }
        return true
    }

    /// One line for the first failure, then at most one every 10 s with the count in between:
    /// a database that is down must not turn the log into a flood.
    func logFailure(_ error: any Error, round: inout Round, events: Int) {
        let now = ContinuousClock.now
        if let last = round.lastFailureLog, now - last < .seconds(10) {
            round.suppressedFailureLogs += 1
            return
        }
        logger.error(
            "history write failed; will retry",
            metadata: ["error": "\(error)", "events": "\(events)", "failures_since_last_line": "\(round.suppressedFailureLogs)"])
        round.lastFailureLog = now
        round.suppressedFailureLogs = 0
    }

    /// Retention runs here because this service owns the writes.
    func prune() async {
        guard let retain = configuration.retainMs else { return }
        let cutoff = presence.clock.now() - retain
        do {
            let store = self.store
            let report = try await threads.write { try store.prune(before: cutoff) }
            if report.transitions + report.sessions + report.serverRuns > 0 {
                logger.info(
                    "pruned history",
                    metadata: [
                        "before": "\(Timestamp.rfc3339(cutoff))", "transitions": "\(report.transitions)", "sessions": "\(report.sessions)",
                        "runs": "\(report.serverRuns)",
                    ])
            }
        } catch {
            logger.error("pruning failed; will retry", metadata: ["error": "\(error)"])
        }
    }

    static func log(_ t: Transition, logger: Logger) {
        let level: Logger.Level = t.to == .online && t.reason == .connected ? .debug : .info
        guard logger.logLevel <= level else { return }
        logger.log(
            level: level, "\(t.agentID) \(t.from?.rawValue ?? "new") → \(t.to.rawValue) (\(t.reason.rawValue))",
            metadata: ["transition": "\(t.id)"])
    }
}

/// Fires liveness deadlines every `sweepInterval`: one loop for every agent, no timer per agent.
/// Also paces WebSocket pings so each connection is pinged once per `pingInterval`.
///
/// The loop runs on a thread of its own, not on Swift's cooperative pool: whatever keeps that
/// pool busy (route handlers, a burst of tasks) never delays a deadline.
struct LivenessSweeperService: Service {
    let presence: Presence
    let interval: Duration
    let pingInterval: Duration

    /// Set when the service is asked to stop; read by the sweeper's thread.
    final class StopFlag: Sendable {
        let stopped = Atomic<Bool>(false)
    }

    func run() async throws {
        let flag = StopFlag()
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                Thread.detachNewThread {
                    // At most 15 bytes: Linux refuses a longer thread name (and keeps the creator's).
                    Thread.current.name = "rollcall-sweep"
                    loop(until: flag)
                    done.resume()
                }
            }
        } onCancelOrGracefulShutdown: {
            flag.stopped.store(true, ordering: .relaxed)
        }
    }

    /// The sweeper's thread: sweep, ping, rate, every `interval`, until stopped.
    func loop(until flag: StopFlag) {
        var last = ContinuousClock.now
        var pacer = PingPacer()
        while !flag.stopped.load(ordering: .relaxed) {
            Thread.sleep(forTimeInterval: interval.seconds)
            presence.sweep()
            let now = ContinuousClock.now
            ping(pacer.due(elapsed: now - last, period: pingInterval, open: presence.connectionCount) { presence.sessionIDs() })
            presence.counters.updateRate(now: now)
            last = now
        }
    }

    /// One hop to each event loop for all of its pings, instead of a wake-up per ping.
    func ping(_ sessions: [Int64]) {
        guard !sessions.isEmpty else { return }
        var byLoop: [ObjectIdentifier: [ConnectionHandle]] = [:]
        for handle in presence.handles(sessions) { byLoop[handle.loopKey, default: []].append(handle) }
        for group in byLoop.values {
            group[0].onLoop { for handle in group { handle.pingHere() } }
        }
    }
}

/// Spreads pings evenly: every open connection once per period, without a timer per connection.
struct PingPacer {
    private var round: [Int64] = []
    private var credit: Double = 0

    /// The sessions to ping now, `elapsed` after the previous call; `sessions` lists the open
    /// ones when a new round starts.
    mutating func due(elapsed: Duration, period: Duration, open: Int, sessions: () -> [Int64]) -> [Int64] {
        guard open > 0 else {
            credit = 0
            return []
        }
        credit += Double(open) * elapsed.seconds / max(period.seconds, 0.001)
        var out: [Int64] = []
        while credit >= 1 {
            if round.isEmpty { round = sessions() }
            guard let session = round.popLast() else { break }
            credit -= 1
            out.append(session)
        }
        return out
    }
}

extension HistoryEvent {
    /// What the event is and whose, without any agent-supplied text (safe for a log line).
    var summary: String {
        switch self {
        // Not the transition's id: the database numbers it, and this one never got a number.
        case .transition(let t): "transition of \(t.agentID) to \(t.to.rawValue) (\(t.reason.rawValue))"
        case .sessionOpened(let s): "session \(s.id) of \(s.agentID) opened"
        case .sessionClosed(let e): "session \(e.id) of \(e.agentID) closed"
        case .counters(let c): "counters of \(c.count) sessions"
        case .hello(let id, _): "hello of \(id)"
        case .status(let id, _): "status of \(id)"
        }
    }
}


/// Stops presence once the HTTP server has: any agent still present becomes `unknown`.
struct PresenceStopService: Service {
    let presence: Presence
    let store: any HistoryStore
    let grace: Duration

    func run() async throws {
        try? await gracefulShutdown()
        presence.beginStop()
        // With other nodes running, the agents reconnect to them and no one becomes unknown.
        let store = store
        let handOff = store.isShared ? ((try? await DatabaseThreads.shared.read { try store.otherNodesRunning() }) ?? false) : false
        presence.stop(handOff: handOff)
        // Give the 1001 close frames time to go out before the process may exit.
        let deadline = ContinuousClock.now + grace
        while presence.openAgentSockets > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
