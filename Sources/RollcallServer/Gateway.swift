import Logging
import RollcallCore
import RollcallStore
import Synchronization

/// A live agent connection as the gateway sees it: enough to close it from any thread.
public final class ConnectionHandle: Sendable {
    let closeAction: @Sendable (CloseCode, String) -> Void
    /// Connections that share an event loop share this key; pings for them go over in one hop.
    let loopKey: ObjectIdentifier
    /// Runs a closure on the connection's event loop.
    let onLoop: @Sendable (@escaping @Sendable () -> Void) -> Void
    /// Pings; only on the connection's event loop.
    let pingHere: @Sendable () -> Void

    init(
        close: @escaping @Sendable (CloseCode, String) -> Void, loopKey: ObjectIdentifier,
        onLoop: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void, pingHere: @escaping @Sendable () -> Void
    ) {
        self.closeAction = close
        self.loopKey = loopKey
        self.onLoop = onLoop
        self.pingHere = pingHere
    }

    func close(code: CloseCode, reason: String) { closeAction(code, reason) }
}

/// Counts of refusals and protocol violations by cause, kept for tests and the summary and
/// forwarded to `/metrics`.
public final class GatewayCounters: Sendable {
    public struct Snapshot: Sendable, Equatable {
        public var refusals: [String: Int] = [:]
        public var violations: [String: Int] = [:]
        public var pongs: Int = 0
    }
    private let state = Mutex(Snapshot())
    public let metrics: ServerMetrics
    private let heartbeatTotal = Atomic<Int>(0)
    private let rate = Mutex((at: ContinuousClock.now, total: 0, perSecond: 0.0))

    func heartbeats(_ n: Int) {
        heartbeatTotal.add(n, ordering: .relaxed)
        metrics.heartbeatsSeen(n)
    }

    public var totalHeartbeats: Int { heartbeatTotal.load(ordering: .relaxed) }

    /// Heartbeats per second, smoothed; refreshed by the sweeper about once a second.
    public var heartbeatsPerSecond: Double { rate.withLock { $0.perSecond } }

    func updateRate(now: ContinuousClock.Instant = .now) {
        let total = totalHeartbeats
        rate.withLock { r in
            let elapsed = now - r.at
            guard elapsed >= .seconds(1) else { return }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let instant = Double(total - r.total) / seconds
            r.perSecond = r.perSecond == 0 ? instant : r.perSecond * 0.5 + instant * 0.5
            r = (now, total, r.perSecond)
        }
    }

    public init(metrics: ServerMetrics = ServerMetrics()) { self.metrics = metrics }
    public func refused(_ cause: String) {
        state.withLock { $0.refusals[cause, default: 0] += 1 }
        metrics.refused(cause)
    }
    public func violated(_ cause: String) {
        state.withLock { $0.violations[cause, default: 0] += 1 }
        metrics.violated(cause)
    }
    public func ponged() { state.withLock { $0.pongs += 1 } }
    public var snapshot: Snapshot { state.withLock { $0 } }
}

/// The one owner of liveness state: the pure ``LivenessEngine`` and the open connections, behind a
/// single lock. Event-loop threads call in for each message; the sweeper calls ``sweep()``.
///
/// Effects are applied inside the lock so the history queue and the transition hub see
/// transitions in id order; only socket closes happen outside it.
public final class Gateway: Sendable {
    struct State {
        var engine: LivenessEngine
        var connections: [Int64: ConnectionHandle] = [:]
        var stopping = false
        var credentials: [AgentID: Credential] = [:]
        var owners: [String: AgentID] = [:]
        /// Sessions still to ping in the current ping round.
        var pingRound: [Int64] = []
        var pingCredit: Double = 0
    }

    let state: Mutex<State>
    public let clock: any PresenceClock
    public let history: HistoryQueue
    public let hub: TransitionHub
    public let counters = GatewayCounters()
    private let agentSockets = Atomic<Int>(0)

    /// Agent sockets open on the event loops (counted by their handlers).
    public var openAgentSockets: Int { agentSockets.load(ordering: .relaxed) }
    func agentSocketOpened() { agentSockets.add(1, ordering: .relaxed) }
    func agentSocketClosed() { agentSockets.subtract(1, ordering: .relaxed) }
    let logger: Logger

    public init(engine: LivenessEngine, clock: any PresenceClock, history: HistoryQueue, hub: TransitionHub, logger: Logger) {
        self.state = Mutex(State(engine: engine))
        self.livenessConfiguration = engine.configuration
        self.clock = clock
        self.history = history
        self.hub = hub
        self.logger = logger
    }

