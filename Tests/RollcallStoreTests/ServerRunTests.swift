import RollcallCore
import RollcallStore
import RollcallTesting
import Testing

@Suite struct ServerRunTests {
    let t0: Millis = 1_764_000_000_000
    let web = AgentID("web-01")!

    func openSessionAndConnect(_ store: any HistoryStore, run: Int64, at: Millis) throws {
        try store.write(
            [
                .sessionOpened(SessionStart(id: 1, agentID: web, startedAt: at, remoteAddress: nil, bootID: "b", intervalMs: 1000, timeoutMs: 3000, agentRestarted: nil)),
                .transition(Transition(id: 1, agentID: web, from: nil, to: .online, reason: .connected, effectiveAt: at, detectedAt: at, sessionID: 1)),
                .counters([.init(sessionID: 1, agentID: web, heartbeats: 9, lastSeen: at + 9000)]),
            ], runID: run, aliveAt: at + 9500)
    }

    @Test(arguments: StoreBackend.available)
    func aCrashedRunIsRepairedAtTheNextStart(backend: StoreBackend) throws {
        let test = try TestStore(backend)
        let store = test.store
        let first = try store.startRun(now: t0, pid: 1, version: "test")
        #expect(!first.recoveredCrash)
        try openSessionAndConnect(store, run: first.runID, at: t0 + 1000)
        // No finishRun: the process died. The next start repairs.
        let second = try store.startRun(now: t0 + 60_000, pid: 2, version: "test")
        #expect(second.recoveredCrash)
        #expect(try test.rows("SELECT stop_reason FROM server_runs ORDER BY id") == ["crashed", ""])
        #expect(second.repairTransitions.count == 1)
        let repair = try #require(second.repairTransitions.first)
        #expect(repair.to == .unknown && repair.reason == .serverCrashed && repair.from == .online)
        #expect(repair.effectiveAt == t0 + 10_500, "the last moment the crashed run was known alive")
        #expect(repair.detectedAt == t0 + 60_000)
        #expect(second.nextTransitionID == 3)
        if let block = second.sessionIDs {
            // PostgreSQL: each run reserves a block of ids above every id written so far.
            #expect(block.lowerBound >= first.sessionIDs?.upperBound ?? 2 && second.nextSessionID == block.lowerBound)
        } else {
            #expect(second.nextSessionID == 2)
        }
        let session = try #require(try store.sessions(agent: "web-01", before: nil, limit: 10).first)
        #expect(session.endedAt == t0 + 10_500)
        #expect(session.endReason == "server_crashed")
        #expect(session.heartbeats == 9)
        #expect(second.agents.first?.state == .unknown)
    }

    @Test(arguments: StoreBackend.available)
    func aGracefulStopIsNotMistakenForACrash(backend: StoreBackend) throws {
        let test = try TestStore(backend)
        let store = test.store
        let first = try store.startRun(now: t0, pid: 1, version: "test")
        try store.write(
            [.transition(Transition(id: 1, agentID: web, from: nil, to: .online, reason: .connected, effectiveAt: t0, detectedAt: t0, sessionID: nil)),
             .transition(Transition(id: 2, agentID: web, from: .online, to: .unknown, reason: .serverStopped, effectiveAt: t0 + 5, detectedAt: t0 + 5, sessionID: nil))],
            runID: first.runID, aliveAt: t0 + 5)
        try store.finishRun(first.runID, now: t0 + 10)
        let second = try store.startRun(now: t0 + 1000, pid: 2, version: "test")
        #expect(!second.recoveredCrash)
        #expect(second.repairTransitions.isEmpty)
        #expect(second.agents.map(\.state) == [.unknown])
        #expect(try test.rows("SELECT stopped_at_ms, stop_reason FROM server_runs WHERE id = \(first.runID)") == ["\(t0 + 10)|graceful"])
    }

    @Test(arguments: StoreBackend.available)
    func filtersAgentsByStateLabelAndPrefixWithACursor(backend: StoreBackend) throws {
        let test = try TestStore(backend)
        let store = test.store
        let run = try store.startRun(now: t0, pid: 1, version: "test").runID
        var events: [HistoryEvent] = []
        for (i, name) in ["web-01", "web-02", "db-01", "web_x"].enumerated() {
            let id = AgentID(name)!
            events.append(.transition(Transition(id: Int64(i + 1), agentID: id, from: nil, to: i == 1 ? .offline : .online, reason: .connected, effectiveAt: t0, detectedAt: t0, sessionID: nil)))
            events.append(.hello(id, Hello(labels: ["env": i == 2 ? "prod" : "dev"])))
        }
        try store.write(events, runID: run, aliveAt: t0)
        #expect(try store.agents(AgentQuery(state: .online)).map(\.id) == ["db-01", "web-01", "web_x"])
        #expect(try store.agents(AgentQuery(labels: [("env", "prod")])).map(\.id) == ["db-01"])
        #expect(try store.agents(AgentQuery(idPrefix: "web-")).map(\.id) == ["web-01", "web-02"])
        #expect(try store.agents(AgentQuery(idPrefix: "web_")).map(\.id) == ["web_x"], "underscore is literal, not a wildcard")
        #expect(try store.agents(AgentQuery(after: "web-01", limit: 1)).map(\.id) == ["web-02"])
    }
}
