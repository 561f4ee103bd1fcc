import RollcallCore
import RollcallDashboard
import Testing

@Suite struct DashboardStateTests {
    let size = ScreenSize(rows: 10, columns: 80)

    func ids(_ s: DashboardState) -> [String] { s.order.map { s.fleet.rows[$0].id } }

    @Test func appliesEachTransitionOnceInIdOrderAndCountsFlaps() {
        var fleet = Fleet()
        fleet.applySnapshot(threeAgents, cursor: 10)
        let drop = Transition(id: 11, agentID: AgentID("web-01")!, from: .online, to: .suspect, reason: TransitionReason(rawValue: "disconnected"), effectiveAt: noon, detectedAt: noon, sessionID: nil)
        #expect(run { fleet.apply(drop) })
        #expect(!run { fleet.apply(drop) })  // a repeat after a reconnect changes nothing
        #expect(!run { fleet.apply(Transition(id: 9, agentID: AgentID("web-01")!, from: nil, to: .online, reason: TransitionReason(rawValue: "connected"), effectiveAt: noon, detectedAt: noon, sessionID: nil)) })
        #expect(fleet.row("web-01")?.state == .suspect && fleet.row("web-01")?.flaps == 1 && fleet.cursor == 11)
        #expect(run { fleet.apply(Transition(id: 12, agentID: AgentID("new-01")!, from: nil, to: .online, reason: TransitionReason(rawValue: "connected"), effectiveAt: noon, detectedAt: noon, sessionID: nil)) })
        #expect(fleet.counts == [.online: 1, .suspect: 2, .offline: 1])
        #expect(fleet.count == 4)
    }

    @Test func statisticsPagesFillTheSlowColumnsButNeverTheState() {
        var fleet = Fleet()
        fleet.applySnapshot(threeAgents, cursor: 10)
        fleet.applyStatistics([AgentRow(id: "db-01", state: .online, since: 0, lastSeen: noon, rttMs: 0.5, flaps: 4, uptime: 0.5)])
        let row = fleet.row("db-01")!
        #expect(row.state == .offline && row.since == noon - 125_000)
        #expect(row.lastSeen == noon && row.rttMs == 0.5 && row.flaps == 4 && row.uptime == 0.5)
    }

    @Test func sortsByEveryColumnAndReverses() {
        var s = state(threeAgents, size: size)
        #expect(ids(s) == ["db-01", "cache-01", "web-01"])  // problems first
        let expected: [Column: [String]] = [
            .id: ["cache-01", "db-01", "web-01"], .since: ["cache-01", "db-01", "web-01"], .lastSeen: ["db-01", "cache-01", "web-01"],
            .rtt: ["cache-01", "web-01", "db-01"], .flaps: ["db-01", "cache-01", "web-01"], .uptime: ["db-01", "cache-01", "web-01"],
        ]
        for (column, order) in expected {
            _ = s.handle(.character(Character(String(column.rawValue + 1))), now: noon)
            #expect(s.sortColumn == column)
            #expect(ids(s) == order, "\(column)")
            _ = s.handle(.character("r"), now: noon)
            #expect(ids(s) == order.reversed(), "\(column) reversed")
        }
    }

    @Test func movesByRowPageAndEndsAndKeepsTheSelectionOnScreen() {
        let rows = (0..<50).map { AgentRow(id: "a\(100 + $0)", state: .online, since: noon) }
        var s = state(rows, size: size)
        _ = s.handle(.character("1"), now: noon)
        #expect(s.pageSize == 6 && s.selected == 0)
        _ = s.handle(.down, now: noon)
        _ = s.handle(.character("j"), now: noon)
        #expect(s.selectedID == "a102")
        _ = s.handle(.pageDown, now: noon)
        #expect(s.selected == 7 && s.top == 2)
        _ = s.handle(.end, now: noon)
        #expect(s.selected == 49 && s.top == 44)
        _ = s.handle(.pageUp, now: noon)
        #expect(s.selected == 44 && s.top == 44)
        _ = s.handle(.character("k"), now: noon)
        #expect(s.selected == 43 && s.top == 43)
        _ = s.handle(.home, now: noon)
        #expect(s.selected == 0 && s.top == 0)
        _ = s.handle(.up, now: noon)
        #expect(s.selected == 0)
    }

    @Test func theSelectionStaysOnTopUntilTheOperatorMovesThenFollowsItsAgent() {
        var s = state(threeAgents, size: size)
        #expect(s.selectedID == "db-01")
        s.fleet.apply(Transition(id: 11, agentID: AgentID("web-01")!, from: .online, to: .offline, reason: TransitionReason(rawValue: "goodbye"), effectiveAt: noon, detectedAt: noon, sessionID: nil))
        s.refreshOrder(now: noon + 1000)
        #expect(s.selectedID == "web-01" && s.selected == 0)
        _ = s.handle(.down, now: noon + 1000)
        #expect(s.selectedID == "db-01")
        s.fleet.apply(Transition(id: 12, agentID: AgentID("db-01")!, from: .offline, to: .online, reason: TransitionReason(rawValue: "connected"), effectiveAt: noon + 1000, detectedAt: noon + 1000, sessionID: nil))
        s.refreshOrder(now: noon + 2000)
        #expect(s.selectedID == "db-01" && s.selected == 2)
    }

    @Test func reSortsABusyFleetAtMostFourTimesASecond() {
        var s = state(threeAgents, size: size)
        s.fleet.apply(Transition(id: 11, agentID: AgentID("web-01")!, from: .online, to: .offline, reason: TransitionReason(rawValue: "goodbye"), effectiveAt: noon, detectedAt: noon, sessionID: nil))
        s.refreshOrder(now: noon + 100)
        #expect(ids(s) == ["db-01", "cache-01", "web-01"])  // rows update in place meanwhile
        s.refreshOrder(now: noon + 300)
        #expect(ids(s) == ["web-01", "db-01", "cache-01"])
    }

    @Test func theFilterMatchesPrefixesOfStatesAndPartsOfIds() {
        var s = state(threeAgents, size: size)
        for (typed, expected) in [("off", ["db-01"]), ("susp", ["cache-01"]), ("on", ["web-01"]), ("o", ["db-01", "web-01"]), ("01", ["db-01", "cache-01", "web-01"]), ("che", ["cache-01"]), ("zz", [])] {
            s.filter = typed
            s.refreshOrder(now: noon + 1000)
            #expect(Set(ids(s)) == Set(expected), "\(typed)")
        }
    }

    @Test func quitsOnQOrCtrlCAndEscLeavesTheDetailFirst() {
        var s = state(threeAgents, size: size)
        #expect(run { s.handle(.enter, now: noon) } == .openDetail("db-01"))
        #expect(run { s.handle(.escape, now: noon) } == nil && s.detail == nil)
        #expect(run { s.handle(.control("c"), now: noon) } == .quit)
        #expect(run { s.handle(.character("q"), now: noon) } == .quit)
        _ = s.handle(.character("/"), now: noon)
        #expect(run { s.handle(.character("q"), now: noon) } == nil && s.filter == "q")  // typed into the filter
    }
}
