import RollcallCore
import Testing

/// The engine is driven with explicit times: `t` plays the manual clock.
@Suite struct LivenessEngineTests {
    let t0: Millis = 1_764_000_000_000
    let config = LivenessConfiguration(defaultIntervalMs: 1000, defaultTimeoutMs: 3000, minIntervalMs: 100, maxIntervalMs: 60_000, slack: 1.5)
    let web = AgentID("web-01")!

    func transitions(_ effects: [LivenessEffect]) -> [Transition] {
        effects.compactMap { if case .transition(let t) = $0 { t } else { nil } }
    }

    func closes(_ effects: [LivenessEffect]) -> [(Int64, CloseCode)] {
        effects.compactMap { if case .close(let s, let c, _) = $0 { (s, c) } else { nil } }
    }

    @Test func marksAnAgentOfflineExactlyAtItsDeadlineAndDetectsItOnTheNextSweep() {
        var engine = LivenessEngine(configuration: config)
        let accepted = engine.connect(web, now: t0)
        #expect(transitions(accepted.effects).map(\.reason) == [.connected])
        _ = engine.signOfLife(slot: accepted.slot, session: accepted.sessionID, now: t0 + 1000)
        _ = engine.signOfLife(slot: accepted.slot, session: accepted.sessionID, now: t0 + 2000)

        #expect(engine.sweep(now: t0 + 3499).isEmpty)
        let suspect = transitions(engine.sweep(now: t0 + 3507))
        #expect(suspect.count == 1)
        #expect(suspect.first?.to == .suspect)
        #expect(suspect.first?.reason == .missedHeartbeat)
        #expect(suspect.first?.effectiveAt == t0 + 3500)
        #expect(suspect.first?.detectedAt == t0 + 3507)

        #expect(engine.sweep(now: t0 + 4999).isEmpty)
        let effects = engine.sweep(now: t0 + 5010)
        let offline = transitions(effects)
        #expect(offline.count == 1)
        #expect(offline.first?.to == .offline)
        #expect(offline.first?.reason == .timeout)
        #expect(offline.first?.effectiveAt == t0 + 5000, "effective exactly at last sign of life + timeout")
        #expect(offline.first?.detectedAt == t0 + 5010)
        #expect(closes(effects).map(\.1) == [.heartbeatTimeout])
        #expect(engine.sweep(now: t0 + 60_000).isEmpty, "nothing fires twice")
        #expect(engine.status(of: web)?.state == .offline)
    }

    @Test func aLongSilenceFiresSuspectAndOfflineInOneSweepInOrder() {
        var engine = LivenessEngine(configuration: config)
        _ = engine.connect(web, now: t0)
        let fired = transitions(engine.sweep(now: t0 + 10_000))
        #expect(fired.map(\.to) == [.suspect, .offline])
        #expect(fired.map(\.effectiveAt) == [t0 + 1500, t0 + 3000])
        #expect(fired[0].id < fired[1].id)
    }

    @Test func heartbeatsKeepAnAgentOnlineIndefinitely() {
        var engine = LivenessEngine(configuration: config)
        let a = engine.connect(web, now: t0)
        for i in 1...100 {
            let now = t0 + Millis(i) * 1000
            #expect(engine.signOfLife(slot: a.slot, session: a.sessionID, now: now).isEmpty)
            #expect(engine.sweep(now: now + 10).isEmpty)
        }
        #expect(engine.status(of: web)?.heartbeats == 100)
    }

    @Test func aHeartbeatBringsASuspectAgentBackOnline() {
        var engine = LivenessEngine(configuration: config)
        let a = engine.connect(web, now: t0)
        _ = engine.sweep(now: t0 + 1600)
        #expect(engine.status(of: web)?.state == .suspect)
        let back = transitions(engine.signOfLife(slot: a.slot, session: a.sessionID, now: t0 + 2000))
        #expect(back.map(\.reason) == [.heartbeat])
        #expect(back.first?.from == .suspect)
        #expect(engine.sweep(now: t0 + 3400).isEmpty, "the deadline moved with the heartbeat")
    }

