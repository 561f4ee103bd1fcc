/// The pure liveness core: every agent's presence state machine and one deadline structure.
///
/// It performs no I/O and reads no clock: each call takes `now` (server monotonic milliseconds,
/// see ``Millis``) and returns the ``LivenessEffect``s the shell must carry out. Its owner
/// serialises access (a lock or an actor); the heartbeat path, ``signOfLife(slot:session:now:heartbeat:)``,
/// touches one slot and allocates nothing in the common case.
public struct LivenessEngine: Sendable {
    /// Index of an agent's record; stable for the life of the engine.
    public typealias Slot = Int32

    struct Record: Sendable {
        var id: AgentID
        var state: PresenceState?
        var stateSince: Millis
        var session: Int64?
        var lastSeen: Millis
        var intervalMs: Int64
        var timeoutMs: Int64
        var heartbeats: Int64 = 0
        var flushedHeartbeats: Int64 = 0
        var flushedLastSeen: Millis = 0
        /// The last pong written by a checkpoint: a pong alone (an agent that answers pings but has
        /// not beaten since) still moves `last_seen` and the RTT in the history.
        var flushedLastPong: Millis = 0
        var bootID: String?
        /// Arrival of the last heartbeat on the current session, for inter-arrival times.
        var lastBeat: Millis?
        var estimate = PhiAccrualEstimate()
        /// Smoothed ping round trip on the current session.
        var rttMs: Double?
        /// Smoothed agent wall clock minus server receive time, from `sent_ms` (includes the
        /// one-way network delay). Reported only; it never decides a transition.
        var skewMs: Double?
        /// Last pong: proof the TCP path works; reported, but only messages hold the deadline.
        var lastPong: Millis = 0
        var warmupDeadline: Millis?
        /// Due time of this record's live heap entry, if any.
        var scheduled: Millis?
        /// Whether this engine times the agent. With several nodes (SPEC §10) an agent connected
        /// to another node is known here (its row exists) but owned there: never timed, never
        /// moved, until it connects here or this node adopts it.
        var owned = true
    }

    public private(set) var configuration: LivenessConfiguration
    var records: [Record] = []
    var index: [AgentID: Slot] = [:]
    var deadlines = DeadlineHeap()
    public private(set) var nextTransitionID: Int64
    public private(set) var nextSessionID: Int64
    /// The end (exclusive) of the block of session ids being handed out. Unbounded with one node;
    /// with several, each node reserves blocks from the database so their ids never collide.
    public private(set) var sessionIDEnd: Int64
    /// The next block, reserved before the current one runs out.
    public private(set) var spareSessionIDs: Range<Int64>?

    public init(
        configuration: LivenessConfiguration = .init(), nextTransitionID: Int64 = 1, nextSessionID: Int64 = 1,
        sessionIDEnd: Int64 = .max
    ) {
        self.configuration = configuration
        self.nextTransitionID = nextTransitionID
        self.nextSessionID = nextSessionID
        self.sessionIDEnd = max(sessionIDEnd, nextSessionID)
    }

    /// How many session ids are left before a new block is needed (the spare block included).
    public var sessionIDsLeft: Int64 { (sessionIDEnd - nextSessionID) &+ Int64(spareSessionIDs?.count ?? 0) }

    /// Whether ``connect(_:requestedIntervalMs:bootID:remoteAddress:now:)`` has an id to give.
    public var canOpenSession: Bool { nextSessionID < sessionIDEnd || spareSessionIDs?.isEmpty == false }

    /// Adds a block of session ids for after the current one.
    public mutating func addSessionIDs(_ block: Range<Int64>) {
        guard !block.isEmpty else { return }
        if nextSessionID >= sessionIDEnd {
            nextSessionID = block.lowerBound
            sessionIDEnd = block.upperBound
        } else {
            spareSessionIDs = block
        }
    }

    mutating func takeSessionID() -> Int64 {
        if nextSessionID >= sessionIDEnd, let spare = spareSessionIDs, !spare.isEmpty {
            nextSessionID = spare.lowerBound
            sessionIDEnd = spare.upperBound
            spareSessionIDs = nil
        }
        let id = nextSessionID
        nextSessionID += 1
        return id
    }

    // MARK: Restoring state after a start

