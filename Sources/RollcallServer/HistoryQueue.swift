import RollcallStore
import Synchronization

/// Events waiting for the history writer. Producers append under the gateway's lock, so the
/// queue holds transitions in id order; the writer drains it in batches.
///
/// It is deliberately unbounded in count: the only events are transitions and session edges,
/// which a fleet produces at a bounded rate, and dropping one would break the history. Heartbeat
/// counters never enter it; the writer pulls them from the engine at each checkpoint.
public final class HistoryQueue: Sendable {
    private let buffer = Mutex<[HistoryEvent]>([])
    private let signal: AsyncStream<Void>.Continuation
    let signals: AsyncStream<Void>

    public init() {
        (signals, signal) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func append(_ event: HistoryEvent) {
        buffer.withLock { $0.append(event) }
        signal.yield()
    }

    public func drain() -> [HistoryEvent] {
        buffer.withLock { events in
            defer { events.removeAll(keepingCapacity: true) }
            return events
        }
    }

    public var depth: Int { buffer.withLock { $0.count } }
}
