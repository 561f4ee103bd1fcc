import Histogram
import Synchronization

/// Counters and the ack RTT histogram, shared by every connection.
public final class LoadStats: Sendable {
    public struct Snapshot: Sendable {
        public var connected = 0
        public var welcomed = 0
        public var failedConnects = 0
        public var sent = 0
        public var acks = 0
        public var lateBeats = 0
        public var reconnects = 0
        public var unexpectedCloses: [Int: Int] = [:]
        public var rtt = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        /// Watch stream delivery latency (now − detected_at), microseconds.
        public var delivery = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        public var watchers = 0
    }

    private let state = Mutex(Snapshot())

    public init() {}

    public func update(_ body: (inout Snapshot) -> Void) { state.withLock { body(&$0) } }

    public func recordAck(rttMicros: UInt64) {
        state.withLock { s in
            s.acks += 1
            _ = s.rtt.record(rttMicros)
        }
    }

    public func recordDelivery(micros: UInt64) {
        state.withLock { s in _ = s.delivery.record(micros) }
    }

    public var snapshot: Snapshot { state.withLock { $0 } }

    /// Takes the RTT histogram collected so far and starts a new one (for per-phase figures).
    public func takeHistogram() -> Histogram<UInt64> {
        state.withLock { s in
            defer { s.rtt.reset() }
            return s.rtt
        }
    }
}