    @Test func goodbyeTakesAnAgentOfflineAtOnce() {
        var engine = LivenessEngine(configuration: config)
        let a = engine.connect(web, now: t0)
        let effects = engine.disconnect(slot: a.slot, session: a.sessionID, kind: .goodbye(closeCode: 1000), now: t0 + 700)
        let t = transitions(effects)
        #expect(t.map(\.reason) == [.goodbye])
        #expect(t.first?.effectiveAt == t0 + 700)
        #expect(effects.contains { if case .sessionClosed(let e) = $0 { e.reason == .goodbye && e.closeCode == 1000 } else { false } })
        #expect(engine.sweep(now: t0 + 100_000).isEmpty)
    }

    @Test func anAbnormalDropIsSuspectThenOfflineAtTheTimeout() {
        var engine = LivenessEngine(configuration: config)
        let a = engine.connect(web, now: t0)
        _ = engine.signOfLife(slot: a.slot, session: a.sessionID, now: t0 + 1000)
        let drop = transitions(engine.disconnect(slot: a.slot, session: a.sessionID, kind: .abnormal(closeCode: nil), now: t0 + 1200))
        #expect(drop.map(\.to) == [.suspect])
        #expect(drop.map(\.reason) == [.disconnected])
        #expect(drop.first?.effectiveAt == t0 + 1200)
        let offline = transitions(engine.sweep(now: t0 + 4000))
        #expect(offline.map(\.reason) == [.timeout])
        #expect(offline.first?.effectiveAt == t0 + 4000)
    }

    @Test func aReconnectBeforeTheDeadlineIsReconnected() {
        var engine = LivenessEngine(configuration: config)
        let a = engine.connect(web, bootID: "b1", now: t0)
        _ = engine.disconnect(slot: a.slot, session: a.sessionID, kind: .abnormal(closeCode: 1006), now: t0 + 500)
        let again = engine.connect(web, bootID: "b1", now: t0 + 900)
        #expect(transitions(again.effects).map(\.reason) == [.reconnected])
        let opened = again.effects.compactMap { if case .sessionOpened(let s) = $0 { s } else { nil } }
        #expect(opened.first?.agentRestarted == false, "same boot id: a network blip")
        #expect(engine.sweep(now: t0 + 2300).isEmpty)
    }

    @Test func aSecondConnectionSupersedesTheFirstWithoutATransition() {
        var engine = LivenessEngine(configuration: config)
        let first = engine.connect(web, bootID: "b1", now: t0)
        let second = engine.connect(web, bootID: "b2", now: t0 + 100)
        #expect(transitions(second.effects).isEmpty, "presence does not blink")
        #expect(closes(second.effects).map(\.0) == [first.sessionID])
        #expect(closes(second.effects).map(\.1) == [.superseded])
        let opened = second.effects.compactMap { if case .sessionOpened(let s) = $0 { s } else { nil } }
        #expect(opened.first?.agentRestarted == true, "new boot id: the agent restarted")
        // The old socket closing later changes nothing.
        #expect(engine.disconnect(slot: first.slot, session: first.sessionID, kind: .abnormal(closeCode: nil), now: t0 + 150).isEmpty)
        #expect(engine.status(of: web)?.state == .online)
    }

    @Test func afterARestartAnUnknownAgentGetsOneTimeoutToReturn() {
        var engine = LivenessEngine(configuration: config)
        let db = AgentID("db-01")!
        engine.restore(agent: web, state: .unknown, since: t0 - 60_000, lastSeen: t0 - 60_000, timeoutMs: 3000, now: t0)
        engine.restore(agent: db, state: .unknown, since: t0 - 60_000, lastSeen: t0 - 60_000, timeoutMs: 3000, now: t0)
        #expect(engine.sweep(now: t0 + 2999).isEmpty, "monitor downtime is never charged to agents")
        let back = engine.connect(web, now: t0 + 1000)
        #expect(transitions(back.effects).map { "\($0.from!.rawValue)>\($0.to.rawValue):\($0.reason.rawValue)" } == ["unknown>online:connected"])
        _ = engine.signOfLife(slot: back.slot, session: back.sessionID, now: t0 + 2000)
        let gone = transitions(engine.sweep(now: t0 + 3005))
        #expect(gone.map(\.agentID) == [db])
        #expect(gone.first?.reason == .timeout)
        #expect(gone.first?.effectiveAt == t0 + 3000)
    }

