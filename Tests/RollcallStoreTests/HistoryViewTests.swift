import Foundation
import RollcallCore
import RollcallStore
import RollcallTesting
import Testing

@Suite struct HistoryViewTests {
    let web = AgentID("web-01")!
    // 2025-11-24T23:00:00Z
    let lateEvening: Millis = 1_764_025_200_000
    let hour: Millis = 3_600_000

    func t(_ id: Int64, _ from: PresenceState?, _ to: PresenceState, _ reason: TransitionReason, at: Millis) -> HistoryEvent {
        .transition(Transition(id: id, agentID: web, from: from, to: to, reason: reason, effectiveAt: at, detectedAt: at + 5, sessionID: 1))
    }

    /// online 23:00–23:30, suspect 23:30–00:15, online 00:15–01:00, offline from 01:00 to 02:00 (then a goodbye-free end).
    func handMadeHistory(_ backend: StoreBackend) throws -> TestStore {
        let test = try TestStore(backend)
        let store = test.store
        let run = try store.startRun(now: lateEvening - 1000, pid: 1, version: "test").runID
        try store.write(
            [
                .sessionOpened(SessionStart(id: 1, agentID: web, startedAt: lateEvening, remoteAddress: "127.0.0.1:1", bootID: "b", intervalMs: 1000, timeoutMs: 3000, agentRestarted: nil)),
                t(1, nil, .online, .connected, at: lateEvening),
                t(2, .online, .suspect, .missedHeartbeat, at: lateEvening + hour / 2),
                t(3, .suspect, .online, .heartbeat, at: lateEvening + hour + hour / 4),
                t(4, .online, .offline, .goodbye, at: lateEvening + 2 * hour),
                .sessionClosed(SessionEnd(id: 1, agentID: web, endedAt: lateEvening + 2 * hour, reason: .goodbye, closeCode: 1000, heartbeats: 42, lastSeen: lateEvening + 2 * hour)),
                t(5, .offline, .online, .connected, at: lateEvening + 3 * hour),
            ], runID: run, aliveAt: lateEvening + 3 * hour)
        return test
    }

    /// One row of `|`-joined columns, split.
    func columns(_ row: String) -> [String] { row.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }

    @Test(arguments: StoreBackend.available)
    func presenceIntervalsAreContiguousWithAnOpenCurrentOne(backend: StoreBackend) throws {
        let test = try handMadeHistory(backend)
        let rows = try test.rows("SELECT state, started_at_ms, ended_at_ms, reason FROM presence_intervals WHERE agent_id = 'web-01' ORDER BY started_at_ms")
            .map(columns)
        #expect(rows.map { $0[0] } == ["online", "suspect", "online", "offline", "online"])
        for (a, b) in zip(rows, rows.dropFirst()) {
            #expect(a[2] == b[1], "no gap, no overlap")
        }
        #expect(rows.last?[2] == "")
    }

    @Test(arguments: StoreBackend.available)
    func oneAgentsDailyUptimeIsWhatTheViewSays(backend: StoreBackend) throws {
        let test = try handMadeHistory(backend)
        let store = test.store
        // The first day only: the second is still open, so the view and the store, asked a
        // moment apart, would disagree on it by that moment.
        let view = try test.rows(
            "SELECT day, online_ms, suspect_ms, offline_ms, unknown_ms, uptime_ratio FROM uptime_daily WHERE agent_id = 'web-01' AND day = '2025-11-24'"
        ).map(columns)
        let now = Millis(Date().timeIntervalSince1970 * 1000)
        let days = try store.uptimeDaily(agent: "web-01", fromDay: "2025-11-24", now: now).prefix(1)
        #expect(days.map(\.day) == view.map { $0[0] })
        for (day, row) in zip(days, view) {
            #expect(day.uptime.onlineMs == Int64(row[1]))
            #expect(day.uptime.suspectMs == Int64(row[2]))
            #expect(day.uptime.offlineMs == Int64(row[3]))
            #expect(day.uptime.unknownMs == Int64(row[4]))
            #expect(day.ratio == Double(row[5]))
        }
        #expect(try store.uptimeDaily(agent: "web-01", fromDay: "2025-11-25", now: now).first?.day == "2025-11-25", "starts at the asked day")
        #expect(try store.uptimeDaily(agent: "nobody", fromDay: "2025-11-24", now: now).isEmpty)
    }

