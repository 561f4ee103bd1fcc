import Foundation
import RollcallCore
import Testing

@Suite struct PhiAccrualTests {
    @Test func phiIsLowAtTheMeanAndGrowsWithSilence() {
        var estimate = PhiAccrualEstimate()
        for interval in [1000.0, 1010, 990, 1005, 995, 1000] { estimate.record(intervalMs: interval) }
        #expect(estimate.isReady)
        let atMean = estimate.phi(elapsedMs: estimate.meanMs, minStddevMs: 100)
        #expect(abs(atMean - log10(2)) < 1e-9, "half the mass lies beyond the mean")
        #expect(estimate.phi(elapsedMs: 1500, minStddevMs: 100) > atMean)
        #expect(estimate.phi(elapsedMs: 3000, minStddevMs: 100) > estimate.phi(elapsedMs: 1500, minStddevMs: 100))
    }

    @Test(arguments: [1.0, 3.0, 8.0, 12.0])
    func theSilenceForAThresholdIsWherePhiReachesIt(threshold: Double) {
        var estimate = PhiAccrualEstimate()
        for interval in [800.0, 1200, 900, 1100, 1000, 1000, 950] { estimate.record(intervalMs: interval) }
        let silence = estimate.silenceMs(forPhi: threshold, minStddevMs: 50)
        #expect(abs(estimate.phi(elapsedMs: silence, minStddevMs: 50) - threshold) < 1e-3)
    }

    @Test func aJitteryAgentIsGivenMoreRoomThanARegularOne() {
        let config = LivenessConfiguration(defaultIntervalMs: 1000, defaultTimeoutMs: 3000, detector: .phiAccrual(threshold: 8))
        var engine = LivenessEngine(configuration: config)
        let t0: Millis = 1_764_000_000_000
        let regular = engine.connect(AgentID("regular")!, now: t0)
        let jittery = engine.connect(AgentID("jittery")!, now: t0)
        var tr = t0, tj = t0
        for i in 0..<30 {
            tr += 1000
            tj += i % 2 == 0 ? 600 : 1400
            _ = engine.signOfLife(slot: regular.slot, session: regular.sessionID, now: tr)
            _ = engine.signOfLife(slot: jittery.slot, session: jittery.sessionID, now: tj)
        }
        let r = engine.status(of: AgentID("regular")!)!
        let j = engine.status(of: AgentID("jittery")!)!
        let regularRoom = r.suspectAt! - r.lastSeen
        let jitteryRoom = j.suspectAt! - j.lastSeen
        #expect(regularRoom >= 1000 && regularRoom < 1700, "a metronome is suspected soon after a missed beat (\(regularRoom) ms)")
        #expect(jitteryRoom > regularRoom + 500, "a jittery agent gets room for its own jitter (\(jitteryRoom) ms)")
        #expect(jitteryRoom < 3000, "never later than the timeout")
        #expect(r.estimate?.isReady == true)
        // The deadline the API shows is the one the sweep fires.
        #expect(engine.sweep(now: r.suspectAt! - 1).allSatisfy { if case .transition(let t) = $0 { t.agentID.rawValue != "regular" } else { true } })
        let fired = engine.sweep(now: r.suspectAt!)
        #expect(fired.contains { if case .transition(let t) = $0 { t.agentID.rawValue == "regular" && t.to == .suspect } else { false } })
    }

    @Test func untilAFewBeatsArriveTheFixedRuleApplies() {
        let config = LivenessConfiguration(defaultIntervalMs: 1000, defaultTimeoutMs: 3000, detector: .phiAccrual(threshold: 8))
        var engine = LivenessEngine(configuration: config)
        let a = engine.connect(AgentID("new")!, now: 0)
        _ = engine.signOfLife(slot: a.slot, session: a.sessionID, now: 1000)
        let status = engine.status(of: AgentID("new")!)
        let expected: Millis = 2500
        #expect(status?.suspectAt == expected)
    }
}
