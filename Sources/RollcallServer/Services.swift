import Logging
import RollcallCore
import RollcallStore
import ServiceLifecycle

/// The single writer of the history: drains the queue in batched transactions, bounded in time
/// (`flushInterval`) and size, and checkpoints heartbeat counters and the run's alive mark.
/// It is the last service to stop, so its final flush sees every transition of the shutdown.
struct HistoryWriterService: Service {
    static let maxBatch = 10_000

    let store: any HistoryStore
    let queue: HistoryQueue
    let gateway: Gateway
    let runID: Int64
    let configuration: ServerConfiguration
    let logger: Logger

    func run() async throws {
        var pending: [HistoryEvent] = []
        var lastCheckpoint = ContinuousClock.now
        var lastCounters = ContinuousClock.now
        var lastPrune: ContinuousClock.Instant?
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: configuration.flushInterval)
            let checkpoint = ContinuousClock.now - lastCheckpoint >= configuration.checkpointInterval
            if checkpoint { lastCheckpoint = .now }
            let counters = ContinuousClock.now - lastCounters >= configuration.countersInterval
            if counters { lastCounters = .now }
            flush(&pending, withCounters: counters, touchAlive: checkpoint)
            if configuration.retainMs != nil, lastPrune.map({ ContinuousClock.now - $0 >= configuration.pruneInterval }) ?? true {
                lastPrune = .now
                prune()
            }
        }
        // Everything before us has stopped: write what is left and record a graceful stop.
        flush(&pending, withCounters: true, touchAlive: true)
        if pending.isEmpty {
            do {
                try store.finishRun(runID, now: gateway.clock.now())
                logger.info("history closed", metadata: ["run": "\(runID)"])
            } catch {
                logger.error("could not record the server stop", metadata: ["error": "\(error)"])
            }
        } else {
            logger.critical("history writer stopped with unwritten events", metadata: ["count": "\(pending.count)"])
        }
    }

    /// Writes pending events; on failure keeps them for the next attempt so no row is lost. Every
    /// write also moves the run's alive mark; `touchAlive` writes it even with nothing else to write.
    func flush(_ pending: inout [HistoryEvent], withCounters: Bool, touchAlive: Bool) {
        pending += queue.drain()
        if withCounters {
            let counters = gateway.takeDirtyCounters()
            if !counters.isEmpty { pending.append(.counters(counters)) }
        }
        guard !pending.isEmpty || touchAlive else { return }
        var written = 0
        repeat {
            let batch = Array(pending[written..<min(pending.count, written + Self.maxBatch)])
            let started = ContinuousClock.now
            do {
                try store.write(batch, runID: runID, aliveAt: gateway.clock.now())
                let elapsed = ContinuousClock.now - started
                gateway.counters.metrics.batchWritten(
                    nanoseconds: elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000, events: batch.count)
            } catch {
                logger.error("history write failed; will retry", metadata: ["error": "\(error)", "events": "\(pending.count - written)"])
                pending.removeFirst(written)
                return
            }
            for case .transition(let t) in batch { log(t) }
            written += batch.count
        } while written < pending.count
        pending.removeAll(keepingCapacity: true)
    }

    /// Retention runs here because this service owns the writes.
    func prune() {
        guard let retain = configuration.retainMs else { return }
        let cutoff = gateway.clock.now() - retain
        do {
            let report = try store.prune(before: cutoff)
            if report.transitions + report.sessions + report.serverRuns > 0 {
                logger.info(
                    "pruned history",
                    metadata: ["before": "\(Timestamp.rfc3339(cutoff))", "transitions": "\(report.transitions)", "sessions": "\(report.sessions)", "runs": "\(report.serverRuns)"])
            }
        } catch {
            logger.error("pruning failed; will retry", metadata: ["error": "\(error)"])
        }
    }

    func log(_ t: Transition) {
        let level: Logger.Level = t.to == .online && t.reason == .connected ? .debug : .info
        logger.log(
            level: level, "\(t.agentID) \(t.from?.rawValue ?? "new") → \(t.to.rawValue) (\(t.reason.rawValue))",
            metadata: ["transition": "\(t.id)"])
    }
}

/// Fires liveness deadlines every `sweepInterval`: one loop for every agent, no timer per agent.
/// Also spreads WebSocket pings over `pingInterval`.
struct LivenessSweeperService: Service {
    let gateway: Gateway
    let interval: Duration
    let pingInterval: Duration

    func run() async throws {
        var last = ContinuousClock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await Task.sleep(for: interval)
            gateway.sweep()
            let now = ContinuousClock.now
            gateway.pingSome(elapsed: now - last, interval: pingInterval)
            gateway.counters.updateRate(now: now)
            last = now
        }
    }
}

/// Stops the gateway once the HTTP server has: any agent still present becomes `unknown`.
struct GatewayStopService: Service {
    let gateway: Gateway
    let grace: Duration

    func run() async throws {
        try? await gracefulShutdown()
        gateway.stop()
        // Give the 1001 close frames time to go out before the process may exit.
        let deadline = ContinuousClock.now + grace
        while gateway.openAgentSockets > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }
}
