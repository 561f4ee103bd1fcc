import RollcallCore
import RollcallStore
import Synchronization

/// The ordered stream of effects from the presence owner to the history writer.
///
/// ``Presence`` appends under its own lock, so events are in the order they happened and
/// transitions in id order. The writer drains it, commits, and only then publishes what it
/// committed (watch stream, dashboard, later notifications and other nodes): nothing leaves the
/// process before its row is durable.
///
/// It is deliberately unbounded in count: its events are transitions and session edges, which a
/// fleet produces at a bounded rate, and dropping one would break the history. Admission refuses
/// new handshakes once ``depth`` (queued plus held by the writer) passes the backlog limit.
/// Heartbeat counters never enter it (the writer pulls them from the engine at each checkpoint),
/// and agents' `hello` and `status` are coalesced to the latest per agent.
public final class Outbox: Sendable {
    private struct State {
        var events: [HistoryEvent] = []
        /// Latest `hello` / `status` per agent since the last take: a flood of either is one row
        /// update per agent, not one per message.
        var hellos: [AgentID: Hello] = [:]
        var statuses: [AgentID: JSONValue] = [:]
        /// Sessions opened whose rows are not committed yet, so the API can show an agent's open
        /// session from the moment of its `welcome`.
        var unwrittenSessions: [AgentID: SessionStart] = [:]
    }
    private let state = Mutex(State())
    /// Events the writer has taken but not yet committed.
    private let held = Atomic<Int>(0)

    public init() {}

    public func append(_ event: HistoryEvent) {
        state.withLock { s in
            s.events.append(event)
            if case .sessionOpened(let start) = event { s.unwrittenSessions[start.agentID] = start }
        }
    }

    /// The writer is done with these events (committed, or set aside): their sessions are the
    /// history's to show now.
    func settled(_ events: some Sequence<HistoryEvent>) {
        state.withLock { s in
            for case .sessionOpened(let start) in events where s.unwrittenSessions[start.agentID]?.id == start.id {
                s.unwrittenSessions.removeValue(forKey: start.agentID)
            }
        }
    }

    /// An agent's newest session while its row is not committed yet.
    func unwrittenSession(of agent: AgentID) -> SessionStart? { state.withLock { $0.unwrittenSessions[agent] } }

    func hello(_ hello: Hello, for agent: AgentID) {
        state.withLock { $0.hellos[agent] = hello }
    }

    func status(_ status: JSONValue, for agent: AgentID) {
        state.withLock { $0.statuses[agent] = status }
    }

    /// The latest status an agent sent that is not yet written, for answers that must be live.
    func pendingStatus(of agent: AgentID) -> JSONValue? { state.withLock { $0.statuses[agent] } }

    /// Takes every queued event, in order.
    public func drain() -> [HistoryEvent] {
        state.withLock { s in
            defer { s.events.removeAll(keepingCapacity: true) }
            return s.events
        }
    }

    /// Takes the coalesced `hello`s (always) and `status`es (`withStatuses`), as events.
    func drainMetadata(withStatuses: Bool) -> [HistoryEvent] {
        state.withLock { s in
            var out: [HistoryEvent] = s.hellos.map { .hello($0.key, $0.value) }
            s.hellos.removeAll(keepingCapacity: true)
            if withStatuses {
                out += s.statuses.map { .status($0.key, $0.value) }
                s.statuses.removeAll(keepingCapacity: true)
            }
            return out
        }
    }

    /// The writer reports how many events it holds uncommitted (a batch that keeps failing stays
    /// here), so back-pressure sees them.
    func setHeld(_ count: Int) { held.store(count, ordering: .relaxed) }

    /// Events not yet durable: queued plus held by the writer.
    public var depth: Int { state.withLock { $0.events.count } + held.load(ordering: .relaxed) }
}
