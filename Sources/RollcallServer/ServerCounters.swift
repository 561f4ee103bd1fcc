import Synchronization

/// Counts of refusals and protocol violations by cause, kept for tests and the summary and
/// forwarded to `/metrics`.
public final class ServerCounters: Sendable {
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
            let instant = Double(total - r.total) / elapsed.seconds
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

    private let watchSockets = Atomic<Int>(0)
    /// Open watch-stream sockets, counted from the upgrade to the socket's end (a watcher being
    /// closed still counts until it is gone): what `--max-watchers` limits.
    public var openWatchSockets: Int { watchSockets.load(ordering: .relaxed) }
    func watchSocketOpened() { watchSockets.add(1, ordering: .relaxed) }
    func watchSocketClosed() { watchSockets.subtract(1, ordering: .relaxed) }
    public var snapshot: Snapshot { state.withLock { $0 } }
}
