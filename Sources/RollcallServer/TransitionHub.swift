import DequeModule
import NIOCore
import RollcallCore
import Synchronization

/// One committed transition with its watch-stream message, encoded once for every watcher.
public struct PublishedTransition: Sendable {
    public var transition: Transition
    /// `{"type":"transition",…}`, shared (copy-on-write) by every socket it is written to.
    public var message: ByteBuffer

    init(_ transition: Transition) {
        self.transition = transition
        self.message = ByteBuffer(string: transition.watchMessage)
    }

    public var id: Int64 { transition.id }
}

/// Where committed transitions go: in-process subscribers (the demo's live log, tests), the
/// watch stream's sockets, and a ring of the most recent ones so a watcher resuming from a recent
/// cursor is served from memory.
///
/// Only the history writer publishes, and only what it has committed, so every id seen here is
/// durable and never reused. The hub also keeps each agent's committed state, which is what a
/// watcher's snapshot shows at its cursor.
///
/// Watchers register per event loop: one publish is one hop to each loop that has watchers, not
/// one per watcher, and nothing is called under the hub's lock.
public final class TransitionHub: Sendable {
    /// Called on the watcher's event loop with each committed batch, in id order.
    public typealias Listener = @Sendable (ArraySlice<PublishedTransition>) -> Void

    /// An agent's state as the committed history says.
    public struct Committed: Sendable, Equatable {
        public var state: PresenceState
        public var since: Millis
    }

    private struct LoopGroup {
        var execute: @Sendable (@escaping @Sendable () -> Void) -> Void
        var listeners: [Int: Listener] = [:]
    }

    private struct State {
        var streams: [Int: AsyncStream<Transition>.Continuation] = [:]
        var loops: [ObjectIdentifier: LoopGroup] = [:]
        var nextID = 0
        /// Kept as values, not encoded: 100,000 messages would be tens of megabytes for the
        /// rare watcher that resumes from one of them.
        var recent = Deque<Transition>()
        var lastID: Int64
        var agents: [AgentID: Committed] = [:]
    }
    private let state: Mutex<State>
    /// How many recent transitions stay in memory.
    public let ringCapacity: Int
    /// Shared by every watcher catching up: pages per second, server-wide.
    private let catchUp: Mutex<TokenBucket>

    public init(ringCapacity: Int = 100_000, lastID: Int64 = 0, catchUpPagesPerSecond: Double = 200) {
        self.ringCapacity = ringCapacity
        self.state = Mutex(State(lastID: lastID))
        self.catchUp = Mutex(TokenBucket(rate: catchUpPagesPerSecond, burst: max(1, catchUpPagesPerSecond / 10)))
    }

    /// Whether a watcher catching up may send a page now.
    func mayCatchUp() -> Bool { catchUp.withLock { $0.take() } }

    /// Seeds an agent's committed state (at start, or when one is registered) without an event.
    public func seed(_ id: AgentID, state presence: PresenceState, since: Millis) {
        state.withLock { $0.agents[id] = Committed(state: presence, since: since) }
    }

    /// The newest committed id: the cursor a watcher joining now starts at.
    public var lastID: Int64 { state.withLock { $0.lastID } }

    /// Publishes a committed batch, in id order. Only the history writer calls this.
    public func publish(_ transitions: [Transition]) {
        guard !transitions.isEmpty else { return }
        let groups = state.withLock { s -> [LoopGroup] in
            for t in transitions {
                s.recent.append(t)
                s.agents[t.agentID] = Committed(state: t.to, since: t.effectiveAt)
                s.lastID = max(s.lastID, t.id)
            }
            if s.recent.count > ringCapacity { s.recent.removeFirst(s.recent.count - ringCapacity) }
            for continuation in s.streams.values { for t in transitions { continuation.yield(t) } }
            return Array(s.loops.values.filter { !$0.listeners.isEmpty })
        }
        // The groups were captured with the cursor update, so a watcher that joined after this
        // batch (its cursor includes it) is not in them, and one that joined before is. Encoded
        // once, outside the lock, and only when some watcher will send it.
        guard !groups.isEmpty else { return }
        let slice = transitions.map(PublishedTransition.init)[...]
        for group in groups {
            let listeners = group.listeners
            group.execute { for listener in listeners.values { listener(slice) } }
        }
    }

