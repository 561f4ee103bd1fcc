import Foundation
import Logging
import RollcallCore
import RollcallServer
import RollcallStore
import ServiceLifecycle

/// The real server on an ephemeral loopback port with a real SQLite file.
public struct LiveServer: Sendable {
    public let port: Int
    public let app: RollcallApplication
    public let databasePath: String
    /// Every transition from the start of the run.
    public let transitions: TransitionRecorder

    public var httpBase: String { "http://127.0.0.1:\(port)" }
    public var wsBase: String { "ws://127.0.0.1:\(port)" }
    public var presence: Presence { app.presence }

    /// The configuration tests start from. The default interval (10 s, timeout 30 s) leaves room
    /// for a loaded CI machine; tests about deadlines ask for a short interval in the handshake
    /// (`interval_ms=200` gives a 600 ms timeout).
    public static func testConfiguration(databasePath: String) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = 0
        configuration.databasePath = databasePath
        configuration.liveness = LivenessConfiguration(defaultIntervalMs: 10_000, defaultTimeoutMs: 30_000, minIntervalMs: 50)
        configuration.flushInterval = .milliseconds(20)
        configuration.checkpointInterval = .milliseconds(200)
        configuration.countersInterval = .milliseconds(200)
        configuration.closeGrace = .milliseconds(500)
        return configuration
    }

    /// Runs the server for the duration of `body`, then stops it gracefully.
    /// `logger` replaces the quiet default (a test that reads log lines passes a
    /// ``LogRecorder``'s).
    public static func with<T: Sendable>(
        databasePath: String? = nil,
        logger: Logger? = nil,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (LiveServer) async throws -> T
    ) async throws -> T {
        try await withTemporaryDirectory { dir in
            let path = databasePath ?? dir.appendingPathComponent("rollcall.db").path
            var configuration = testConfiguration(databasePath: path)
            configure(&configuration)
            return try await run(configuration: configuration, logger: logger, body)
        }
    }

    /// Runs a server with `configuration`; `logger` replaces the quiet default (a test that reads
    /// log lines passes a ``LogRecorder``'s), `store` the SQLite file at the configured path.
    public static func run<T: Sendable>(
        configuration: ServerConfiguration, logger: Logger? = nil, store: (any HistoryStore)? = nil,
        _ body: @Sendable (LiveServer) async throws -> T
    ) async throws -> T {
        var quiet = Logger(label: "rollcall.test")
        quiet.logLevel = ProcessInfo.processInfo.environment["ROLLCALL_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        let logger = logger ?? quiet
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let announce: @Sendable (Int) async -> Void = { port in
            portContinuation.yield(port)
            portContinuation.finish()
        }
        let app =
            if let store {
                try RollcallApplication.build(
                    configuration: configuration, store: store, logger: logger, clock: SystemPresenceClock(), onServerRunning: announce)
            } else {
                try RollcallApplication.build(configuration: configuration, logger: logger, onServerRunning: announce)
            }
        let recorder = TransitionRecorder(app.hub.subscribe(bufferSize: 1_000_000))
        let group = ServiceGroup(configuration: .init(services: [app.application], logger: logger))
        return try await withThrowingTaskGroup(of: T?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            var port = 0
            for await p in ports { port = p }
            let server = LiveServer(port: port, app: app, databasePath: configuration.databasePath, transitions: recorder)
            do {
                let result = try await body(server)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                throw error
            }
        }
    }
}

/// Collects transitions from the hub so tests can wait for one without sleeping.
public final class TransitionRecorder: Sendable {
    private let state = Mutex2<[Transition]>([])
    private let changed = AsyncBroadcast()

    init(_ stream: AsyncStream<Transition>) {
        Task { [state, changed] in
            for await t in stream {
                state.withLock { $0.append(t) }
                changed.fire()
            }
        }
    }

    public var all: [Transition] { state.withLock { $0 } }

    public func of(_ agent: String) -> [Transition] { all.filter { $0.agentID.rawValue == agent } }

    /// Waits until a transition matching `predicate` has been published, or throws after `limit`.
    @discardableResult
    public func waitFor(
        within limit: Duration = .seconds(10), _ what: String = "transition", _ predicate: @escaping @Sendable (Transition) -> Bool
    ) async throws -> Transition {
        let deadline = ContinuousClock.now + limit
        while true {
            let seen = changed.generation
            if let t = state.withLock({ $0.first(where: predicate) }) { return t }
            guard ContinuousClock.now < deadline else { throw TestTimeout(what: what) }
            await changed.wait(since: seen, until: deadline)
        }
    }

    @discardableResult
    public func waitFor(agent: String, to state: PresenceState, reason: TransitionReason? = nil, within limit: Duration = .seconds(10))
        async throws -> Transition
    {
        try await waitFor(within: limit, "\(agent) → \(state.rawValue) \(reason?.rawValue ?? "")") {
            $0.agentID.rawValue == agent && $0.to == state && (reason == nil || $0.reason == reason)
        }
    }
}

public struct TestTimeout: Error, CustomStringConvertible {
    public let what: String
    public init(what: String) { self.what = what }
    public var description: String { "timed out waiting for \(what)" }
}

/// Collects every log line (message and metadata, as a handler would print them) for tests
/// that check what reaches the log.
public final class LogRecorder: Sendable {
    private let lines = Mutex2<[String]>([])

    public init() {}

    public var all: [String] { lines.withLock { $0 } }

    /// A logger at `level` that records here.
    public func logger(level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: "rollcall.test") { _ in Handler(recorder: self) }
        logger.logLevel = level
        return logger
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            let text = "\(event.level) \(event.message) " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            recorder.lines.withLock { $0.append(text) }
        }
    }
}
