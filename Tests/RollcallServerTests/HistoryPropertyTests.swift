import GRDB
import Logging
import PropertyBased
import RollcallCore
import RollcallStore
import RollcallTesting
import Testing

@testable import RollcallServer

/// Random scenarios of connects, heartbeats, silences, drops, goodbyes, supersedes, graceful
/// restarts and crashes, driven through the real presence, engine, history writer and SQLite
/// schema on a manual clock. After each scenario the history must be the truth.
@Suite struct HistoryPropertyTests {
    static let operations = 7
    static let agents = 4
    static let delays: [Millis] = [10, 100, 250, 400, 700, 1000, 2000, 5000]
    static let stepRange = 0...(operations * agents * delays.count - 1)

    @Test(arguments: StoreBackend.available)
    func theHistoryTilesTimeAfterAnyScenario(backend: StoreBackend) async throws {
        // Fewer scenarios on PostgreSQL: each makes a database of its own.
        await propertyCheck(count: backend == .sqlite ? 150 : 25, input: Gen.int(in: Self.stepRange).array(of: 1...80)) { steps in
            do {
                let simulation = try Simulation(backend)
                for step in steps { try await simulation.apply(step) }
                try await simulation.stopGracefully()
                try simulation.checkInvariants()
            } catch {
                Issue.record("scenario \(steps) threw \(error)")
            }
        }
    }

    @Test(arguments: StoreBackend.available)
    func aCrashAfterUnflushedEventsStillLeavesAConsistentHistory(backend: StoreBackend) async throws {
        // connect all, beat, flush, connect again (supersede), crash before the flush, then go on.
        let simulation = try Simulation(backend)
        for step in [0, 7, 14, 21, 1, 8, 5, 0, 6 + 7, 2 + 28 * 5, 0, 1, 2 + 28 * 7] { try await simulation.apply(step) }
        try await simulation.stopGracefully()
        try simulation.checkInvariants()
    }
}

/// The server without sockets: the same presence and writer, fake connections, a manual clock.
final class Simulation {
    let clock = ManualPresenceClock(1_764_000_000_000)
    let test: TestStore
    let store: any HistoryStore
    var configuration = ServerConfiguration()
    var presence: Presence
    var writer: HistoryWriterService
    var round = HistoryWriterService.Round()
    /// agent index → (slot, session) of its open fake connection.
    var connections: [Int: (LivenessEngine.Slot, Int64)] = [:]
    var closedByServer = Mutex2<Set<Int64>>([])
    var boots: [Int: String] = [:]
    let logger = Logger(label: "sim", factory: { _ in SwiftLogNoOpLogHandler() })

    init(_ backend: StoreBackend) throws {
        test = try TestStore(backend)
        store = test.store
        configuration.liveness = LivenessConfiguration(defaultIntervalMs: 200, defaultTimeoutMs: 600, minIntervalMs: 50)
        (presence, writer) = try Self.begin(configuration: configuration, store: store, clock: clock, logger: logger)
    }

    /// A new server run on the same file: the repair, the restored engine, a new writer.
    static func begin(configuration: ServerConfiguration, store: any HistoryStore, clock: ManualPresenceClock, logger: Logger) throws
        -> (Presence, HistoryWriterService)
    {
        let (presence, hub, run) = try RollcallApplication.startPresence(configuration: configuration, store: store, logger: logger, clock: clock)
        let writer = HistoryWriterService(
            store: store, outbox: presence.outbox, presence: presence, hub: hub, runID: run.runID, configuration: configuration, lock: nil,
            logger: logger)
        return (presence, writer)
    }

    func start() throws {
        (presence, writer) = try Self.begin(configuration: configuration, store: store, clock: clock, logger: logger)
        round = HistoryWriterService.Round()
        connections = [:]
    }

    func agentID(_ i: Int) -> AgentID { AgentID("agent-\(i)")! }

    /// Drops connections the server closed (timeout, superseded, stop).
    func reap() {
        let closed = closedByServer.withLock { $0 }
        connections = connections.filter { !closed.contains($0.value.1) }
    }

    func connect(_ agent: Int, newBoot: Bool) {
        if newBoot || boots[agent] == nil { boots[agent] = "boot-\(Int.random(in: 0...1_000_000))" }
        let request = HandshakeRequest(agentID: agentID(agent), bootID: boots[agent])
        let closed = closedByServer
        let box = Mutex2<Int64>(-1)
        // No event loop here: closes are recorded, pings (never sent in this test) would run inline.
        let handle = ConnectionHandle(
            close: { _, _ in closed.withLock { _ = $0.insert(box.withLock { $0 }) } }, loopKey: ObjectIdentifier(box), onLoop: { $0() },
            pingHere: {})
        guard let accepted = presence.accept(request, remoteAddress: "127.0.0.1:1", handle: handle) else { return }
        box.withLock { $0 = accepted.sessionID }
        reap()
        connections[agent] = (accepted.slot, accepted.sessionID)
    }

