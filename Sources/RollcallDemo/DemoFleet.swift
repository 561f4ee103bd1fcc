import Logging
import RollcallAgent
import RollcallCore
import ServiceLifecycle
import Synchronization

/// A few dozen simulated agents over real WebSocket connections that come, go, flap, restart and
/// vanish, so a first look at Rollcall has something to watch.
public struct DemoFleet: Service {
    /// What one simulated agent does.
    public enum Behaviour: String, Sendable, CaseIterable {
        /// Beats every interval, forever.
        case steady
        /// Now and then skips a few beats: online → suspect → online.
        case flappy
        /// Says bye after a while and comes back later, sometimes as a new process (new boot id).
        case commuter
        /// Stops beating with the socket open: suspect, then offline by timeout (close 4000); returns later.
        case vanisher
        /// Drops its connection without a word and reconnects: suspect `disconnected`, then `reconnected`.
        case dropper
    }

    public let serverURL: String
    public let count: Int
    public let intervalMs: Int64
    let logger: Logger
    /// Triggered by the demo's graceful shutdown: every simulated agent says bye.
    let shutdown = AgentShutdown()

    public init(serverURL: String, count: Int = 36, intervalMs: Int64 = 1000, logger: Logger) {
        self.serverURL = serverURL
        self.count = count
        self.intervalMs = intervalMs
        self.logger = logger
    }

    public static func behaviour(forIndex i: Int) -> Behaviour {
        switch i % 12 {
        case 0, 1, 2, 3, 4, 5: return .steady
        case 6, 7: return .flappy
        case 8, 9: return .commuter
        case 10: return .vanisher
        default: return .dropper
        }
    }

    static let prefixes = ["web", "db", "cache", "queue", "edge", "batch"]

    public static func agentID(forIndex i: Int) -> AgentID {
        AgentID("\(prefixes[i % prefixes.count])-\(String(format2(i / prefixes.count + 1)))")!
    }

    static func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    public func run() async throws {
        // The fleet's agents say bye when the demo shuts down gracefully.
        try await withGracefulShutdownHandler {
            try await runFleet()
        } onGracefulShutdown: {
            shutdown.trigger()
        }
    }

    func runFleet() async throws {
        await withDiscardingTaskGroup { group in
            for i in 0..<count {
                let behaviour = Self.behaviour(forIndex: i)
                let id = Self.agentID(forIndex: i)
                group.addTask {
                    // Stagger the arrivals over the first few seconds.
                    await shutdown.pause(.milliseconds(Int64.random(in: 0...3000)))
                    await simulate(id: id, behaviour: behaviour, index: i)
                }
            }
            // Returns on graceful shutdown: every agent says bye and the group drains.
        }
    }

    func simulate(id: AgentID, behaviour: Behaviour, index: Int) async {
        var configuration = AgentConfiguration(serverURL: serverURL, agentID: id)
        configuration.requestedIntervalMs = intervalMs
        configuration.labels = ["role": String(id.rawValue.prefix(while: { $0 != "-" })), "demo": behaviour.rawValue]
        configuration.hostname = "\(id.rawValue).demo"
        configuration.binary = index % 3 == 0
        configuration.initialBackoff = .milliseconds(300)
        configuration.maxBackoff = .seconds(3)
        let quiet = Logger(label: "demo.agent", factory: { _ in SwiftLogNoOpLogHandler() })
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            switch behaviour {
            case .steady:
                try? await AgentRunner(configuration: configuration, logger: quiet, shutdown: shutdown).run()
                return
            case .flappy:
                var events = AgentEvents()
                // Skip three beats in every 20–40: long enough to be overdue, short of the timeout.
                let period = UInt64.random(in: 20...40)
                events.shouldBeat = { seq in seq % period < period - 3 || seq < period }
                try? await AgentRunner(configuration: configuration, logger: quiet, events: events, shutdown: shutdown).run()
                return
            case .commuter, .vanisher, .dropper:
                await cycle(behaviour: behaviour, configuration: &configuration, logger: quiet)
            }
        }
    }

    /// One visit: connect, stay a while, leave in the behaviour's way, stay away a while.
    func cycle(behaviour: Behaviour, configuration: inout AgentConfiguration, logger: Logger) async {
        let stay = Duration.milliseconds(Int64.random(in: 10_000...40_000))
        let away = Duration.milliseconds(Int64.random(in: 4_000...20_000))
        let silentAfter = UInt64(stay.components.seconds * 1000 / max(1, intervalMs))
        var events = AgentEvents()
        if behaviour == .vanisher { events.shouldBeat = { seq in seq < silentAfter } }
        let runner = AgentRunner(configuration: configuration, logger: logger, events: events, shutdown: shutdown)
        switch behaviour {
        case .vanisher:
            // Goes silent with the socket open; the server times it out (4000) and the runner ends.
            _ = await runner.runOnce()
        case .commuter:
            // Leaves politely: bye, then close 1000.
            _ = await runner.runOnce(leaveAfter: stay)
        case .dropper, .steady, .flappy:
            // Vanishes from the network: cancelling drops the TCP connection without a close frame.
            await withTaskGroup(of: Void.self) { group in
                group.addTask { _ = await runner.runOnce() }
                await shutdown.pause(stay)
                group.cancelAll()
            }
        }
        if Task.isShuttingDownGracefully { return }
        // Droppers come back inside the timeout (a blip); others stay away longer.
        let rest: Duration = behaviour == .dropper ? .milliseconds(Int64.random(in: 200...Int64(intervalMs))) : away
        await shutdown.pause(rest)
        // Half the commuters come back as a new process.
        if behaviour == .commuter && Bool.random() { configuration.bootID = AgentConfiguration.makeBootID() }
    }
}
