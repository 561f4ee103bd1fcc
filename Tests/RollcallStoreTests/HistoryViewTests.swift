import Foundation
import GRDB
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
    func handMadeHistory() throws -> SQLiteHistoryStore {
        let store = try SQLiteHistoryStore(writer: DatabaseQueue())
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
        return store
    }

    @Test func presenceIntervalsAreContiguousWithAnOpenCurrentOne() throws {
        let store = try handMadeHistory()
        let rows = try store.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT state, started_at_ms, ended_at_ms, reason FROM presence_intervals WHERE agent_id = 'web-01' ORDER BY started_at_ms")
        }
        #expect(rows.map { $0["state"] as String } == ["online", "suspect", "online", "offline", "online"])
        for (a, b) in zip(rows, rows.dropFirst()) {
            #expect((a["ended_at_ms"] as Int64?) == (b["started_at_ms"] as Int64), "no gap, no overlap")
        }
        #expect((rows.last?["ended_at_ms"] as Int64?) == nil)
    }

    @Test func oneAgentsDailyUptimeIsWhatTheViewSays() throws {
        let store = try handMadeHistory()
        let view = try store.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM uptime_daily WHERE agent_id = 'web-01' AND day IN ('2025-11-24', '2025-11-25') ORDER BY day")
        }
        let now = Millis(Date().timeIntervalSince1970 * 1000)
        let days = try store.uptimeDaily(agent: "web-01", fromDay: "2025-11-24", now: now).prefix(2)
        #expect(days.map(\.day) == view.map { $0["day"] as String })
        for (day, row) in zip(days, view) {
            #expect(day.uptime.onlineMs == row["online_ms"] as Int64)
            #expect(day.uptime.suspectMs == row["suspect_ms"] as Int64)
            #expect(day.uptime.offlineMs == row["offline_ms"] as Int64)
            #expect(day.uptime.unknownMs == row["unknown_ms"] as Int64)
            #expect(day.ratio == row["uptime_ratio"] as Double?)
        }
        #expect(try store.uptimeDaily(agent: "web-01", fromDay: "2025-11-25", now: now).first?.day == "2025-11-25", "starts at the asked day")
        #expect(try store.uptimeDaily(agent: "nobody", fromDay: "2025-11-24", now: now).isEmpty)
    }

    @Test func uptimeDailySplitsAtUTCMidnightAndComputesTheRatio() throws {
        let store = try handMadeHistory()
        let rows = try store.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM uptime_daily WHERE agent_id = 'web-01' ORDER BY day")
        }
        #expect(rows.count >= 2)
        let first = rows[0]
        #expect(first["day"] as String == "2025-11-24")
        #expect(first["online_ms"] as Int64 == hour / 2)
        #expect(first["suspect_ms"] as Int64 == hour / 2)
        #expect(first["offline_ms"] as Int64 == 0)
        #expect(first["uptime_ratio"] as Double == 1.0)
        let second = rows[1]
        #expect(second["day"] as String == "2025-11-25")
        #expect(second["suspect_ms"] as Int64 == hour / 4)
        #expect(second["offline_ms"] as Int64 == hour)
        // Online 00:15–01:00 and from 02:00 up to now (open interval).
        #expect((second["online_ms"] as Int64) >= 3 * hour / 4 + hour)
        let online = Double(second["online_ms"] as Int64), suspect = Double(hour / 4), offline = Double(hour)
        #expect(abs((second["uptime_ratio"] as Double) - (online + suspect) / (online + suspect + offline)) < 1e-9)
    }

    @Test func fleetStatisticsGiveEachAgentInTheRangeItsWindowedUptimeAndFlaps() throws {
        let store = try handMadeHistory()
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

    @Test func transitionsWithinAWindowStartAtItsEffectiveTime() throws {
        let store = try handMadeHistory()
        let rows = try store.transitions(agent: "web-01", after: 0, before: nil, effectiveFrom: lateEvening + hour, limit: 100)
        #expect(rows.map(\.id) == [3, 4, 5])
        #expect(try store.transitions(agent: "web-01", after: 3, before: nil, effectiveFrom: lateEvening + hour, limit: 1).map(\.id) == [4])
        // Newest first, below a cursor.
        #expect(try store.transitions(agent: "web-01", after: 0, before: .max, effectiveFrom: lateEvening + hour, limit: 2).map(\.id) == [5, 4])
        #expect(try store.transitions(agent: "web-01", after: 0, before: 4, effectiveFrom: .min, limit: 10).map(\.id) == [3, 2, 1])
    }

    @Test func uptimeRatioIsNullWhenNothingWasObserved() throws {
        let store = try SQLiteHistoryStore(writer: DatabaseQueue())
        let run = try store.startRun(now: lateEvening, pid: 1, version: "test").runID
        try store.write(
            [.transition(Transition(id: 1, agentID: web, from: .online, to: .unknown, reason: .serverCrashed, effectiveAt: lateEvening, detectedAt: lateEvening, sessionID: nil)),
             .transition(Transition(id: 2, agentID: web, from: .unknown, to: .online, reason: .connected, effectiveAt: lateEvening + hour, detectedAt: lateEvening + hour, sessionID: nil))],
            runID: run, aliveAt: lateEvening)
        let ratio = try store.writer.read { db in
            try Row.fetchOne(db, sql: "SELECT uptime_ratio, unknown_ms FROM uptime_daily WHERE day = '2025-11-24'")
        }
        #expect((ratio?["unknown_ms"] as Int64?) == hour)
        #expect((ratio?["uptime_ratio"] as Double?) == nil)
    }
}