    public var isStopping: Bool { state.withLock { $0.stopping } }

    // MARK: Connection lifecycle

    /// Accepts a connection, or returns `nil` when the server is stopping.
    func accept(_ request: HandshakeRequest, remoteAddress: String?, handle: ConnectionHandle) -> LivenessEngine.Accepted? {
        let now = clock.now()
        let (accepted, closes) = state.withLock { s -> (LivenessEngine.Accepted?, [(ConnectionHandle, CloseCode, String)]) in
            guard !s.stopping else { return (nil, []) }
            let accepted = s.engine.connect(
                request.agentID, requestedIntervalMs: request.requestedIntervalMs, bootID: request.bootID, remoteAddress: remoteAddress,
                now: now)
            let closes = apply(accepted.effects, state: &s)
            s.connections[accepted.sessionID] = handle
            return (accepted, closes)
        }
        perform(closes)
        if let accepted {
            counters.metrics.accepted()
            logger.debug(
                "agent connected",
                metadata: ["agent": "\(request.agentID)", "session": "\(accepted.sessionID)", "remote": "\(remoteAddress ?? "-")"])
        }
        return accepted
    }

    /// A heartbeat arrived; returns the server time to put in the ack.
    @inline(__always)
    func heartbeat(slot: LivenessEngine.Slot, session: Int64, sentMs: Int64? = nil) -> Millis {
        let now = clock.now()
        let closes = state.withLock { s -> [(ConnectionHandle, CloseCode, String)] in
            let effects = s.engine.signOfLife(slot: slot, session: session, now: now, sentMs: sentMs)
            return effects.isEmpty ? [] : apply(effects, state: &s)
        }
        if !closes.isEmpty { perform(closes) }
        return now
    }

    func hello(_ hello: Hello, agent: AgentID, slot: LivenessEngine.Slot, session: Int64) {
        let now = clock.now()
        state.withLock { s in
            let effects = s.engine.signOfLife(slot: slot, session: session, now: now, heartbeat: false)
            _ = apply(effects, state: &s)
            history.append(.hello(agent, hello))
        }
    }

    func pong(slot: LivenessEngine.Slot, session: Int64, rttMs: Double) {
        let now = clock.now()
        state.withLock { $0.engine.pong(slot: slot, session: session, rttMs: rttMs, now: now) }
        counters.ponged()
        counters.metrics.rttSample(ms: rttMs)
    }

    /// Pings a share of the open connections, so every one is pinged once per `interval`
    /// without a timer per connection. Called from the sweeper with the time since its last call.
    public func pingSome(elapsed: Duration, interval: Duration) {
        let handles = state.withLock { s -> [ConnectionHandle] in
            guard !s.connections.isEmpty else { return [] }
            let share = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let period = Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18
            s.pingCredit += Double(s.connections.count) * share / max(period, 0.001)
            var out: [ConnectionHandle] = []
            while s.pingCredit >= 1 {
                if s.pingRound.isEmpty { s.pingRound = Array(s.connections.keys) }
                guard let session = s.pingRound.popLast() else { break }
                s.pingCredit -= 1
                if let handle = s.connections[session] { out.append(handle) }
            }
            return out
        }
        // One hop to each event loop for all of its pings, instead of a wakeup per ping.
        var byLoop: [ObjectIdentifier: [ConnectionHandle]] = [:]
        for handle in handles { byLoop[handle.loopKey, default: []].append(handle) }
        for group in byLoop.values {
            group[0].onLoop { for handle in group { handle.pingHere() } }
        }
    }

    func status(_ status: JSONValue, agent: AgentID) {
        history.append(.status(agent, status))
    }

    /// The connection ended (or the server decided to end it).
    func disconnect(slot: LivenessEngine.Slot, session: Int64, kind: DisconnectKind) {
        let now = clock.now()
        let closes = state.withLock { s -> [(ConnectionHandle, CloseCode, String)] in
            s.connections.removeValue(forKey: session)
            let effects = s.engine.disconnect(slot: slot, session: session, kind: kind, now: now)
            return apply(effects, state: &s)
        }
        perform(closes)
    }

    // MARK: Time and stopping

    /// Fires due deadlines. Called by the sweeper service every few milliseconds.
    public func sweep() {
        let now = clock.now()
        let closes = state.withLock { s -> [(ConnectionHandle, CloseCode, String)] in
            guard let next = s.engine.nextDeadline, next <= now else { return [] }
            return apply(s.engine.sweep(now: now), state: &s)
        }
        perform(closes)
    }