    @Test(arguments: StoreBackend.available)
    func uptimeDailySplitsAtUTCMidnightAndComputesTheRatio(backend: StoreBackend) throws {
        let test = try handMadeHistory(backend)
        let rows = try test.rows(
            "SELECT day, online_ms, suspect_ms, offline_ms, unknown_ms, uptime_ratio FROM uptime_daily WHERE agent_id = 'web-01' AND day <= '2025-11-25' ORDER BY day"
        ).map(columns)
        #expect(rows.count == 2)
        guard rows.count == 2 else { return }
        let first = rows[0]
        #expect(first[0] == "2025-11-24")
        #expect(Int64(first[1]) == hour / 2)
        #expect(Int64(first[2]) == hour / 2)
        #expect(Int64(first[3]) == 0)
        #expect(Double(first[5]) == 1.0)
        let second = rows[1]
        #expect(second[0] == "2025-11-25")
        #expect(Int64(second[2]) == hour / 4)
        #expect(Int64(second[3]) == hour)
        // Online 00:15–01:00 and from 02:00 to midnight (the open interval, long past).
        #expect(Int64(second[1]) == 3 * hour / 4 + 22 * hour)
        let online = Double(second[1])!, suspect = Double(hour / 4), offline = Double(hour)
        #expect(abs(Double(second[5])! - (online + suspect) / (online + suspect + offline)) < 1e-9)
    }

    @Test(arguments: StoreBackend.available)
    func fleetStatisticsGiveEachAgentInTheRangeItsWindowedUptimeAndFlaps(backend: StoreBackend) throws {
        let test = try handMadeHistory(backend)
        let store = test.store
        let now = lateEvening + 4 * hour
        // Window 00:00–03:00: suspect 00:00–00:15, online 00:15–01:00, offline 01:00–02:00, online 02:00–03:00.
        let stats = try store.fleetStats(first: "a", last: "z", from: now - 3 * hour, now: now)
        let web = try #require(stats["web-01"])
        #expect(web.uptime.suspectMs == hour / 4)
        #expect(web.uptime.onlineMs == 3 * hour / 4 + hour)
        #expect(web.uptime.offlineMs == hour)
        // Left online twice since 23:00 (23:30 suspect, 01:00 offline); only the 01:00 one is in the window.
        #expect(web.flaps == 1)
        #expect(try store.fleetStats(first: "a", last: "z", from: lateEvening - hour, now: now)["web-01"]?.flaps == 2)
        #expect(try store.fleetStats(first: "x", last: "z", from: now - 3 * hour, now: now).isEmpty)
    }

    @Test(arguments: StoreBackend.available)
    func transitionsWithinAWindowStartAtItsEffectiveTime(backend: StoreBackend) throws {
        let test = try handMadeHistory(backend)
        let store = test.store
        let rows = try store.transitions(agent: "web-01", after: 0, before: nil, effectiveFrom: lateEvening + hour, limit: 100)
        #expect(rows.map(\.id) == [3, 4, 5])
        #expect(try store.transitions(agent: "web-01", after: 3, before: nil, effectiveFrom: lateEvening + hour, limit: 1).map(\.id) == [4])
        // Newest first, below a cursor.
        #expect(try store.transitions(agent: "web-01", after: 0, before: .max, effectiveFrom: lateEvening + hour, limit: 2).map(\.id) == [5, 4])
        #expect(try store.transitions(agent: "web-01", after: 0, before: 4, effectiveFrom: .min, limit: 10).map(\.id) == [3, 2, 1])
    }

    @Test(arguments: StoreBackend.available)
    func uptimeRatioIsNullWhenNothingWasObserved(backend: StoreBackend) throws {
        let test = try TestStore(backend)
        let store = test.store
        let run = try store.startRun(now: lateEvening, pid: 1, version: "test").runID
        try store.write(
            [.transition(Transition(id: 1, agentID: web, from: .online, to: .unknown, reason: .serverCrashed, effectiveAt: lateEvening, detectedAt: lateEvening, sessionID: nil)),
             .transition(Transition(id: 2, agentID: web, from: .unknown, to: .online, reason: .connected, effectiveAt: lateEvening + hour, detectedAt: lateEvening + hour, sessionID: nil))],
            runID: run, aliveAt: lateEvening)
        let ratio = try test.rows("SELECT uptime_ratio, unknown_ms FROM uptime_daily WHERE day = '2025-11-24'").map(columns)
        #expect(ratio.first?[1] == String(hour))
        #expect(ratio.first?[0] == "", "NULL")
    }
}
