import DequeModule
import RollcallCore
import Synchronization

/// Fans transitions out to in-process listeners (the demo's live log, the watch stream) and keeps
/// the most recent ones in a ring, so a watcher resuming from a recent cursor is served from
/// memory without waiting for the history writer.
///
/// `publish` runs under the gateway's lock, so listeners see transitions in id order. Listeners
/// must return quickly; each decides what to do when it falls behind.
public final class TransitionHub: Sendable {
    public typealias Listener = @Sendable (Transition) -> Void

    private struct State {
        var streams: [Int: AsyncStream<Transition>.Continuation] = [:]
        var listeners: [Int: Listener] = [:]
        var nextID = 0
        var recent = Deque<Transition>()
    }
    private let state = Mutex(State())
    /// How many recent transitions stay in memory.
    public let ringCapacity: Int

    public init(ringCapacity: Int = 100_000) { self.ringCapacity = ringCapacity }

    public func publish(_ transition: Transition) {
        state.withLock { s in
            s.recent.append(transition)
            if s.recent.count > ringCapacity { s.recent.removeFirst() }
            for continuation in s.streams.values { continuation.yield(transition) }
            for listener in s.listeners.values { listener(transition) }
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

    /// Registers `listener` for every later transition and returns, atomically with it, the
    /// remembered transitions with id > `after` and the id of the oldest one still in memory.
    public func listen(after: Int64, _ listener: @escaping Listener) -> (id: Int, backlog: [Transition], oldest: Int64?) {
        state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.listeners[id] = listener
            // The ring is in id order: find the first id after `after` by bisection, so a watcher
            // joining costs O(log n) under the gateway's lock, not a scan of the whole ring.
            var low = 0
            var high = s.recent.count
            while low < high {
                let mid = (low + high) / 2
                if s.recent[mid].id <= after { low = mid + 1 } else { high = mid }
            }
            return (id, Array(s.recent[low...]), s.recent.first?.id)
        }
    }

    public func removeListener(_ id: Int) {
        _ = state.withLock { $0.listeners.removeValue(forKey: id) }
    }

    public var listenerCount: Int { state.withLock { $0.streams.count + $0.listeners.count } }

    public func finishAll() {
        state.withLock { s in
            for c in s.streams.values { c.finish() }
            s.streams.removeAll()
        }
    }
}
