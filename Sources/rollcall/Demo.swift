import ArgumentParser
import Foundation
import Logging
import RollcallCore
import RollcallDashboard
import RollcallTop
import RollcallDemo
import RollcallServer
import ServiceLifecycle
import Synchronization
import UnixSignals

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A first look: a server on a local database, a simulated fleet, and the live dashboard.",
        discussion: """
            q or Ctrl-C stops everything and leaves a valid history file to query with sqlite3. Without a \
            terminal (or with --log) the transitions are printed as a log instead of the dashboard.
            """
    )

    @OptionGroup var options: ServerOptions

    @Option(help: "How many simulated agents.")
    var agents: Int = 36

    @Flag(help: "Print the transitions as a log instead of showing the dashboard.")
    var log = false

    func validate() throws {
        guard (1...5000).contains(agents) else { throw ValidationError("--agents must be between 1 and 5000, e.g. --agents 36") }
    }

    func run() async throws {
        let configuration = options.serverConfiguration(defaultIntervalMs: 1000)
        let logger = options.makeLogger(default: .warning)
        let interval = configuration.liveness.defaultIntervalMs
        let ports = BoundPort()
        let app: RollcallApplication
        do {
            app = try buildApplication(configuration: configuration, logger: logger) { port in ports.set(port) }
        } catch let failure as ListenFailure {
            throw failure.exit()
        }
        let dashboard = !log && Terminal.isInteractive
        let count = agents
        let db = configuration.databasePath
        let host = configuration.host
        let logFile = db + ".log"
        // The fleet and the dashboard need the bound port, so they start once the server listens.
        let fleet = DeferredService { () -> DemoFleet? in
            guard let port = await ports.value() else { return nil }
            if !dashboard {
                print("rollcall demo: server on http://\(host):\(port), history in \(db), \(count) agents beating every \(interval) ms")
                print("try: curl -s http://\(host):\(port)/v1/agents   ·   sqlite3 \(db) 'select * from transitions'   ·   Ctrl-C to stop\n")
            }
            return DemoFleet(serverURL: "ws://\(host):\(port)", count: count, intervalMs: interval, logger: logger)
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: app.application), .init(service: fleet)]
        var savedStderr: Int32 = -1
        if dashboard {
            // Log lines would tear the full-screen dashboard: they go to a file while it shows.
            savedStderr = dup(2)
            let fd = open(logFile, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            if fd >= 0 {
                dup2(fd, 2)
                close(fd)
            }
            let top = DeferredService { () -> LiveDashboard? in
                guard let port = await ports.value() else { return nil }
                return LiveDashboard(
                    configuration: .init(
                        server: "http://\(host):\(port)", colorMode: ColorMode.detect(environment: ProcessInfo.processInfo.environment),
                        trapTerminationSignals: false, statisticsInterval: .seconds(2)),
                    logger: logger)
            }
            // Quitting the dashboard stops the demo.
            services.append(.init(service: top, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup))
        } else {
            services.append(.init(service: LiveLog(transitions: app.hub.subscribe())))
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await runServer(group, host: host, port: configuration.port)
        } catch {
            if savedStderr >= 0 { dup2(savedStderr, 2) }
            if let failure = error as? ListenFailure { throw failure.exit() }
            throw error
        }
        if savedStderr >= 0 { dup2(savedStderr, 2) }
        if dashboard { print("rollcall demo: \(count) simulated agents on http://\(host):\(port(of: ports))") }
        // Only point at the log when something was logged (warnings and worse, by default).
        let logged = dashboard && ((try? FileManager.default.attributesOfItem(atPath: logFile)[.size] as? Int) ?? 0) > 0
        if dashboard, !logged { try? FileManager.default.removeItem(atPath: logFile) }
        print("rollcall demo stopped; the history is in \(db)\(logged ? ", the server's log in \(logFile)" : "")")
        print(
            "try: sqlite3 -header -column \(db) \"select agent_id, state, datetime(started_at_ms / 1000, 'unixepoch') as started, "
                + "datetime(ended_at_ms / 1000, 'unixepoch') as ended, reason from presence_intervals limit 20\"")
    }
}

/// The bound port: set once when the server listens, awaited by every service that needs it.
final class BoundPort: Sendable {
    private struct State {
        var port: Int?
        var waiters: [Int: CheckedContinuation<Int?, Never>] = [:]
        var nextWaiter = 0
    }
    private let state = Mutex(State())

    var known: Int? { state.withLock { $0.port } }

    func set(_ port: Int) {
        let waiters = state.withLock { s in
            s.port = port
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for w in waiters { w.resume(returning: port) }
    }

    /// The port once known; `nil` when the waiting task is cancelled first (the server failed to
    /// start and the group is stopping).
    func value() async -> Int? {
        let id = state.withLock { s in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Int?, Never>) in
                let ready = state.withLock { s -> Int?? in
                    if let p = s.port { return .some(p) }
                    if Task.isCancelled { return .some(nil) }
                    s.waiters[id] = c
                    return nil
                }
                if let ready { c.resume(returning: ready) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(returning: nil)
        }
    }
}

func port(of ports: BoundPort) -> String { ports.known.map(String.init) ?? "?" }

/// A service built once something it needs (the bound port) is known; `nil` means it is not
/// needed after all (the wait was cancelled).
struct DeferredService<S: Service>: Service {
    let make: @Sendable () async -> S?

    func run() async throws {
        guard let service = await make() else { return }
        try await service.run()
    }
}
