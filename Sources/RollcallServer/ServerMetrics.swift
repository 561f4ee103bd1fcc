import CoreMetrics
import Prometheus
import RollcallCore
import Synchronization

/// The server's metrics, through swift-metrics with a swift-prometheus backend owned by this
/// server (not the process-global one, so several servers can live in one test process).
/// Event counters are updated where the event happens; levels are read at scrape time.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory

    let heartbeats: CoreMetrics.Counter
    let acks: CoreMetrics.Timer
    let rtt: CoreMetrics.Timer
    let batch: CoreMetrics.Timer
    let batchEvents: CoreMetrics.Recorder
    let connectionsAccepted: CoreMetrics.Counter
    /// Per-agent sampling of ack latency: every `ackSampleEvery`-th heartbeat is timed.
    static let ackSampleEvery = 16

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = [
            "rollcall_ack_latency_seconds": [.microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50)],
            "rollcall_rtt_seconds": [.microseconds(250), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1)],
            "rollcall_history_batch_seconds": [.microseconds(100), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5)],
        ]
        factory.valueHistogramBuckets = ["rollcall_history_batch_events": [1, 10, 100, 1_000, 10_000]]
        self.factory = factory
        heartbeats = CoreMetrics.Counter(label: "rollcall_heartbeats_total", factory: factory)
        acks = CoreMetrics.Timer(label: "rollcall_ack_latency_seconds", factory: factory)
        rtt = CoreMetrics.Timer(label: "rollcall_rtt_seconds", factory: factory)
        batch = CoreMetrics.Timer(label: "rollcall_history_batch_seconds", factory: factory)
        batchEvents = CoreMetrics.Recorder(label: "rollcall_history_batch_events", aggregate: true, factory: factory)
        connectionsAccepted = CoreMetrics.Counter(label: "rollcall_connections_accepted_total", factory: factory)
    }

    func heartbeatsSeen(_ n: Int) { heartbeats.increment(by: Int64(n)) }
    func accepted() { connectionsAccepted.increment() }
    func ackLatency(nanoseconds: Int64) { acks.recordNanoseconds(nanoseconds) }
    func rttSample(ms: Double) { rtt.recordNanoseconds(Int64(ms * 1_000_000)) }
    func batchWritten(nanoseconds: Int64, events: Int) {
        batch.recordNanoseconds(nanoseconds)
        batchEvents.record(events)
    }

    func transition(_ t: Transition) {
        CoreMetrics.Counter(label: "rollcall_transitions_total", dimensions: [("to", t.to.rawValue), ("reason", t.reason.rawValue)], factory: factory).increment()
    }

    /// A history transaction failed (it is retried; nothing is lost unless `historyEventDropped`).
    func historyWriteFailed() {
        CoreMetrics.Counter(label: "rollcall_history_write_failures_total", factory: factory).increment()
    }

    /// An event the database refuses on its own, while the rest writes, was set aside.
    func historyEventDropped() {
        CoreMetrics.Counter(label: "rollcall_history_events_dropped_total", factory: factory).increment()
    }

    func refused(_ cause: String) {
        CoreMetrics.Counter(label: "rollcall_handshake_refusals_total", dimensions: [("cause", cause)], factory: factory).increment()
    }

    func violated(_ cause: String) {
        CoreMetrics.Counter(label: "rollcall_protocol_violations_total", dimensions: [("cause", cause)], factory: factory).increment()
    }

    /// The Prometheus text exposition, with the levels read now.
    func render(presence: Presence, watchers: Int) -> String {
        let counts = presence.countsByState()
        for state in PresenceState.allCases {
            CoreMetrics.Gauge(label: "rollcall_agents", dimensions: [("state", state.rawValue)], factory: factory).record(counts[state] ?? 0)
        }
        CoreMetrics.Gauge(label: "rollcall_connections", factory: factory).record(presence.connectionCount)
        CoreMetrics.Gauge(label: "rollcall_history_queue_depth", factory: factory).record(presence.outbox.depth)
        CoreMetrics.Gauge(label: "rollcall_watchers", factory: factory).record(watchers)
        return registry.emitToString()
    }
}
