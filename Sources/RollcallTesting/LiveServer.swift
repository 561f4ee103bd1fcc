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
    public var gateway: Gateway { app.gateway }

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
    public static func with<T: Sendable>(
        databasePath: String? = nil,
        configure: (inout ServerConfiguration) -> Void = { _ in },
        _ body: @Sendable (LiveServer) async throws -> T
    ) async throws -> T {
        try await withTemporaryDirectory { dir in
            let path = databasePath ?? dir.appendingPathComponent("rollcall.db").path
            var configuration = testConfiguration(databasePath: path)
            configure(&configuration)
            return try await run(configuration: configuration, body)
        }
    }

    public static func run<T: Sendable>(configuration: ServerConfiguration, _ body: @Sendable (LiveServer) async throws -> T) async throws -> T {
        var logger = Logger(label: "rollcall.test")
        logger.logLevel = ProcessInfo.processInfo.environment["ROLLCALL_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let app = try RollcallApplication.build(configuration: configuration, logger: logger) { port in
            portContinuation.yield(port)
            portContinuation.finish()
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
