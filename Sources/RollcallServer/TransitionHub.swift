import RollcallCore
import Synchronization

/// Fans transitions out to in-process listeners (the demo's live log, the watch stream).
/// Each listener has a bounded buffer: a slow one loses its newest events rather than slowing
/// the gateway, and learns of it from the gap in ids.
public final class TransitionHub: Sendable {
    private struct State {
        var listeners: [Int: AsyncStream<Transition>.Continuation] = [:]
        var nextID = 0
    }
    private let state = Mutex(State())

    public init() {}

    public func publish(_ transition: Transition) {
        state.withLock { s in
            for continuation in s.listeners.values { continuation.yield(transition) }
        }
    }

    /// A stream of every transition published from now on.
    public func subscribe(bufferSize: Int = 10_000) -> AsyncStream<Transition> {
        let (stream, continuation) = AsyncStream.makeStream(of: Transition.self, bufferingPolicy: .bufferingOldest(bufferSize))
        let id = state.withLock { s in
            let id = s.nextID
            s.nextID += 1
            s.listeners[id] = continuation
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.listeners.removeValue(forKey: id) }
        }
        return stream
    }

    public func finishAll() {
        state.withLock { s in
            for c in s.listeners.values { c.finish() }
            s.listeners.removeAll()
        }
    }
}