    /// Loads an agent known from the history. An agent in `unknown` gets a warm-up of one timeout
    /// from `now`, plus `readmissionMs` (the time the server needs to let every returning agent in
    /// at its handshake rate), before it may be called offline: monitor downtime is never charged
    /// to agents.
    ///
    /// With `owned: false` the agent is another node's: known, never timed here.
    public mutating func restore(
        agent id: AgentID, state: PresenceState, since: Millis, lastSeen: Millis?, timeoutMs: Int64?, bootID: String? = nil,
        readmissionMs: Int64 = 0, owned: Bool = true, now: Millis
    ) {
        let slot = self.slot(for: id, now: now)
        records[Int(slot)].owned = owned
        records[Int(slot)].warmupDeadline = nil
        records[Int(slot)].bootID = bootID
        records[Int(slot)].state = state
        records[Int(slot)].stateSince = since
        records[Int(slot)].lastSeen = lastSeen ?? since
        records[Int(slot)].flushedLastSeen = lastSeen ?? since
        if let timeoutMs { records[Int(slot)].timeoutMs = timeoutMs }
        if state == .unknown, owned {
            let deadline = now + records[Int(slot)].timeoutMs + max(0, readmissionMs)
            records[Int(slot)].warmupDeadline = deadline
            schedule(slot, at: deadline)
        }
    }

    // MARK: Connections

    public struct Accepted: Sendable, Equatable {
        public var slot: Slot
        public var sessionID: Int64
        public var intervalMs: Int64
        public var timeoutMs: Int64
        public var effects: [LivenessEffect]
    }

    /// A connection for `id` was accepted. A connection already open for the same id is
    /// superseded (close 4001) without any transition: presence does not blink.
    public mutating func connect(
        _ id: AgentID, requestedIntervalMs: Int64? = nil, bootID: String? = nil, remoteAddress: String? = nil, now: Millis
    ) -> Accepted {
        let slot = self.slot(for: id, now: now)
        var effects: [LivenessEffect] = []
        var r = records[Int(slot)]
        if let old = r.session {
            effects.append(.close(sessionID: old, code: .superseded, reason: "superseded by a newer connection"))
            effects.append(
                .sessionClosed(
                    SessionEnd(
                        id: old, agentID: id, endedAt: now, reason: .superseded, closeCode: Int(CloseCode.superseded.rawValue),
                        heartbeats: r.heartbeats, lastSeen: r.lastSeen, rttMs: r.rttMs)))
        }
        let grant = configuration.grant(requestedIntervalMs: requestedIntervalMs)
        let sessionID = takeSessionID()
        let restarted: Bool? = (r.bootID != nil && bootID != nil) ? (r.bootID != bootID) : nil
        effects.append(
            .sessionOpened(
                SessionStart(
                    id: sessionID, agentID: id, startedAt: now, remoteAddress: remoteAddress, bootID: bootID,
                    intervalMs: grant.intervalMs, timeoutMs: grant.timeoutMs, agentRestarted: restarted)))
        r.session = sessionID
        r.lastSeen = now
        r.intervalMs = grant.intervalMs
        r.timeoutMs = grant.timeoutMs
        r.heartbeats = 0
        r.flushedHeartbeats = 0
        r.lastBeat = nil
        r.rttMs = nil
        r.bootID = bootID ?? r.bootID
        r.warmupDeadline = nil
        r.owned = true
        records[Int(slot)] = r
        switch r.state {
        case nil, .offline, .unknown:
            effects.append(.transition(transition(slot, to: .online, reason: .connected, effectiveAt: now, now: now)))
        case .suspect:
            effects.append(.transition(transition(slot, to: .online, reason: .reconnected, effectiveAt: now, now: now)))
        case .online:
            break
        }
        scheduleNextCheck(slot)
        return Accepted(slot: slot, sessionID: sessionID, intervalMs: grant.intervalMs, timeoutMs: grant.timeoutMs, effects: effects)
    }

    /// Any valid message (or, with `heartbeat: false`, any other sign of life) on `session`.
    /// Returns the `suspect → online` transition when the agent was suspect, else nothing.
    public mutating func signOfLife(slot: Slot, session: Int64, now: Millis, heartbeat: Bool = true, sentMs: Int64? = nil) -> [LivenessEffect] {
        let i = Int(slot)
        guard records[i].session == session else { return [] }
        if let sentMs {
            let skew = Double(sentMs - now)
            records[i].skewMs = records[i].skewMs.map { $0 * 0.75 + skew * 0.25 } ?? skew
        }
        if now > records[i].lastSeen { records[i].lastSeen = now }
        if heartbeat {
            records[i].heartbeats &+= 1
            if case .phiAccrual = configuration.detector {
                if let last = records[i].lastBeat { records[i].estimate.record(intervalMs: Double(now - last)) }
                records[i].lastBeat = now
            }
        }
        guard records[i].state == .suspect else { return [] }
        let t = transition(slot, to: .online, reason: .heartbeat, effectiveAt: now, now: now)
        scheduleNextCheck(slot)
        return [.transition(t)]
    }

