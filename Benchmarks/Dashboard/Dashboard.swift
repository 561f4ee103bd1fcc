// The dashboard at 100,000 agents on a 200 × 60 terminal.
//
// - frame: what `rollcall top` does for every frame while scrolling: render the visible rows of the
//   sorted fleet, diff against the previous frame, encode the changed cells. One row of scrolling
//   per frame, so every visible row changes position each time.
// - frame after a transition: one agent changes state, the frame is re-rendered and diffed
//   (the rows stay where they are until the next re-sort).
// - re-sort: rebuilding the sorted order of 100,000 agents (at most four times a second).
import Benchmark
import RollcallCore
import RollcallDashboard

let agentCount = 100_000
let now: Millis = 1_796_083_200_000
let size = ScreenSize(rows: 60, columns: 200)

func fleetState() -> DashboardState {
    let states: [PresenceState] = [.online, .online, .online, .online, .online, .online, .suspect, .offline, .unknown]
    var rows: [AgentRow] = []
    rows.reserveCapacity(agentCount)
    for i in 0..<agentCount {
        let since: Millis = now - Millis(i * 37 % 86_400) * 1000
        let rtt = Double(i % 900) / 100
        let uptime = 1 - Double(i % 1000) / 100_000
        let id = "host-\(100_000 + i).dc\(i % 7).example"
        rows.append(AgentRow(id: id, state: states[i % states.count], since: since, lastSeen: now - Millis(i % 5000), rttMs: rtt, flaps: i % 5, uptime: uptime))
    }
    var s = DashboardState(server: "http://127.0.0.1:7777")
    s.connection = .live
    s.heartbeatsPerSecond = 20_000
    s.fleet.applySnapshot(rows, cursor: 1)
    s.pageSize = Renderer.tableRows(for: size)
    s.refreshOrder(now: now)
    return s
}

final class Box: @unchecked Sendable {
    var state: DashboardState
    var writer = ScreenWriter(mode: .palette256)
    var nextID: Int64 = 2
    init() { state = fleetState() }

    /// Takes the state out, so the benchmark's copy is the only reference to the fleet's arrays and
    /// mutating it does not copy them (as in `rollcall top`, where one loop owns the state).
    func take() -> DashboardState {
        let s = state
        state = DashboardState(server: "")
        return s
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        warmupIterations: 3,
        scalingFactor: .one,
        maxDuration: .seconds(3),
        maxIterations: 2000
    )
    let renderer = Renderer(theme: Theme(.palette256))

    Benchmark("frame: scroll one row, render + diff + encode, 100,000 agents, 200×60") { (benchmark: Benchmark, box: Box) in
        var state = box.take()
        for _ in benchmark.scaledIterations {
            _ = state.handle(.down, now: now)
            let frame = renderer.render(state, size: size, now: now)
            blackHole(box.writer.update(to: frame))
        }
        box.state = state
    } setup: {
        let box = Box()
        for _ in 0..<30 { _ = box.state.handle(.down, now: now) }  // the selection mid-screen: every frame scrolls
        _ = box.writer.update(to: renderer.render(box.state, size: size, now: now))
        return box
    }

    Benchmark("frame after one transition: apply + render + diff + encode, 100,000 agents") { (benchmark: Benchmark, box: Box) in
        var state = box.take()
        for _ in benchmark.scaledIterations {
            let id = box.nextID
            box.nextID += 1
            let row = state.fleet.rows[state.order[Int(id) % 50]]
            state.fleet.apply(Transition(id: id, agentID: AgentID(row.id)!, from: row.state, to: row.state == .online ? .suspect : .online, reason: .missedHeartbeat, effectiveAt: now, detectedAt: now, sessionID: nil))
            let frame = renderer.render(state, size: size, now: now)
            blackHole(box.writer.update(to: frame))
        }
        box.state = state
    } setup: {
        let box = Box()
        _ = box.writer.update(to: renderer.render(box.state, size: size, now: now))
        return box
    }

    Benchmark("re-sort 100,000 agents by state (after a change)") { (benchmark: Benchmark, box: Box) in
        var state = box.take()
        for _ in benchmark.scaledIterations {
            let row = state.fleet.rows[Int(box.nextID) % agentCount]
            box.nextID += 1
            state.fleet.apply(Transition(id: box.nextID, agentID: AgentID(row.id)!, from: row.state, to: .offline, reason: .timeout, effectiveAt: now, detectedAt: now, sessionID: nil))
            state.refreshOrder(now: now + Millis(box.nextID) * 1000)  // a second later each time: never throttled
        }
        box.state = state
    } setup: {
        Box()
    }
}
