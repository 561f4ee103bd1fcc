import Foundation
import Prometheus
import RollcallCore
import Synchronization

/// The server's metrics in a swift-prometheus registry owned by this server (not a process-global
/// one, so several servers can live in one test process). Every metric carries its `# HELP`
/// and follows Prometheus naming (base units in the name, `_total` for counters), so
/// `promtool check metrics` has nothing to say. Event counters are updated where the event
/// happens; levels and the process metrics are read at scrape time.
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    let heartbeats: Counter
    let acks: DurationHistogram
    let rtt: DurationHistogram
    let batch: DurationHistogram
    let batchEvents: ValueHistogram
    let connectionsAccepted: Counter
    let writeFailures: Counter
    let eventsDropped: Counter
    let agents: [PresenceState: Gauge]
    let connections: Gauge
    let queueDepth: Gauge
    let watchers: Gauge
    /// Per-agent sampling of ack latency: every `ackSampleEvery`-th heartbeat is timed.
    static let ackSampleEvery = 16
    /// When this server started, for `process_start_time_seconds`.
    let startedAt = Date().timeIntervalSince1970

    public init() {
        func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "rollcall", metricName: metric, unitName: unit, helpText: help)
        }
        heartbeats = registry.makeCounter(descriptor: name("heartbeats", "total", "Heartbeats received from agents, text and binary."))
        connectionsAccepted = registry.makeCounter(
            descriptor: name("connections_accepted", "total", "Agent connections accepted (after the handshake)."))
        acks = registry.makeDurationHistogram(
            descriptor: name("ack_latency", "seconds", "Time from reading a heartbeat to writing its ack, server side (1 in 16 sampled)."),
            buckets: [
                .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
                .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50),
            ])
        rtt = registry.makeDurationHistogram(
            descriptor: name("rtt", "seconds", "WebSocket ping round trips to agents."),
            buckets: [
                .microseconds(250), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
            ])
        batch = registry.makeDurationHistogram(
            descriptor: name("history_batch", "seconds", "Time to commit one history transaction."),
            buckets: [
                .microseconds(100), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(100),
                .milliseconds(500), .seconds(1), .seconds(5),
            ])
        batchEvents = registry.makeValueHistogram(
            descriptor: name("history_batch", "events", "History events committed per transaction."), buckets: [1, 10, 100, 1_000, 10_000])
        writeFailures = registry.makeCounter(
            descriptor: name("history_write_failures", "total", "History transactions that failed and were retried."))
        eventsDropped = registry.makeCounter(
            descriptor: name("history_events_dropped", "total", "History events the database refused on their own, set aside so the rest was written."))
        var agents: [PresenceState: Gauge] = [:]
        for state in PresenceState.allCases {
            agents[state] = registry.makeGauge(descriptor: name("agents", "", "Known agents by presence state."), labels: [("state", state.rawValue)])
        }
        self.agents = agents
        connections = registry.makeGauge(descriptor: name("connections", "", "Open agent connections."))
        queueDepth = registry.makeGauge(
            descriptor: name("history_queue_depth", "", "History events not yet durable: queued, and held by a writer that is retrying."))
        watchers = registry.makeGauge(descriptor: name("watchers", "", "Open /v1/watch streams."))
        registry.makeGauge(descriptor: name("build", "info", "Rollcall's version; the value is always 1."), labels: [("version", RollcallApplication.version)])
            .set(Int64(1))
    }

    func heartbeatsSeen(_ n: Int) { heartbeats.increment(by: Int64(n)) }
    func accepted() { connectionsAccepted.increment() }
    func ackLatency(nanoseconds: Int64) { acks.record(.nanoseconds(nanoseconds)) }
    func rttSample(ms: Double) { rtt.record(.nanoseconds(Int64(ms * 1_000_000))) }
    func batchWritten(nanoseconds: Int64, events: Int) {
        batch.record(.nanoseconds(nanoseconds))
        batchEvents.record(Double(events))
    }

    /// Counts one event of a labelled counter family (the registry keeps one counter per label set).
    private func count(_ metric: String, _ help: String, _ labels: [(String, String)], by n: Int = 1) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "rollcall", metricName: metric, unitName: "total", helpText: help), labels: labels
        ).increment(by: Int64(n))
    }

    func transition(_ t: Transition) {
        count("transitions", "Committed presence transitions by target state and reason.", [("to", t.to.rawValue), ("reason", t.reason.rawValue)])
    }

    /// A history transaction failed (it is retried; nothing is lost unless `historyEventDropped`).
    func historyWriteFailed() { writeFailures.increment() }

    /// An event the database refuses on its own, while the rest writes, was set aside.
    func historyEventDropped() { eventsDropped.increment() }

    func refused(_ cause: String) {
        count("handshake_refusals", "Requests refused before the upgrade, by cause.", [("cause", cause)])
    }

    func historyReadFailed() {
        count("history_read_failures", "API reads the history database did not answer in time (each answered 503).", [])
    }

    /// Agents whose connection here was superseded by one to another node (closed with 4001).
    func movedAway(_ n: Int) {
        count("agents_moved_away", "Agents whose connection here was closed with 4001 because they connected to another node.", [], by: n)
    }

    /// Another node's lease lapsed and this node took over its agents.
    func nodeTakenOver(agents: Int) {
        count("node_takeovers", "Nodes whose lease lapsed and whose agents this node took over.", [])
        count("agents_adopted", "Agents taken over from nodes whose lease lapsed.", [], by: agents)
    }

    /// This node found its own lease lost (paused, partitioned) and dropped its agents.
    func leaseLost() { count("lease_losses", "Times this node found its lease lost and dropped its agents to rejoin.", []) }

    func violated(_ cause: String) {
        count("protocol_violations", "Connections closed for breaking the protocol (and watchers closed for lagging), by cause.", [("cause", cause)])
    }

    /// The Prometheus text exposition, with the levels read now.
    func render(presence: Presence, watchers count: Int) -> String {
        let counts = presence.countsByState()
        for (state, gauge) in agents { gauge.set(Int64(counts[state] ?? 0)) }
        connections.set(Int64(presence.connectionCount))
        queueDepth.set(Int64(presence.outbox.depth))
        watchers.set(Int64(count))
        return registry.emitToString() + ProcessMetrics.exposition(startedAt: startedAt)
    }
}

/// What every Prometheus exporter exports about its process, from `/proc` (Linux).
enum ProcessMetrics {
    static func exposition(startedAt: Double) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ value: Double?) {
            guard let value else { return }
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(format(value))\n"
        }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        metric("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpuTicks().map { $0 / ticks })
        metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", residentBytes())
        metric("process_open_fds", "gauge", "Number of open file descriptors.", openDescriptors())
        var limit = rlimit()
        metric("process_max_fds", "gauge", "Maximum number of open file descriptors.", getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? Double(limit.rlim_cur) : nil)
        metric("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch in seconds.", startedAt)
        return out
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    /// utime + stime from `/proc/self/stat`, in clock ticks.
    static func cpuTicks() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return user + system
    }

    static func residentBytes() -> Double? {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return nil }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func openDescriptors() -> Double? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")).map { Double($0.count) }
    }
}
