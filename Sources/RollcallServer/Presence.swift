import Logging
import RollcallCore
import RollcallStore
import Synchronization

/// A live agent connection as the presence owner sees it: enough to close or ping it from any
/// thread.
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

/// The one owner of presence: the pure ``LivenessEngine`` and the open connections, behind one
/// lock. Event-loop threads call in for each message; the sweeper calls ``sweep()``.
///
/// Under its lock it does exactly two things: advance the engine, and append the engine's
/// history effects to the ``Outbox`` (so they stay in the order they happened). Everything else
/// happens after the lock is released, by someone else: sockets are closed here once the lock
/// is dropped; the history writer commits the outbox and only then publishes transitions to the
/// ``TransitionHub``. Credentials live in ``Admission``; ping pacing in the sweeper.
public final class Presence: Sendable {
    struct State {
        var engine: LivenessEngine
        var connections: [Int64: ConnectionHandle] = [:]
        /// No new connection, no deadline fires: the stop is being decided.
        var stopping = false
        /// Every agent was closed and given up or made unknown.
        var stopped = false
    }

    let state: Mutex<State>
    public let clock: any PresenceClock
    public let outbox: Outbox
    public let counters: ServerCounters
    private let agentSockets = Atomic<Int>(0)
    let logger: Logger

    /// Agent sockets open on the event loops (counted by their handlers).
    public var openAgentSockets: Int { agentSockets.load(ordering: .relaxed) }
    func agentSocketOpened() { agentSockets.add(1, ordering: .relaxed) }
    func agentSocketClosed() { agentSockets.subtract(1, ordering: .relaxed) }

    public init(
        engine: LivenessEngine, clock: any PresenceClock, outbox: Outbox, counters: ServerCounters = ServerCounters(), handshakesPerSecond: Double = 0,
        logger: Logger
    ) {
        self.handshakesPerSecond = handshakesPerSecond
        self.state = Mutex(State(engine: engine))
        self.livenessConfiguration = engine.configuration
        self.clock = clock
        self.outbox = outbox
        self.counters = counters
        self.logger = logger
    }

    public var isStopping: Bool { state.withLock { $0.stopping } }

    // MARK: Connection lifecycle