    /// A pong arrived on `session` after `rttMs`: recorded for the RTT and `last_seen` reports.
    /// It does not hold the liveness deadline: a client whose library answers pings while its
    /// agent sends nothing is still timed out.
    public mutating func pong(slot: Slot, session: Int64, rttMs: Double, now: Millis) {
        let i = Int(slot)
        guard records[i].session == session else { return }
        records[i].lastPong = now
        records[i].rttMs = records[i].rttMs.map { $0 * 0.75 + rttMs * 0.25 } ?? rttMs
    }

    /// The connection for `session` ended. Ignored when `session` is no longer the agent's
    /// current one (it was superseded and its row is already closed).
    public mutating func disconnect(slot: Slot, session: Int64, kind: DisconnectKind, now: Millis) -> [LivenessEffect] {
        let i = Int(slot)
        guard records[i].session == session else { return [] }
        let r = records[i]
        let endReason: SessionEndReason
        var code: Int?
        var target: (PresenceState, TransitionReason)?
        switch kind {
        case .goodbye(let c):
            endReason = .goodbye
            code = c ?? 1000
            target = (.offline, .goodbye)
        case .abnormal(let c):
            endReason = .disconnected
            code = c ?? 1006
            if r.state == .online { target = (.suspect, .disconnected) }
        case .protocolViolation(let c):
            endReason = .protocolError
            code = Int(c.rawValue)
            if r.state == .online { target = (.suspect, .disconnected) }
        case .kicked:
            endReason = .kicked
            code = Int(CloseCode.kicked.rawValue)
            target = (.offline, .kicked)
        case .removed:
            endReason = .removed
            code = Int(CloseCode.removed.rawValue)
            target = (.offline, .removed)
        case .serverStopping:
            endReason = .serverStopped
            code = Int(CloseCode.goingAway.rawValue)
            if r.state == .online || r.state == .suspect { target = (.unknown, .serverStopped) }
        }
        var effects: [LivenessEffect] = [
            .sessionClosed(
                SessionEnd(
                    id: session, agentID: r.id, endedAt: now, reason: endReason, closeCode: code, heartbeats: r.heartbeats,
                    lastSeen: r.lastSeen, rttMs: r.rttMs))
        ]
        if let (state, reason) = target, state != r.state {
            effects.append(.transition(transition(slot, to: state, reason: reason, effectiveAt: now, now: now)))
        }
        records[i].session = nil
        records[i].flushedHeartbeats = r.heartbeats
        if records[i].state == .unknown { records[i].warmupDeadline = nil }
        scheduleNextCheck(slot)
        return effects
    }

    /// An operator ends an agent's presence: `kicked` (it may come back) or `removed` (its
    /// registration is gone). Closes its connection with 4002 or 4003.
    public mutating func end(_ id: AgentID, removed: Bool, now: Millis) -> [LivenessEffect] {
        guard let slot = index[id], records[Int(slot)].owned else { return [] }
        let i = Int(slot)
        if let session = records[i].session {
            let code: CloseCode = removed ? .removed : .kicked
            return [.close(sessionID: session, code: code, reason: removed ? "agent removed by an operator" : "kicked by an operator")]
                + disconnect(slot: slot, session: session, kind: removed ? .removed : .kicked, now: now)
        }
        guard records[i].state != nil, records[i].state != .offline else { return [] }
        records[i].warmupDeadline = nil
        return [.transition(transition(slot, to: .offline, reason: removed ? .removed : .kicked, effectiveAt: now, now: now))]
    }

