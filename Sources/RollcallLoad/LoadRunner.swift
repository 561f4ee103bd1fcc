import Synchronization
import Foundation
import Histogram

/// Runs a scenario and summarises it.
public struct LoadReport: Sendable {
    public struct Phase: Sendable {
        public var name: String
        public var seconds: Double
        public var acks: Int
        public var p50Micros: UInt64
        public var p99Micros: UInt64
        public var p999Micros: UInt64
        public var maxMicros: UInt64

        public var acksPerSecond: Double { seconds > 0 ? Double(acks) / seconds : 0 }
    }

    public var scenario: String
    public var agents: Int
    public var connected: Int
    public var failedConnects: Int
    public var unexpectedCloses: [Int: Int]
    public var lateBeats: Int
    public var rampSeconds: Double
    public var phases: [Phase]
    public var extra: [String: Double] = [:]

    /// One line of JSON for scripts.
    public var json: String {
        func phase(_ p: Phase) -> String {
            #"{"name":"\#(p.name)","seconds":\#(String(format: "%.3f", p.seconds)),"acks":\#(p.acks),"acks_per_second":\#(String(format: "%.1f", p.acksPerSecond)),"rtt_p50_us":\#(p.p50Micros),"rtt_p99_us":\#(p.p99Micros),"rtt_p999_us":\#(p.p999Micros),"rtt_max_us":\#(p.maxMicros)}"#
        }
        let closes = unexpectedCloses.sorted { $0.key < $1.key }.map { #""\#($0.key)":\#($0.value)"# }.joined(separator: ",")
        let extras = extra.sorted { $0.key < $1.key }.map { #""\#($0.key)":\#(String(format: "%.3f", $0.value))"# }.joined(separator: ",")
        return #"{"scenario":"\#(scenario)","agents":\#(agents),"connected":\#(connected),"failed_connects":\#(failedConnects),"unexpected_closes":{\#(closes)},"late_beats":\#(lateBeats),"ramp_seconds":\#(String(format: "%.3f", rampSeconds)),"phases":[\#(phases.map(phase).joined(separator: ","))]"# + (extras.isEmpty ? "" : ",\(extras)") + "}"
    }

    public var table: String {
        var lines = [
            "scenario \(scenario): \(agents) agents, \(connected) connected at the end, ramp \(String(format: "%.1f", rampSeconds)) s",
            "failed connects \(failedConnects), unexpected closes \(unexpectedCloses.isEmpty ? "0" : unexpectedCloses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")), late beats \(lateBeats)",
            "phase          seconds      acks     acks/s    p50 ms    p99 ms  p99.9 ms    max ms",
        ]
        for p in phases {
            lines.append(
                p.name.padding(toLength: 12, withPad: " ", startingAt: 0)
                    + String(format: "%9.1f %9d %10.0f %9.3f %9.3f %9.3f %9.3f", p.seconds, p.acks, p.acksPerSecond,
                        Double(p.p50Micros) / 1000, Double(p.p99Micros) / 1000, Double(p.p999Micros) / 1000, Double(p.maxMicros) / 1000))
        }
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) { lines.append("\(k): \(String(format: "%.3f", v))") }
        return lines.joined(separator: "\n")
    }
}