    /// Accepts a connection, or returns `nil` when the server is stopping.
    func accept(_ request: HandshakeRequest, remoteAddress: String?, handle: ConnectionHandle) -> LivenessEngine.Accepted? {
        let now = clock.now()
        let (accepted, closes) = state.withLock { s -> (LivenessEngine.Accepted?, [Close]) in
            // No session id left: only with several nodes, if the writer could not reserve a new
            // block in time (the database is away). Refused like a stop; the agent retries.
            guard !s.stopping, s.engine.canOpenSession else { return (nil, []) }
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
        let closes = state.withLock { s -> [Close] in
            let effects = s.engine.signOfLife(slot: slot, session: session, now: now, sentMs: sentMs)
            return effects.isEmpty ? [] : apply(effects, state: &s)
        }
        if !closes.isEmpty { perform(closes) }
        return now
    }

    func hello(_ hello: Hello, agent: AgentID, slot: LivenessEngine.Slot, session: Int64) {
        let now = clock.now()
        let closes = state.withLock { s -> [Close] in
            let effects = s.engine.signOfLife(slot: slot, session: session, now: now, heartbeat: false)
            return effects.isEmpty ? [] : apply(effects, state: &s)
        }
        outbox.hello(hello, for: agent)
        if !closes.isEmpty { perform(closes) }
    }

    func status(_ status: JSONValue, agent: AgentID) {
        outbox.status(status, for: agent)
    }

    func pong(slot: LivenessEngine.Slot, session: Int64, rttMs: Double) {
        let now = clock.now()
        state.withLock { $0.engine.pong(slot: slot, session: session, rttMs: rttMs, now: now) }
        counters.ponged()
        counters.metrics.rttSample(ms: rttMs)
    }

    /// The connection ended (or the server decided to end it).
    func disconnect(slot: LivenessEngine.Slot, session: Int64, kind: DisconnectKind) {
        let now = clock.now()
        let closes = state.withLock { s -> [Close] in
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
        let closes = state.withLock { s -> [Close] in
            guard !s.stopping, let next = s.engine.nextDeadline, next <= now else { return [] }
            return apply(s.engine.sweep(now: now), state: &s)
        }
        perform(closes)
    }

    /// Refuses new connections, moves every present agent to `unknown` (`server_stopped`) and
    /// closes every socket with 1001. Idempotent. With `handOff` (other nodes run) no agent
    /// changes state: each reconnects to another node, which takes it over.
    public func stop(handOff: Bool = false) {
        let now = clock.now()
        let closes = state.withLock { s -> [Close] in
            guard !s.stopped else { return [] }
            s.stopping = true
            s.stopped = true
            return apply(s.engine.stopAll(now: now, handOff: handOff), state: &s)
        }
        if !closes.isEmpty { logger.info("closing agent connections", metadata: ["count": "\(closes.count)"]) }
        perform(closes)
    }

    /// Refuses new connections and holds every deadline while the stop is decided (with several
    /// nodes, whether any other runs to take the agents over): an agent must not be called
    /// suspect because this node is busy stopping.
    public func beginStop() {
        state.withLock { $0.stopping = true }
    }

    // MARK: Several nodes

    /// Other nodes took these agents over: their sockets here close with 4001, no transition.
    public func relinquish(_ ids: [AgentID]) {
        guard !ids.isEmpty else { return }
        let now = clock.now()
        let closes = state.withLock { s -> [Close] in
            var closes: [Close] = []
            for id in ids { closes += apply(s.engine.relinquish(id, now: now), state: &s) }
            return closes
        }
        if !closes.isEmpty {
            logger.info("agents moved to other nodes", metadata: ["count": "\(closes.count)"])
            counters.metrics.movedAway(closes.count)
        }
        perform(closes)
    }

    /// This node lost its lease: every agent is closed with 1001 and given up; it rejoins empty.
    public func relinquishAll() {
        let now = clock.now()
        let closes = state.withLock { s in apply(s.engine.relinquishAll(now: now), state: &s) }
        logger.warning("this node lost its lease: its agents were closed to reconnect elsewhere", metadata: ["count": "\(closes.count)"])
        perform(closes)
    }

    /// Agents of a node whose lease lapsed, now this node's to time (the unknown ones get their
    /// warm-up from now).
    public func adopt(_ agents: [(id: AgentID, state: PresenceState, since: Millis, timeoutMs: Int64?)]) {
        guard !agents.isEmpty else { return }
        let now = clock.now()
        let returning = agents.filter { $0.state == .unknown }.count
        let readmissionMs = RollcallApplication.readmissionMs(agents: returning, handshakesPerSecond: handshakesPerSecond)
        state.withLock { s in
            for agent in agents {
                s.engine.adopt(agent.id, state: agent.state, since: agent.since, timeoutMs: agent.timeoutMs, readmissionMs: readmissionMs, now: now)
            }
        }
    }

    /// Transitions other nodes committed: their agents' states, for the counts and for a later
    /// connection here.
    public func observe(_ transitions: [Transition]) {
        guard !transitions.isEmpty else { return }
        let now = clock.now()
        state.withLock { s in
            for t in transitions { s.engine.observe(t, now: now) }
        }
    }

    /// Session ids left before another block is needed (only bounded with several nodes).
    public var sessionIDsLeft: Int64 { state.withLock { $0.engine.sessionIDsLeft } }

    public func addSessionIDs(_ block: Range<Int64>) { state.withLock { $0.engine.addSessionIDs(block) } }

    /// Used to size an adopted fleet's warm-up; set once at start.
    let handshakesPerSecond: Double

    public func takeDirtyCounters() -> [LivenessEngine.SessionCounter] {
        state.withLock { $0.engine.takeDirtyCounters() }
    }

    // MARK: Pings

    /// The open sessions, for the sweeper's ping round.
    func sessionIDs() -> [Int64] { state.withLock { Array($0.connections.keys) } }

    /// The handles of those of `sessions` still open.
    func handles(_ sessions: some Sequence<Int64>) -> [ConnectionHandle] {
        state.withLock { s in sessions.compactMap { s.connections[$0] } }
    }

    // MARK: Operators

    /// Ends an agent's presence on an operator's word; returns whether it was connected.
    @discardableResult
    public func end(_ id: AgentID, removed: Bool) -> Bool {
        let now = clock.now()
        let closes = state.withLock { s -> [Close] in
            apply(s.engine.end(id, removed: removed, now: now), state: &s)
        }
        perform(closes)
        return !closes.isEmpty
    }

    /// A newly registered agent is known (offline) before it first connects, so the summary, the
    /// listing and the watch snapshot agree. Returns `false` when the engine knew it already.
    @discardableResult
    /// With several nodes (`owned: false`) it belongs to no node until it connects to one.
    public func registered(_ id: AgentID, owned: Bool = true) -> Bool {
        let now = clock.now()
        return state.withLock { s in
            guard s.engine.slot(of: id) == nil else { return false }
            s.engine.restore(agent: id, state: .offline, since: now, lastSeen: nil, timeoutMs: nil, owned: owned, now: now)
            return true
        }
    }

    /// Whether this node times the agent (with one node: every agent it knows).
    public func owns(_ id: AgentID) -> Bool { state.withLock { $0.engine.owns(id) } }

    // MARK: Reading

    /// What this node knows live of an agent it owns; `nil` for another node's agent, whose
    /// state is the history's, as its owner wrote it.
    public func status(of id: AgentID) -> LivenessEngine.AgentStatus? {
        state.withLock { $0.engine.owns(id) ? $0.engine.status(of: id) : nil }
    }

    /// The agent's open session as it was opened, while its row is not committed yet.
    public func unwrittenSession(of id: AgentID) -> SessionStart? {
        guard let session = status(of: id)?.sessionID, let start = outbox.unwrittenSession(of: id), start.id == session else { return nil }
        return start
    }

    public func countsByState() -> [PresenceState: Int] {
        state.withLock { $0.engine.countsByState() }
    }

    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Fixed for the life of the owner, so read without the lock.
    public let livenessConfiguration: LivenessConfiguration

    // MARK: Effects

    typealias Close = (handle: ConnectionHandle, code: CloseCode, reason: String)

    /// Appends history effects to the outbox, in order; returns the sockets to close once the lock
    /// is released. Nothing else happens under the lock.
    private func apply(_ effects: [LivenessEffect], state s: inout State) -> [Close] {
        var closes: [Close] = []
        for effect in effects {
            switch effect {
            case .transition(let t): outbox.append(.transition(t))
            case .sessionOpened(let start): outbox.append(.sessionOpened(start))
            case .sessionClosed(let end): outbox.append(.sessionClosed(end))
            case .close(let session, let code, let reason):
                if let handle = s.connections.removeValue(forKey: session) { closes.append((handle, code, reason)) }
            }
        }
        return closes
    }

    private func perform(_ closes: [Close]) {
        for close in closes { close.handle.close(code: close.code, reason: close.reason) }
    }
}