    /// Every connected or suspect agent becomes `unknown` (`server_stopped`) and every open
    /// session is closed; the shell closes the sockets with 1001.
    ///
    /// With `handOff`, other nodes are running: the sockets and sessions close the same way but
    /// no agent changes state, since it is about to reconnect through the balancer to another
    /// node, which takes it over without a transition (SPEC §10). One that does not is set
    /// `unknown` by the node that takes over this node's leftovers.
    public mutating func stopAll(now: Millis, handOff: Bool = false) -> [LivenessEffect] {
        var effects: [LivenessEffect] = []
        for i in records.indices where records[i].owned {
            let slot = Slot(i)
            if handOff {
                if let session = records[i].session {
                    effects.append(.close(sessionID: session, code: .goingAway, reason: "server stopping"))
                    effects.append(.sessionClosed(sessionEnd(i, session: session, reason: .serverStopped, code: .goingAway, now: now)))
                }
                release(i)
                continue
            }
            if let session = records[i].session {
                effects.append(.close(sessionID: session, code: .goingAway, reason: "server stopping"))
                effects += disconnect(slot: slot, session: session, kind: .serverStopping, now: now)
            } else if records[i].state == .suspect || records[i].state == .online {
                effects.append(.transition(transition(slot, to: .unknown, reason: .serverStopped, effectiveAt: now, now: now)))
            }
        }
        return effects
    }

    // MARK: Several nodes

    /// Another node took the agent over (or its connection there is newer than ours): its socket
    /// here closes with 4001, its session ends `superseded`, and no transition is written, since
    /// it never stopped being observed. From now on the engine no longer times it.
    public mutating func relinquish(_ id: AgentID, now: Millis) -> [LivenessEffect] {
        guard let slot = index[id], records[Int(slot)].owned else { return [] }
        let i = Int(slot)
        var effects: [LivenessEffect] = []
        if let session = records[i].session {
            effects.append(.close(sessionID: session, code: .superseded, reason: "superseded by a connection to another node"))
            effects.append(.sessionClosed(sessionEnd(i, session: session, reason: .superseded, code: .superseded, now: now)))
        }
        release(i)
        return effects
    }

    /// This node lost its lease: every agent it holds is closed with 1001 and given up, with no
    /// transition (whoever took over the lease has written what the history needs).
    public mutating func relinquishAll(now: Millis) -> [LivenessEffect] {
        var effects: [LivenessEffect] = []
        for i in records.indices where records[i].owned {
            if let session = records[i].session {
                effects.append(.close(sessionID: session, code: .goingAway, reason: "this node lost its lease; reconnect"))
                effects.append(.sessionClosed(sessionEnd(i, session: session, reason: .serverStopped, code: .goingAway, now: now)))
            }
            release(i)
        }
        return effects
    }

    /// This node takes over an agent another node left (its lease lapsed): known in `state`
    /// since `since`, and, when `unknown`, given the §4 warm-up from `now` before it may be
    /// called offline.
    public mutating func adopt(_ id: AgentID, state: PresenceState, since: Millis, timeoutMs: Int64?, readmissionMs: Int64 = 0, now: Millis) {
        if let slot = index[id], records[Int(slot)].session != nil { return }  // connected here: ours already
        restore(agent: id, state: state, since: since, lastSeen: nil, timeoutMs: timeoutMs, readmissionMs: readmissionMs, now: now)
    }

    /// Whether the engine times this agent (with one node: every agent it knows).
    public func owns(_ id: AgentID) -> Bool { index[id].map { records[Int($0)].owned } ?? false }

    /// Another node's transition of an agent this node does not own, so that a later connection
    /// here starts from the state the history holds.
    public mutating func observe(_ t: Transition, now: Millis) {
        let slot = self.slot(for: t.agentID, now: now)
        let i = Int(slot)
        guard !records[i].owned || records[i].state == nil else { return }
        records[i].owned = false
        records[i].state = t.to
        records[i].stateSince = t.effectiveAt
    }

    mutating func release(_ i: Int) {
        records[i].session = nil
        records[i].flushedHeartbeats = records[i].heartbeats
        records[i].warmupDeadline = nil
        records[i].owned = false
        records[i].scheduled = nil  // its heap entry, if any, is now stale
    }

    func sessionEnd(_ i: Int, session: Int64, reason: SessionEndReason, code: CloseCode, now: Millis) -> SessionEnd {
        let r = records[i]
        return SessionEnd(
            id: session, agentID: r.id, endedAt: now, reason: reason, closeCode: Int(code.rawValue), heartbeats: r.heartbeats,
            lastSeen: r.lastSeen, rttMs: r.rttMs)
    }

    // MARK: Deadlines

    /// The earliest moment a call to ``sweep(now:)`` could do anything, if any.
    public var nextDeadline: Millis? { deadlines.top?.due }