    func apply(_ step: Int) async throws {
        let op = step % Simulation.operationsCount
        let agent = (step / Simulation.operationsCount) % HistoryPropertyTests.agents
        let delay = HistoryPropertyTests.delays[step / (Simulation.operationsCount * HistoryPropertyTests.agents)]
        clock.advance(by: 1)
        switch op {
        case 0:
            connect(agent, newBoot: false)
        case 1:
            if let (slot, session) = connections[agent] { _ = presence.heartbeat(slot: slot, session: session) }
        case 2:
            pass(delay)
        case 3:
            if let (slot, session) = connections.removeValue(forKey: agent) {
                presence.disconnect(slot: slot, session: session, kind: .abnormal(closeCode: nil))
            }
        case 4:
            if let (slot, session) = connections.removeValue(forKey: agent) {
                presence.disconnect(slot: slot, session: session, kind: .goodbye(closeCode: 1000))
            }
        case 5:
            pass(delay)
            await writer.flush(&round, withCounters: true, touchAlive: true)
        default:
            switch agent {
            case 0: try await restartGracefully(downtime: delay)
            case 1: try crash(downtime: delay)
            case 2: connect(agent, newBoot: true)
            default:
                // Retention, as the writer runs it: after a flush, with a cutoff in the past.
                await writer.flush(&round, withCounters: true, touchAlive: true)
                _ = try store.prune(before: clock.now() - delay)
            }
        }
    }

    /// Time passes in sweeper-sized steps, as the real loop would see it.
    func pass(_ delay: Millis) {
        var left = delay
        while left > 0 {
            let tick = min(left, 10)
            clock.advance(by: tick)
            left -= tick
            presence.sweep()
        }
        reap()
    }

    static let operationsCount = HistoryPropertyTests.operations

    func restartGracefully(downtime: Millis) async throws {
        try await stopGracefully()
        clock.advance(by: downtime)
        try start()
    }

    /// The process dies: whatever the writer had not flushed is lost.
    func crash(downtime: Millis) throws {
        clock.advance(by: downtime)
        try start()
    }

    func stopGracefully() async throws {
        presence.stop()
        reap()
        await writer.flush(&round, withCounters: true, touchAlive: true)
        #expect(round.pending.isEmpty)
        try store.finishRun(writer.runID, now: clock.now())
    }

    func checkInvariants() throws {
        func columns(_ row: String) -> [String] { row.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        #expect(try test.rows("SELECT count(*) FROM sessions WHERE ended_at_ms IS NULL") == ["0"], "every session is closed")
        #expect(try test.rows("SELECT count(*) FROM sessions WHERE ended_at_ms < started_at_ms") == ["0"])

        // Transition ids increase with detection, and each agent's chain is consistent.
        let rows = try test.rows("SELECT id, agent_id, COALESCE(from_state, ''), to_state, detected_at_ms, effective_at_ms FROM transitions ORDER BY id")
            .map(columns)
        var lastDetected: Int64 = 0
        var lastTo: [String: String] = [:]
        var lastEffective: [String: Int64] = [:]
        for row in rows {
            let agent = row[1]
            let detected = Int64(row[4]) ?? -1
            let effective = Int64(row[5]) ?? -1
            #expect(detected >= lastDetected, "ids follow detection order")
            lastDetected = detected
            #expect(detected >= effective, "noticed no earlier than it became true")
            if let previous = lastTo[agent] {
                // (An agent's first row may follow a pruned one.)
                #expect(row[2] == previous, "transition \(row[0]) starts where the last one ended")
            }
            #expect(effective >= (lastEffective[agent] ?? 0), "effective times never go back")
            lastTo[agent] = row[3]
            lastEffective[agent] = effective
        }
        for (agent, state) in lastTo {
            #expect(try test.rows("SELECT state FROM agents WHERE id = '\(agent)'") == [state])
        }

        // Intervals tile time: contiguous, non-overlapping, only the last one open.
        let intervals = try test.rows(
            "SELECT agent_id, started_at_ms, COALESCE(CAST(ended_at_ms AS TEXT), 'open') FROM presence_intervals ORDER BY agent_id, started_at_ms, ended_at_ms IS NULL"
        ).map(columns)
        for (a, b) in zip(intervals, intervals.dropFirst()) where a[0] == b[0] {
            #expect(a[2] == b[1], "no gap or overlap")
        }

        // uptime_daily agrees with the intervals, state by state (one statement: one 'now').
        let now =
            test.backend == .sqlite
            ? "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)" : "(extract(epoch FROM statement_timestamp()) * 1000)::bigint"
        let larger = test.backend == .sqlite ? "MAX" : "GREATEST"
        for state in ["online", "suspect", "offline", "unknown"] {
            let difference = try test.rows(
                """
                SELECT COALESCE((SELECT SUM(\(state)_ms) FROM uptime_daily), 0)
                     - COALESCE((SELECT SUM(\(larger)(0, COALESCE(ended_at_ms, \(now)) - started_at_ms))
                                 FROM presence_intervals WHERE state = '\(state)'), 0)
                """)
            #expect(difference == ["0"], "uptime_daily \(state)_ms agrees with presence_intervals")
        }
    }
}

