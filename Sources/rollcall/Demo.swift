import ArgumentParser
import Logging
import RollcallCore
import RollcallDemo
import RollcallServer
import ServiceLifecycle
import UnixSignals

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A first look: a server on a local database, a simulated fleet, and its transitions live.",
        discussion: "Ctrl-C stops everything and leaves a valid history file to query with sqlite3."
    )

    @OptionGroup var options: ServerOptions

    @Option(help: "How many simulated agents.")
    var agents: Int = 36

    func validate() throws {
        guard (1...5000).contains(agents) else { throw ValidationError("--agents must be between 1 and 5000, e.g. --agents 36") }
    }

    func run() async throws {
        let configuration = options.serverConfiguration(defaultIntervalMs: 1000)
        let logger = options.makeLogger(default: .warning)
        let interval = configuration.liveness.defaultIntervalMs
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = try RollcallApplication.build(configuration: configuration, logger: logger) { port in
            continuation.yield(port)
            continuation.finish()
        }
        let transitions = app.hub.subscribe()
        let count = agents
        let db = configuration.databasePath
        let host = configuration.host
        // The fleet needs the bound port, so it starts once the server listens.
        let fleet = DeferredService {
            var port = 0
            for await p in stream { port = p }
            print("rollcall demo: server on http://\(host):\(port), history in \(db), \(count) agents beating every \(interval) ms")
            print("try: curl -s http://\(host):\(port)/v1/agents   ·   sqlite3 \(db) 'select * from transitions'   ·   Ctrl-C to stop\n")
            return DemoFleet(serverURL: "ws://\(host):\(port)", count: count, intervalMs: interval, logger: logger)
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [app.application, LiveLog(transitions: transitions), fleet],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        print("\nrollcall demo stopped; the history is in \(db)")
    }
}

/// A service built once something it needs (the bound port) is known.
struct DeferredService<S: Service>: Service {
    let make: @Sendable () async -> S

    func run() async throws {
        let service = await make()
        try await service.run()
    }
}