    /// Fires every deadline due at `now`: `missed_heartbeat`, `timeout` (closing the socket
    /// with 4000 when it is still open) and the end of a warm-up.
    public mutating func sweep(now: Millis) -> [LivenessEffect] {
        var effects: [LivenessEffect] = []
        while let top = deadlines.top, top.due <= now {
            _ = deadlines.pop()
            let i = Int(top.slot)
            guard records[i].scheduled == top.due else { continue }  // stale entry
            records[i].scheduled = nil
            evaluate(top.slot, now: now, into: &effects)
            scheduleNextCheck(top.slot)
        }
        return effects
    }

    mutating func evaluate(_ slot: Slot, now: Millis, into effects: inout [LivenessEffect]) {
        let i = Int(slot)
        let r = records[i]
        guard r.owned else { return }
        switch r.state {
        case .online:
            let due = suspectDeadline(r)
            guard now >= due, r.session != nil else { return }
            effects.append(.transition(transition(slot, to: .suspect, reason: .missedHeartbeat, effectiveAt: due, now: now)))
            evaluate(slot, now: now, into: &effects)
        case .suspect:
            let due = r.lastSeen + r.timeoutMs
            guard now >= due else { return }
            if let session = r.session {
                effects.append(
                    .close(sessionID: session, code: .heartbeatTimeout, reason: "heartbeat timeout: silent for \(r.timeoutMs) ms"))
                effects.append(
                    .sessionClosed(
                        SessionEnd(
                            id: session, agentID: r.id, endedAt: now, reason: .timeout,
                            closeCode: Int(CloseCode.heartbeatTimeout.rawValue), heartbeats: r.heartbeats, lastSeen: r.lastSeen,
                            rttMs: r.rttMs)))
            }
            effects.append(.transition(transition(slot, to: .offline, reason: .timeout, effectiveAt: due, now: now)))
            records[i].session = nil
            records[i].flushedHeartbeats = r.heartbeats
        case .unknown:
            guard let due = r.warmupDeadline, now >= due else { return }
            records[i].warmupDeadline = nil
            effects.append(.transition(transition(slot, to: .offline, reason: .timeout, effectiveAt: due, now: now)))
        case .offline, nil:
            return
        }
    }

    /// When an online agent becomes suspect if nothing more is heard.
    func suspectDeadline(_ r: Record) -> Millis {
        if case .phiAccrual(let threshold) = configuration.detector, r.estimate.isReady {
            let silence = r.estimate.silenceMs(forPhi: threshold, minStddevMs: configuration.minStddevMs(intervalMs: r.intervalMs))
            // Never before a beat is due, never after the timeout.
            let clamped = min(max(silence.rounded(.up), Double(r.intervalMs)), Double(r.timeoutMs - 1))
            return r.lastSeen + Millis(clamped)
        }
        return r.lastSeen + configuration.missDelay(intervalMs: r.intervalMs)
    }

    func nextCheck(_ slot: Slot) -> Millis? {
        let r = records[Int(slot)]
        guard r.owned else { return nil }
        switch r.state {
        case .online: return r.session == nil ? nil : suspectDeadline(r)
        case .suspect: return r.lastSeen + r.timeoutMs
        case .unknown: return r.warmupDeadline
        case .offline, nil: return nil
        }
    }

    mutating func scheduleNextCheck(_ slot: Slot) {
        if let due = nextCheck(slot) { schedule(slot, at: due) }
    }

    mutating func schedule(_ slot: Slot, at due: Millis) {
        if let current = records[Int(slot)].scheduled, current <= due { return }
        records[Int(slot)].scheduled = due
        deadlines.push(.init(due: due, slot: slot))
    }

    // MARK: Records

    mutating func slot(for id: AgentID, now: Millis) -> Slot {
        if let slot = index[id] { return slot }
        let slot = Slot(records.count)
        let grant = configuration.grant(requestedIntervalMs: nil)
        records.append(
            Record(id: id, state: nil, stateSince: now, session: nil, lastSeen: now, intervalMs: grant.intervalMs, timeoutMs: grant.timeoutMs))
        index[id] = slot
        return slot
    }