    /// A stream of every transition published from now on (bounded; the oldest are kept).
    public func subscribe(bufferSize: Int = 10_000) -> AsyncStream<Transition> {
        let (stream, continuation) = AsyncStream.makeStream(of: Transition.self, bufferingPolicy: .bufferingOldest(bufferSize))
        let id = state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.streams[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.streams.removeValue(forKey: id) }
        }
        return stream
    }

    /// What a joining watcher starts from.
    public struct Join: Sendable {
        public var listenerID: Int
        /// The newest committed id when the listener was registered.
        public var cursor: Int64
        /// Every agent's committed state at `cursor`, when asked for.
        public var agents: [AgentID: Committed]?
    }

    /// Registers `listener` on its loop for every batch published after the returned cursor,
    /// atomically with the cursor and (when asked) the snapshot of committed states. O(1) under
    /// the lock: the snapshot is a copy-on-write dictionary.
    public func join(loop: ObjectIdentifier, execute: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void, snapshot: Bool, _ listener: @escaping Listener) -> Join {
        state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.loops[loop, default: LoopGroup(execute: execute)].listeners[id] = listener
            return Join(listenerID: id, cursor: s.lastID, agents: snapshot ? s.agents : nil)
        }
    }

    public func leave(loop: ObjectIdentifier, listenerID: Int) {
        state.withLock { s in
            guard s.loops[loop]?.listeners.removeValue(forKey: listenerID) != nil else { return }
            if s.loops[loop]?.listeners.isEmpty == true { s.loops.removeValue(forKey: loop) }
        }
    }

    /// A page of the ring after `after`.
    public enum Page: Sendable {
        /// Up to `limit` transitions with id > `after`; `caughtUp` when nothing newer is committed.
        case transitions(ArraySlice<PublishedTransition>, caughtUp: Bool)
        /// Ids right after `after` have left the ring (or were never in it): read the history.
        case older(firstInRing: Int64?)
    }

    public func page(after: Int64, limit: Int) -> Page {
        enum Taken {
            case items([Transition], caughtUp: Bool)
            case older(firstInRing: Int64?)
        }
        let taken = state.withLock { s -> Taken in
            guard after < s.lastID else { return .items([], caughtUp: true) }
            // `after < lastID` above, so `after + 1` cannot overflow.
            guard let first = s.recent.first, first.id <= after + 1 else { return .older(firstInRing: s.recent.first?.id) }
            // The ring is in id order: bisect for the first id after `after`.
            var low = 0
            var high = s.recent.count
            while low < high {
                let mid = (low + high) / 2
                if s.recent[mid].id <= after { low = mid + 1 } else { high = mid }
            }
            let end = min(s.recent.count, low + limit)
            return .items(Array(s.recent[low..<end]), caughtUp: end == s.recent.count)
        }
        switch taken {
        case .older(let first): return .older(firstInRing: first)
        // Encoded outside the lock.
        case .items(let items, let caughtUp): return .transitions(items.map(PublishedTransition.init)[...], caughtUp: caughtUp)
        }
    }

    /// Watchers of the watch stream plus in-process subscribers.
    public var listenerCount: Int { state.withLock { s in s.loops.values.reduce(s.streams.count) { $0 + $1.listeners.count } } }

    /// Ends every subscriber's stream (the history is closed: nothing more will come).
    public func finishAll() {
        // Finished outside the lock: finishing runs the stream's termination handler, which
        // takes the lock to unregister it.
        let streams = state.withLock { s in
            defer { s.streams.removeAll() }
            return Array(s.streams.values)
        }
        for c in streams { c.finish() }
    }
}