    /// Refuses new connections, moves every present agent to `unknown` (`server_stopped`) and
    /// closes every socket with 1001. Idempotent.
    public func stop() {
        let now = clock.now()
        let closes = state.withLock { s -> [(ConnectionHandle, CloseCode, String)] in
            guard !s.stopping else { return [] }
            s.stopping = true
            return apply(s.engine.stopAll(now: now), state: &s)
        }
        if !closes.isEmpty { logger.info("closing agent connections", metadata: ["count": "\(closes.count)"]) }
        perform(closes)
    }

    public func takeDirtyCounters() -> [LivenessEngine.SessionCounter] {
        state.withLock { $0.engine.takeDirtyCounters() }
    }

    // MARK: Watchers

    /// Starts a watcher atomically with the stream: the cursor (last transition id so far), a
    /// snapshot of every agent when asked, the remembered transitions after `after`, and a
    /// listener for everything later.
    func beginWatch(after: Int64?, snapshot: Bool, listener: @escaping TransitionHub.Listener)
        -> (cursor: Int64, snapshot: [LivenessEngine.AgentStatus]?, backlog: [Transition], listenerID: Int)
    {
        state.withLock { s in
            let cursor = s.engine.nextTransitionID - 1
            let agents = snapshot ? s.engine.allStatuses() : nil
            let (id, backlog, _) = hub.listen(after: after ?? cursor, listener)
            return (cursor, agents, backlog, id)
        }
    }

    // MARK: Operators

    /// Ends an agent's presence on an operator's word; returns whether it was connected.
    @discardableResult
    public func end(_ id: AgentID, removed: Bool) -> Bool {
        let now = clock.now()
        let closes = state.withLock { s -> [(ConnectionHandle, CloseCode, String)] in
            apply(s.engine.end(id, removed: removed, now: now), state: &s)
        }
        perform(closes)
        return !closes.isEmpty
    }

    /// Replaces what the gateway knows of an agent's credentials (registration, removal, start).
    public func setCredential(_ credential: Credential?, for id: AgentID) {
        state.withLock { s in
            if let old = s.credentials[id]?.tokenHash { s.owners.removeValue(forKey: old) }
            s.credentials[id] = credential
            if let hash = credential?.tokenHash { s.owners[hash] = id }
        }
    }

    /// A newly registered agent is known (offline) before it first connects, so the summary, the
    /// listing and the watch snapshot agree.
    public func registered(_ id: AgentID) {
        let now = clock.now()
        state.withLock { s in
            guard s.engine.slot(of: id) == nil else { return }
            s.engine.restore(agent: id, state: .offline, since: now, lastSeen: nil, timeoutMs: nil, now: now)
        }
    }

    func credential(for id: AgentID) -> Credential? { state.withLock { $0.credentials[id] } }

    func agent(withTokenHash hash: String) -> AgentID? { state.withLock { $0.owners[hash] } }

    // MARK: Reading

    public func status(of id: AgentID) -> LivenessEngine.AgentStatus? {
        state.withLock { $0.engine.status(of: id) }
    }

    public func countsByState() -> [PresenceState: Int] {
        state.withLock { $0.engine.countsByState() }
    }

    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Fixed for the life of the gateway, so read without the lock.
    public let livenessConfiguration: LivenessConfiguration

    /// The id of the latest transition (the watch cursor now).
    public var lastTransitionID: Int64 { state.withLock { $0.engine.nextTransitionID - 1 } }

    // MARK: Effects

    /// Queues history and broadcasts; returns the sockets to close once the lock is released.
    private func apply(_ effects: [LivenessEffect], state s: inout State) -> [(ConnectionHandle, CloseCode, String)] {
        var closes: [(ConnectionHandle, CloseCode, String)] = []
        for effect in effects {
            switch effect {
            case .transition(let t):
                history.append(.transition(t))
                hub.publish(t)
                counters.metrics.transition(t)
            case .sessionOpened(let start):
                history.append(.sessionOpened(start))
            case .sessionClosed(let end):
                history.append(.sessionClosed(end))
            case .close(let session, let code, let reason):
                if let handle = s.connections.removeValue(forKey: session) { closes.append((handle, code, reason)) }
            }
        }
        return closes
    }

    private func perform(_ closes: [(ConnectionHandle, CloseCode, String)]) {
        for (handle, code, reason) in closes { handle.close(code: code, reason: reason) }
    }
}
