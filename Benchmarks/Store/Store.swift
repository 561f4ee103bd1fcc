// SQLiteHistoryStore: the history writer's `write(_:runID:aliveAt:)` on a temporary file database
// (WAL, synchronous = NORMAL, as the server opens it). One benchmark iteration is one batch, one
// call, one transaction, as HistoryWriterService.flush makes it; the events are built before the
// measurement. Results are per event (scaling factor K: 1,000 events per batch), so throughput
// reads as events per second; in the counters checkpoint, the batch is one `.counters` event of
// 1,000 sessions and the unit is one session's counter. Every event (every counter) here writes
// exactly two rows, its own row and the agent's: rows per second are twice the throughput.
import Benchmark
import Foundation
import RollcallCore
import RollcallStore

let t0: Millis = 1_764_000_000_000
/// Agents with an open session in the database before the first batch.
let poolSize = 10_000
/// Events per batch (the scaling factor).
let batchSize = 1_000

/// A history database with `poolSize` connected agents and what the next batch should write.
final class HistoryFixture: @unchecked Sendable {
    let directory: URL
    let store: SQLiteHistoryStore
    let runID: Int64
    let agents: [AgentID]
    /// Each agent's open session.
    var sessions: [Int64]
    var heartbeats: [Int64]
    var nextSession: Int64 = 1
    var nextTransition: Int64 = 1
    var now: Millis = t0
    /// The next agent of the pool that a batch touches.
    var cursor = 0

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rollcall-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try SQLiteHistoryStore(path: directory.appendingPathComponent("history.db").path)
        runID = try store.startRun(now: t0, pid: 1, version: "bench").runID
        agents = (0..<poolSize).map { AgentID("agent-\($0)")! }
        sessions = Array(repeating: 0, count: poolSize)
        heartbeats = Array(repeating: 0, count: poolSize)
        // Connect the pool, in batches of the same size.
        var events: [HistoryEvent] = []
        for i in 0..<poolSize {
            let session = openSession(i)
            events.append(.sessionOpened(sessionStart(i, session)))
            events.append(.transition(transition(i, from: nil, to: .online, reason: .connected, session: session)))
            if events.count >= batchSize {
                try store.write(events, runID: runID, aliveAt: now)
                events.removeAll(keepingCapacity: true)
            }
        }
        if !events.isEmpty { try store.write(events, runID: runID, aliveAt: now) }
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    func nextAgent() -> Int {
        defer { cursor = (cursor + 1) % poolSize }
        return cursor
    }

    func transition(_ i: Int, from: PresenceState?, to: PresenceState, reason: TransitionReason, session: Int64?) -> Transition {
        defer { nextTransition += 1 }
        return Transition(
            id: nextTransition, agentID: agents[i], from: from, to: to, reason: reason, effectiveAt: now, detectedAt: now,
            sessionID: session)
    }

    /// Starts a new session for agent `i`; the caller adds its `sessionOpened` event.
    func openSession(_ i: Int) -> Int64 {
        let id = nextSession
        nextSession += 1
        sessions[i] = id
        heartbeats[i] = 0
        return id
    }

    func sessionStart(_ i: Int, _ id: Int64) -> SessionStart {
        SessionStart(
            id: id, agentID: agents[i], startedAt: now, remoteAddress: "127.0.0.1", bootID: "boot-\(i)", intervalMs: 5_000,
            timeoutMs: 15_000, agentRestarted: id > Int64(poolSize) ? false : nil)
    }

    /// 250 agents reconnect: each drops (session closed, online → suspect), then comes back on a
    /// new session (session opened, suspect → online): 4 events each, 1,000 in all.
    func reconnectBatch() -> [HistoryEvent] {
        now += 50
        var events: [HistoryEvent] = []
        events.reserveCapacity(batchSize)
        while events.count < batchSize {
            let i = nextAgent()
            let old = sessions[i]
            events.append(
                .sessionClosed(
                    SessionEnd(
                        id: old, agentID: agents[i], endedAt: now, reason: .disconnected, closeCode: 1006, heartbeats: heartbeats[i],
                        lastSeen: now - 20, rttMs: 0.4)))
            events.append(.transition(transition(i, from: .online, to: .suspect, reason: .disconnected, session: old)))
            let new = openSession(i)
            events.append(.sessionOpened(sessionStart(i, new)))
            events.append(.transition(transition(i, from: .suspect, to: .online, reason: .reconnected, session: new)))
        }
        return events
    }

    /// The periodic checkpoint: heartbeat counters of 1,000 open sessions in one `.counters` event.
    func countersBatch() -> [HistoryEvent] {
        now += 2_000
        var counters: [LivenessEngine.SessionCounter] = []
        counters.reserveCapacity(batchSize)
        for _ in 0..<batchSize {
            let i = nextAgent()
            heartbeats[i] += 1
            counters.append(.init(sessionID: sessions[i], agentID: agents[i], heartbeats: heartbeats[i], lastSeen: now - 100, rttMs: 0.4))
        }
        return [.counters(counters)]
    }
}

/// Directories to remove when a benchmark is done.
final class Cleanup: @unchecked Sendable {
    var fixtures: [HistoryFixture] = []
    func make() throws -> HistoryFixture {
        let fixture = try HistoryFixture()
        fixtures.append(fixture)
        return fixture
    }
    func run() {
        fixtures.forEach { $0.remove() }
        fixtures.removeAll()
    }
}

func measureWrite(_ benchmark: Benchmark, _ fixture: HistoryFixture, _ events: [HistoryEvent]) {
    benchmark.startMeasurement()
    do {
        try fixture.store.write(events, runID: fixture.runID, aliveAt: fixture.now)
    } catch {
        benchmark.error("write failed: \(error)")
    }
    benchmark.stopMeasurement()
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000
    )
    let cleanup = Cleanup()

    Benchmark("History write: reconnect churn, 1,000-event batches") { benchmark, fixture in
        measureWrite(benchmark, fixture, fixture.reconnectBatch())
    } setup: {
        try cleanup.make()
    } teardown: {
        cleanup.run()
    }

    Benchmark("History write: counters checkpoint, 1,000 sessions per batch") { benchmark, fixture in
        measureWrite(benchmark, fixture, fixture.countersBatch())
    } setup: {
        try cleanup.make()
    } teardown: {
        cleanup.run()
    }
}