    @Test func aFleetReturningTogetherGetsTheReadmissionTimeOnTopOfItsTimeout() {
        var engine = LivenessEngine(configuration: config)
        engine.restore(agent: web, state: .unknown, since: t0 - 60_000, lastSeen: t0 - 60_000, timeoutMs: 3000, readmissionMs: 10_000, now: t0)
        #expect(engine.sweep(now: t0 + 12_999).isEmpty, "the server's own handshake pacing is not charged to the agent")
        let gone = transitions(engine.sweep(now: t0 + 13_000))
        #expect(gone.map(\.reason) == [.timeout])
        #expect(gone.first?.effectiveAt == t0 + 13_000)
    }

    @Test func aPongAloneMakesTheSessionsCountersDueForTheHistory() {
        var engine = LivenessEngine(configuration: config)
        let a = engine.connect(web, now: t0)
        _ = engine.takeDirtyCounters()
        #expect(engine.takeDirtyCounters().isEmpty)
        engine.pong(slot: a.slot, session: a.sessionID, rttMs: 0.5, now: t0 + 100)
        let due = engine.takeDirtyCounters()
        #expect(due.map(\.rttMs) == [0.5])
        #expect(due.map(\.lastSeen) == [t0 + 100])
        #expect(engine.takeDirtyCounters().isEmpty, "written once")
    }

    @Test func stoppingMovesEveryPresentAgentToUnknownAndClosesWith1001() {
        var engine = LivenessEngine(configuration: config)
        let a = engine.connect(web, now: t0)
        let b = engine.connect(AgentID("db-01")!, now: t0)
        _ = engine.disconnect(slot: b.slot, session: b.sessionID, kind: .abnormal(closeCode: nil), now: t0 + 10)
        let c = engine.connect(AgentID("gone")!, now: t0)
        _ = engine.disconnect(slot: c.slot, session: c.sessionID, kind: .goodbye(closeCode: nil), now: t0 + 10)
        let effects = engine.stopAll(now: t0 + 100)
        let t = transitions(effects)
        #expect(Set(t.map(\.agentID.rawValue)) == ["web-01", "db-01"])
        #expect(t.allSatisfy { $0.to == .unknown && $0.reason == .serverStopped })
        #expect(closes(effects).map(\.0) == [a.sessionID])
        #expect(closes(effects).map(\.1) == [.goingAway])
        #expect(engine.sweep(now: t0 + 1_000_000).isEmpty)
    }

    @Test func grantsRequestedIntervalsWithinBoundsAndScalesTheTimeout() {
        #expect(config.grant(requestedIntervalMs: nil) == (1000, 3000))
        #expect(config.grant(requestedIntervalMs: 2000) == (2000, 6000))
        #expect(config.grant(requestedIntervalMs: 10) == (100, 300))
        #expect(config.grant(requestedIntervalMs: 10_000_000) == (60_000, 180_000))
    }

    @Test func oneSweepServesThousandsOfAgentsAndFiresEachDeadlineOnce() {
        var engine = LivenessEngine(configuration: config)
        var accepted: [LivenessEngine.Accepted] = []
        for i in 0..<5000 {
            accepted.append(engine.connect(AgentID("a\(i)")!, now: t0 + Millis(i % 1000)))
        }
        // Half keep beating.
        for (i, a) in accepted.enumerated() where i % 2 == 0 {
            _ = engine.signOfLife(slot: a.slot, session: a.sessionID, now: t0 + 2500)
        }
        let fired = transitions(engine.sweep(now: t0 + 4999))
        #expect(fired.filter { $0.to == .offline }.count == 2500)
        #expect(Set(fired.filter { $0.to == .offline }.map(\.agentID)).count == 2500)
        #expect(zip(fired, fired.dropFirst()).allSatisfy { $0.id < $1.id }, "transition ids increase")
    }
}