extension LoadGenerator {
    /// Runs the configured scenario to its end.
    public func run(log: @Sendable (String) -> Void = { _ in }) async -> LoadReport {
        let started = ContinuousClock.now
        await ramp(log: log)
        let rampSeconds = seconds(since: started)
        log("ramp done: \(stats.snapshot.connected) connected in \(String(format: "%.1f", rampSeconds)) s")
        if configuration.watchers > 0 {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<configuration.watchers { group.addTask { await self.connectWatcher() } }
            }
            log("\(stats.snapshot.watchers) watchers connected")
            // Let every snapshot arrive before timing the live stream.
            try? await Task.sleep(for: .milliseconds(Int64(configuration.settleSeconds * 1000)))
            stats.update { $0.delivery.reset() }
        }
        _ = stats.takeHistogram()
        var phases: [LoadReport.Phase] = []
        var extra: [String: Double] = [:]
        switch configuration.scenario {
        case .steady, .herd:
            phases.append(await measure("steady", seconds: configuration.durationSeconds, reconnect: configuration.scenario == .herd, log: log))
        case .churn:
            phases.append(await churn(seconds: configuration.durationSeconds))
        case .silence:
            phases.append(await measure("before", seconds: configuration.settleSeconds, reconnect: false, log: log))
            let victims = Array(0..<min(configuration.stormCount, configuration.agents))
            extra["silence_unix_ms"] = Date().timeIntervalSince1970 * 1000
            await silence(victims)
            log("silenced \(victims.count) agents")
            phases.append(await measure("silence", seconds: max(1, configuration.durationSeconds), reconnect: false, log: log))
        case .storm:
            let settle = configuration.stormAtUnixMs.map { max(0, ($0 - Date().timeIntervalSince1970 * 1000) / 1000) } ?? configuration.settleSeconds
            phases.append(await measure("before", seconds: settle, reconnect: false, log: log))
            let victims = Array(0..<min(configuration.stormCount, configuration.agents))
            let stormStart = ContinuousClock.now
            extra["storm_unix_ms"] = Date().timeIntervalSince1970 * 1000
            await leave(victims, abrupt: true)
            extra["storm_drop_seconds"] = seconds(since: stormStart)
            log("dropped \(victims.count) connections")
            phases.append(await measure("storm", seconds: max(1, configuration.durationSeconds), reconnect: false, log: log))
        }
        // The end of the measured phases: what comes after (closing every connection) is teardown.
        extra["end_unix_ms"] = Date().timeIntervalSince1970 * 1000
        let snapshot = stats.snapshot
        if snapshot.watchers > 0 {
            extra["watchers"] = Double(snapshot.watchers)
            extra["watch_deliveries"] = Double(snapshot.delivery.totalCount)
            extra["watch_delivery_p50_ms"] = Double(snapshot.delivery.valueAtPercentile(50)) / 1000
            extra["watch_delivery_p99_ms"] = Double(snapshot.delivery.valueAtPercentile(99)) / 1000
            extra["watch_delivery_max_ms"] = Double(snapshot.delivery.max) / 1000
        }
        return LoadReport(
            scenario: configuration.scenario.rawValue, agents: configuration.agents, connected: snapshot.connected,
            failedConnects: snapshot.failedConnects, unexpectedCloses: snapshot.unexpectedCloses, lateBeats: snapshot.lateBeats,
            rampSeconds: rampSeconds, phases: phases, extra: extra)
    }

    /// Opens every connection at `rampPerSecond`, a bounded number in flight at once.
    func ramp(log: @Sendable (String) -> Void) async {
        let perBatch = max(1, configuration.rampPerSecond / 20)
        var next = 0
        let start = ContinuousClock.now
        while next < configuration.agents {
            let batch = next..<min(configuration.agents, next + perBatch)
            await withTaskGroup(of: Void.self) { group in
                for i in batch { group.addTask { await self.connect(i) } }
            }
            next = batch.upperBound
            let due = start + .milliseconds(Int64(next) * 1000 / Int64(max(1, configuration.rampPerSecond)))
            if due > .now { try? await Task.sleep(until: due, clock: .continuous) }
        }
    }

    /// Collects acks for `seconds`; with `reconnect`, every dropped agent comes back on its own, as
    /// `rollcall-agent` does: a full-jitter delay under a ceiling that starts at 500 ms and doubles
    /// per failed attempt up to 30 s, and after a refusal the server's Retry-After first.
    func measure(_ name: String, seconds duration: Double, reconnect: Bool, log: @Sendable (String) -> Void) async -> LoadReport.Phase {
        let start = ContinuousClock.now
        let end = start + .milliseconds(Int64(duration * 1000))
        var lastReport = start
        let returning = Returning()
        let gate = Gate(width: 256)
        await withTaskGroup(of: Void.self) { group in
            while ContinuousClock.now < end {
                try? await Task.sleep(until: min(end, .now + .milliseconds(200)), clock: .continuous)
                if reconnect {
                    let missing = (0..<configuration.agents).filter { i in !isOpen(i) && returning.set.withLock { $0.insert(i).inserted } }
                    for i in missing {
                        group.addTask {
                            var attempt = 0
                            var floor = 0
                            while !Task.isCancelled {
                                // As AgentRunner: after a refusal (429/503 with Retry-After, here
                                // taken as 1 s) wait that long plus a quarter of the jitter.
                                let ceiling = min(30_000, 500 << min(attempt, 6))
                                let jitter = Int.random(in: 0...ceiling)
                                try? await Task.sleep(for: .milliseconds(floor > 0 ? floor + jitter / 4 : jitter))
                                if Task.isCancelled { break }
                                // Many thousand simulated agents share this process's event loops:
                                // a bounded number of handshakes in flight keeps its own CPU from
                                // timing them out, as separate machines would not.
                                await gate.enter()
                                let outcome = await self.attempt(i, try: attempt)
                                gate.leave()
                                switch outcome {
                                case .upgraded:
                                    self.stats.update { $0.reconnects += 1 }
                                    attempt = -1
                                case .refused:
                                    floor = 1000
                                case .unreachable:
                                    floor = 0
                                }
                                if attempt < 0 { break }
                                attempt += 1
                            }
                            _ = returning.set.withLock { $0.remove(i) }
                        }
                    }
                }
                if ContinuousClock.now - lastReport > .seconds(5) {
                    lastReport = .now
                    let s = stats.snapshot
                    log("\(name): \(s.connected) connected, \(s.acks) acks, \(s.failedConnects) failed connects")
                }
            }
            group.cancelAll()
        }
        return phase(name, since: start)
    }

    /// At most `width` callers between `enter` and `leave`; the others wait in order.
    final class Gate: Sendable {
        private struct State {
            var available: Int
            var waiters: [CheckedContinuation<Void, Never>] = []
            var head = 0
        }
        private let state: Mutex<State>

        init(width: Int) { state = Mutex(State(available: width)) }

        func enter() async {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let admitted = state.withLock { s -> Bool in
                    if s.available > 0 {
                        s.available -= 1
                        return true
                    }
                    s.waiters.append(c)
                    return false
                }
                if admitted { c.resume() }
            }
        }

        func leave() {
            let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
                guard s.head < s.waiters.count else {
                    s.available += 1
                    return nil
                }
                let w = s.waiters[s.head]
                s.head += 1
                if s.head > 1024, s.head * 2 > s.waiters.count {
                    s.waiters.removeFirst(s.head)
                    s.head = 0
                }
                return w
            }
            next?.resume()
        }
    }

    /// The agents with a reconnect loop running, shared by those loops.
    final class Returning: Sendable {
        let set = Mutex<Set<Int>>([])
    }

    func churn(seconds duration: Double) async -> LoadReport.Phase {
        let start = ContinuousClock.now
        let end = start + .milliseconds(Int64(duration * 1000))
        while ContinuousClock.now < end {
            // Each second, 1% of the fleet leaves politely and as many come back.
            let count = max(1, Int(Double(configuration.agents) * configuration.churnPerSecond))
            let leaving = Set((0..<count).map { _ in Int.random(in: 0..<configuration.agents) }).filter(isOpen)
            await leave(Array(leaving), abrupt: false)
            try? await Task.sleep(for: .milliseconds(500))
            await withTaskGroup(of: Void.self) { group in
                for i in leaving where !isOpen(i) { group.addTask { await self.connect(i) } }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return phase("churn", since: start)
    }

    func phase(_ name: String, since start: ContinuousClock.Instant) -> LoadReport.Phase {
        let histogram = stats.takeHistogram()
        return LoadReport.Phase(
            name: name, seconds: seconds(since: start), acks: Int(histogram.totalCount), p50Micros: histogram.valueAtPercentile(50),
            p99Micros: histogram.valueAtPercentile(99), p999Micros: histogram.valueAtPercentile(99.9), maxMicros: histogram.max)
    }

    func isOpen(_ index: Int) -> Bool { channelsContain(index) }

    func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
