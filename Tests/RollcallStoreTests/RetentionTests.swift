import RollcallCore
import RollcallStore
import RollcallTesting
import Testing

@Suite struct RetentionTests {
    let t0: Millis = 1_764_000_000_000
    let web = AgentID("web-01")!
    let db1 = AgentID("db-01")!

    @Test(arguments: StoreBackend.available)
    func pruningCutsTheFirstIntervalAtTheCutoffAndKeepsTheRestContiguous(backend: StoreBackend) throws {
        let test = try TestStore(backend)
        let store = test.store
        let run = try store.startRun(now: t0, pid: 1, version: "test").runID
        func t(_ id: Int64, _ agent: AgentID, _ from: PresenceState?, _ to: PresenceState, _ at: Millis) -> HistoryEvent {
            .transition(Transition(id: id, agentID: agent, from: from, to: to, reason: .connected, effectiveAt: at, detectedAt: at, sessionID: nil))
        }
        try store.write(
            [
                // Each session opens just before the transition its connection makes.
                .sessionOpened(SessionStart(id: 1, agentID: web, startedAt: t0, remoteAddress: nil, bootID: nil, intervalMs: 1, timeoutMs: 3, agentRestarted: nil)),
                t(1, web, nil, .online, t0),
                .sessionClosed(SessionEnd(id: 1, agentID: web, endedAt: t0 + 1000, reason: .goodbye, closeCode: 1000, heartbeats: 1, lastSeen: t0 + 1000)),
                t(2, web, .online, .offline, t0 + 1000),
                .sessionOpened(SessionStart(id: 2, agentID: web, startedAt: t0 + 5000, remoteAddress: nil, bootID: nil, intervalMs: 1, timeoutMs: 3, agentRestarted: nil)),
                t(3, web, .offline, .online, t0 + 5000),
                t(4, web, .online, .suspect, t0 + 9000), t(5, db1, nil, .online, t0 + 100),
            ], runID: run, aliveAt: t0 + 9000)
        let report = try store.prune(before: t0 + 3000)
        #expect(report.transitions == 1, "web's first transition goes; the offline one is cut to the cutoff")
        #expect(report.sessions == 1)
        let intervals = try test.rows("SELECT agent_id, state, started_at_ms, ended_at_ms FROM presence_intervals ORDER BY agent_id, started_at_ms")
            .map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        let webRows = intervals.filter { $0[0] == "web-01" }
        #expect(webRows.map { $0[1] } == ["offline", "online", "suspect"])
        #expect(webRows.first?[2] == String(t0 + 3000), "the first remaining interval starts where pruning cut it")
        for (a, b) in zip(webRows, webRows.dropFirst()) { #expect(a[3] == b[2]) }
        let dbRows = intervals.filter { $0[0] == "db-01" }
        #expect(dbRows.first?[2] == String(t0 + 3000))
        #expect(try test.rows("SELECT state_since_ms FROM agents WHERE id = 'db-01'") == [String(t0 + 3000)],
            "an agent's state is not older than its first remaining interval")
        #expect(try store.sessions(agent: "web-01", before: nil, limit: 10).map(\.id) == [2], "open and recent sessions stay")
        // Pruning again at the same cutoff changes nothing.
        #expect(try store.prune(before: t0 + 3000) == PruneReport(transitions: 0, sessions: 0, serverRuns: 0))
    }
}