    mutating func transition(_ slot: Slot, to state: PresenceState, reason: TransitionReason, effectiveAt: Millis, now: Millis) -> Transition {
        let i = Int(slot)
        // Intervals must tile time: a transition never takes effect before the current state began.
        let effective = max(effectiveAt, records[i].stateSince)
        let t = Transition(
            id: nextTransitionID, agentID: records[i].id, from: records[i].state, to: state, reason: reason,
            effectiveAt: effective, detectedAt: now, sessionID: records[i].session)
        nextTransitionID += 1
        records[i].state = state
        records[i].stateSince = effective
        return t
    }
}

// MARK: Reading the engine

extension LivenessEngine {
    /// What the engine knows of one agent right now.
    public struct AgentStatus: Sendable, Equatable {
        public var id: AgentID
        public var state: PresenceState?
        public var since: Millis
        public var lastSeen: Millis
        public var sessionID: Int64?
        public var intervalMs: Int64
        public var timeoutMs: Int64
        public var heartbeats: Int64
        /// The moment the agent would go offline if nothing more is heard, when one applies.
        public var offlineAt: Millis?
        /// When it becomes suspect if nothing more is heard (online agents only).
        public var suspectAt: Millis?
        /// The phi detector's estimate, when that detector is in use.
        public var estimate: PhiAccrualEstimate?
        /// Smoothed ping round trip of the current session.
        public var rttMs: Double?
        /// The latest sign of life of any kind, pongs included.
        public var lastSignOfLife: Millis
        /// Smoothed agent clock − server clock at receipt, when the agent sends `sent_ms`.
        public var skewMs: Double?
    }

    public func slot(of id: AgentID) -> Slot? { index[id] }

    public func status(of id: AgentID) -> AgentStatus? {
        guard let slot = index[id] else { return nil }
        return status(slot: slot)
    }

    public func status(slot: Slot) -> AgentStatus {
        let r = records[Int(slot)]
        var offlineAt: Millis?
        var suspectAt: Millis?
        switch r.state {
        case .online:
            if r.session != nil {
                offlineAt = r.lastSeen + r.timeoutMs
                suspectAt = suspectDeadline(r)
            }
        case .suspect: offlineAt = r.lastSeen + r.timeoutMs
        case .unknown: offlineAt = r.warmupDeadline
        case .offline, nil: break
        }
        return AgentStatus(
            id: r.id, state: r.state, since: r.stateSince, lastSeen: r.lastSeen, sessionID: r.session, intervalMs: r.intervalMs,
            timeoutMs: r.timeoutMs, heartbeats: r.heartbeats, offlineAt: offlineAt, suspectAt: suspectAt,
            estimate: configuration.detector == .fixed ? nil : r.estimate, rttMs: r.rttMs, lastSignOfLife: max(r.lastSeen, r.lastPong),
            skewMs: r.skewMs)
    }

    public var agentCount: Int { records.count }

    /// Every agent, in slot order.
    public func allStatuses() -> [AgentStatus] { records.indices.map { status(slot: Slot($0)) } }

    public func countsByState() -> [PresenceState: Int] {
        var counts: [PresenceState: Int] = [:]
        for r in records { if let s = r.state { counts[s, default: 0] += 1 } }
        return counts
    }

    /// Counters of open sessions that changed since the last call, for the periodic checkpoint.
    public struct SessionCounter: Sendable, Equatable {
        public var sessionID: Int64
        public var agentID: AgentID
        public var heartbeats: Int64
        public var lastSeen: Millis
        public var rttMs: Double?

        public init(sessionID: Int64, agentID: AgentID, heartbeats: Int64, lastSeen: Millis, rttMs: Double? = nil) {
            self.sessionID = sessionID
            self.agentID = agentID
            self.heartbeats = heartbeats
            self.lastSeen = lastSeen
            self.rttMs = rttMs
        }
    }

    public mutating func takeDirtyCounters() -> [SessionCounter] {
        var out: [SessionCounter] = []
        for i in records.indices {
            guard let session = records[i].session else { continue }
            if records[i].heartbeats != records[i].flushedHeartbeats || records[i].lastSeen != records[i].flushedLastSeen
                || records[i].lastPong != records[i].flushedLastPong
            {
                out.append(
                    .init(
                        sessionID: session, agentID: records[i].id, heartbeats: records[i].heartbeats,
                        lastSeen: max(records[i].lastSeen, records[i].lastPong), rttMs: records[i].rttMs))
                records[i].flushedHeartbeats = records[i].heartbeats
                records[i].flushedLastSeen = records[i].lastSeen
                records[i].flushedLastPong = records[i].lastPong
            }
        }
        return out
    }
}
