// LivenessEngine with 100,000 connected agents (default configuration: interval 5 s, timeout 15 s,
// suspect after 7.5 s of silence, fixed detector unless named otherwise).
//
// - signOfLife: one heartbeat, as Presence.heartbeat calls it, round-robin over all agents with the
//   clock advancing so that every agent beats every 5 s (20 beats per ms). Per heartbeat (K).
// - sweep: one call of `sweep(now:)`. The engine is copied from a prepared one before each
//   measurement (outside it), so every sweep sees the same state. These run with scaling factor 1,
//   so their malloc count includes about 16 allocations per iteration made by the framework itself
//   while measuring: the re-armed sweep reads 16 although `--allocation-stacks` finds none in it.
import Benchmark
import RollcallCore
import BenchmarkSupport

let agentCount = 100_000
let expiring = 1_000
let t0: Millis = 1_764_000_000_000

/// A connected fleet and where each agent's record and session are.
struct Fleet {
    var engine: LivenessEngine
    var slots: [LivenessEngine.Slot]
    var sessions: [Int64]
}

/// Holds the fleet between iterations; the closure takes it out so that the engine stays
/// uniquely referenced (no copy on write) while measured.
final class FleetBox: @unchecked Sendable {
    var fleet: Fleet?
    var beats = 0
    init(_ fleet: Fleet) { self.fleet = fleet }
}

func agentID(_ i: Int) -> AgentID { AgentID("agent-\(i)")! }

/// Connects `agentCount` agents; agent `i` connects at `connectedAt(i)`.
func connectFleet(configuration: LivenessConfiguration = .init(), connectedAt: (Int) -> Millis) -> Fleet {
    var engine = LivenessEngine(configuration: configuration)
    var slots: [LivenessEngine.Slot] = []
    var sessions: [Int64] = []
    slots.reserveCapacity(agentCount)
    sessions.reserveCapacity(agentCount)
    for i in 0..<agentCount {
        let accepted = engine.connect(agentID(i), now: connectedAt(i))
        slots.append(accepted.slot)
        sessions.append(accepted.sessionID)
    }
    return Fleet(engine: engine, slots: slots, sessions: sessions)
}

/// Every 100th agent (1,000 in all) connected at t0 and stayed silent; the others connected 10 s later.
func isSilent(_ i: Int) -> Bool { i % (agentCount / expiring) == 0 }
func staggeredFleet() -> Fleet { connectFleet { isSilent($0) ? t0 : t0 + 10_000 } }

let probe = AgentID("bench-copy-probe")!

/// Sweeps a private copy of `base` at `now` and checks the number of effects.
func measureSweep(_ benchmark: Benchmark, _ base: Fleet, now: Millis, expectedEffects: Int) {
    var engine = base.engine
    // Connecting one more agent writes to the records, the index and the deadline heap, so the
    // copies happen here and not inside the measured sweep. Its deadline lies after `now`.
    _ = engine.connect(probe, now: now)
    benchmark.startMeasurement()
    let effects = engine.sweep(now: now)
    benchmark.stopMeasurement()
    precondition(effects.count == expectedEffects, "sweep produced \(effects.count) effects, expected \(expectedEffects)")
    blackHole(effects)
    blackHole(engine)
}

func signOfLife(_ benchmark: Benchmark, _ box: FleetBox) {
    var fleet = box.fleet!
    box.fleet = nil
    var beat = box.beats
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        let i = beat % agentCount
        let now = t0 + 10_000 + Millis(beat / 20)
        blackHole(fleet.engine.signOfLife(slot: fleet.slots[i], session: fleet.sessions[i], now: now))
        beat &+= 1
    }
    benchmark.stopMeasurement()
    box.beats = beat
    box.fleet = fleet
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: measuredMetrics,
        warmupIterations: 3,
        scalingFactor: .one,
        maxDuration: .seconds(3),
        maxIterations: 200
    )

    Benchmark(
        "signOfLife.fixed.100k",
        configuration: .init(
            timeUnits: .nanoseconds, warmupIterations: 10, scalingFactor: .kilo, maxIterations: 100_000, thresholds: allocationThresholds)
    ) { benchmark, box in
        signOfLife(benchmark, box)
    } setup: {
        FleetBox(connectFleet { _ in t0 + 10_000 })
    }

    Benchmark(
        "signOfLife.phi.100k",
        configuration: .init(
            timeUnits: .nanoseconds, warmupIterations: 10, scalingFactor: .kilo, maxIterations: 100_000, thresholds: allocationThresholds)
    ) { benchmark, box in
        signOfLife(benchmark, box)
    } setup: {
        FleetBox(connectFleet(configuration: .init(detector: .phiAccrual(threshold: 8))) { _ in t0 + 10_000 })
    }

    // What the sweeper does on most ticks: the earliest deadline is still ahead.
    Benchmark(
        "sweep: 100,000 agents, nothing due",
        configuration: .init(timeUnits: .nanoseconds, warmupIterations: 10, scalingFactor: .kilo, maxIterations: 100_000)
    ) { benchmark, box in
        var fleet = box.fleet!
        box.fleet = nil
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(fleet.engine.sweep(now: t0 + 5_000))
        }
        benchmark.stopMeasurement()
        box.fleet = fleet
    } setup: {
        FleetBox(connectFleet { _ in t0 })
    }

    // Every agent beat at t0 + 5 s, so all 100,000 heap entries (due t0 + 7.5 s) come up and
    // each is pushed again for t0 + 12.5 s: nothing expires, but the whole heap turns over.
    Benchmark("sweep: 100,000 deadlines due, none expire (all re-armed)") { benchmark, base in
        measureSweep(benchmark, base, now: t0 + 7_500, expectedEffects: 0)
    } setup: {
        var fleet = connectFleet { _ in t0 }
        for i in 0..<agentCount {
            _ = fleet.engine.signOfLife(slot: fleet.slots[i], session: fleet.sessions[i], now: t0 + 5_000)
        }
        return fleet
    }

    // 1,000 silent agents pass their suspect deadline (t0 + 7.5 s); the other 99,000 are due at t0 + 17.5 s.
    Benchmark("sweep: 1,000 of 100,000 expire (online → suspect)") { benchmark, base in
        measureSweep(benchmark, base, now: t0 + 7_500, expectedEffects: expiring)
    } setup: {
        staggeredFleet()
    }

    // The same 1,000, already suspect, reach their timeout (t0 + 15 s): each closes its socket,
    // its session and goes offline (3 effects each).
    Benchmark("sweep: 1,000 of 100,000 expire (suspect → offline, timeout)") { benchmark, base in
        measureSweep(benchmark, base, now: t0 + 15_000, expectedEffects: 3 * expiring)
    } setup: {
        var fleet = staggeredFleet()
        let suspected = fleet.engine.sweep(now: t0 + 7_500)
        precondition(suspected.count == expiring)
        return fleet
    }
}
