import Foundation
import Logging
import NIOCore
import RollcallClient
import RollcallCore
import RollcallDashboard
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `rollcall top`: the full-screen dashboard against one server. A `Service`, so `rollcall demo`
/// runs it in the same group as the server and the simulated fleet.
///
/// One task owns the ``DashboardState``: keys, the watch stream, polled statistics and detail pages
/// all arrive as inputs on one stream and are applied in order; frames are drawn after a key at
/// once, otherwise at most every 100 ms, and at least every second (ages move on).
public struct LiveDashboard: Service {
    public struct Configuration: Sendable {
        /// The server's HTTP address, e.g. `http://127.0.0.1:7777`.
        public var server: String
        /// PEM CA bundle for an https server, instead of the system's trust store.
        public var caFile: String?
        public var colorMode: ColorMode
        /// Standalone, the dashboard handles SIGTERM, SIGINT and SIGHUP itself; inside a service
        /// group it leaves them to the group and ends on graceful shutdown.
        public var trapTerminationSignals: Bool
        /// Pause between two rounds of `/v1/agents?window=24h` (last seen, RTT, flaps, uptime).
        public var statisticsInterval: Duration
        public var now: @Sendable () -> Millis

        public init(
            server: String, caFile: String? = nil, colorMode: ColorMode, trapTerminationSignals: Bool = true, statisticsInterval: Duration = .seconds(3),
            now: @escaping @Sendable () -> Millis = LiveDashboard.wallClock
        ) {
            self.server = server
            self.caFile = caFile
            self.colorMode = colorMode
            self.trapTerminationSignals = trapTerminationSignals
            self.statisticsInterval = statisticsInterval
            self.now = now
        }
    }

    @Sendable public static func wallClock() -> Millis { Millis((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    enum Input: Sendable {
        case bytes([UInt8])
        case resize
        case terminate
        case tick
        case feed(WatchFeed.Event)
        case summary(Double)
        case statistics([AgentRow])
        case statisticsRoundDone
        case detail(AgentDetail)
    }

    let configuration: Configuration
    let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        // Parsed before the screen is taken, so a bad address or CA file is said in plain text.
        let client = try APIClient(baseURL: configuration.server, timeout: .seconds(5), caFile: configuration.caFile)
        try Terminal.enter()
        defer { Terminal.restore() }
        let (inputs, continuation) = AsyncStream.makeStream(of: Input.self)
        let configuration = self.configuration
        let logger = self.logger
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await Self.readKeys(into: continuation) }
                group.addTask {
                    var signals: [UnixSignal] = [.sigwinch]
                    if configuration.trapTerminationSignals { signals += [.sigterm, .sigint, .sighup] }
                    for await signal in await UnixSignalsSequence(trapping: signals) {
                        continuation.yield(signal == .sigwinch ? .resize : .terminate)
                    }
                }
                group.addTask {
                    await WatchFeed(server: client.server, tls: client.tls, logger: logger).run { continuation.yield(.feed($0)) }
                }
                group.addTask {
                    while !Task.isCancelled {
                        if let rate = try? await client.get("/v1/summary")["heartbeats_per_second"]?.doubleValue { continuation.yield(.summary(rate)) }
                        try? await Task.sleep(for: .seconds(1))
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(100))
                        continuation.yield(.tick)
                    }
                }
                var loop = Loop(configuration: configuration)
                var statisticsDue = ContinuousClock.now
                var statisticsRunning = false
                var statisticsStarted = ContinuousClock.now
                var detailDue = ContinuousClock.now
                var detailRunning = false
                loop.draw(force: true)
                for await input in inputs {
                    if loop.handle(input) == .quit { break }
                    if case .statisticsRoundDone = input {
                        statisticsRunning = false
                        // Paced so that fetching is at most a twentieth of the time: a round costs
                        // the server about what it costs us to wait for it (≈ 12 ms per 1,000
                        // agents), so a big fleet is refreshed less often rather than loading it.
                        let took = ContinuousClock.now - statisticsStarted
                        statisticsDue = statisticsStarted + max(configuration.statisticsInterval, took * 20)
                    }
                    if case .detail = input { detailRunning = false }
                    // Background fetches are children of this group, started from here so the loop
                    // decides when: one round at a time, paced by the configured interval.
                    let now = ContinuousClock.now
                    if !statisticsRunning, now >= statisticsDue, loop.state.connection == .live {
                        statisticsRunning = true
                        statisticsStarted = now
                        group.addTask {
                            await Self.fetchStatistics(client: client) { continuation.yield(.statistics($0)) }
                            continuation.yield(.statisticsRoundDone)
                        }
                    }
                    if let id = loop.state.detail?.id, !detailRunning, now >= detailDue || loop.detailRequested {
                        detailRunning = true
                        loop.detailRequested = false
                        detailDue = now + .seconds(2)
                        let now = configuration.now()
                        group.addTask { continuation.yield(.detail(await Self.fetchDetail(id, client: client, now: now))) }
                    }
                }
                Terminal.restore()
                group.cancelAll()
                continuation.finish()
            }
        } onGracefulShutdown: {
            continuation.yield(.terminate)
        }
    }

    /// Reads stdin on a thread of its own (a blocking read must not hold one of the few
    /// cooperative threads), polling every 100 ms for the end.
    static func readKeys(into continuation: AsyncStream<Input>.Continuation) async {
        let stop = StopFlag()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    var buffer = [UInt8](repeating: 0, count: 1024)
                    while !stop.isSet {
                        var fd = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
                        guard poll(&fd, 1, 100) > 0 else { continue }
                        let n = read(0, &buffer, buffer.count)
                        if n <= 0 {
                            if n < 0, errno == EINTR || errno == EAGAIN { continue }
                            continuation.yield(.terminate)  // the terminal went away
                            break
                        }
                        continuation.yield(.bytes(Array(buffer[0..<n])))
                    }
                    done.resume()
                }
                thread.name = "rollcall-top-keys"
                thread.start()
            }
        } onCancel: {
            stop.set()
        }
    }

    /// One round of `/v1/agents?window=24h`, a page at a time.
    static func fetchStatistics(client: APIClient, emit: @Sendable ([AgentRow]) -> Void) async {
        var after: String? = nil
        repeat {
            guard !Task.isCancelled,
                let page = try? await client.get("/v1/agents?window=24h&limit=1000" + (after.map { "&after=" + QueryString.escape($0) } ?? ""))
            else { return }
            if case .array(let items)? = page["agents"] { emit(items.compactMap(Messages.agentRow)) }
            after = page["next_cursor"]?.stringValue
        } while after != nil
    }

    static func fetchDetail(_ id: String, client: APIClient, now: Millis) async -> AgentDetail {
        let path = "/v1/agents/" + QueryString.escape(id)
        do {
            let agent = try await client.get(path)
            var pages: [JSONValue] = []
            var before = Int64.max
            // The newest 5,000 transitions of the last 24 h at most: enough for the bar and the list.
            for _ in 0..<5 {
                let page = try await client.get(path + "/transitions?window=24h&limit=1000&before=\(before)")
                pages.append(page)
                guard let next = page["next_cursor"]?.int64Value else { break }
                before = next
            }
            let sessions = try await client.get(path + "/sessions?limit=20")
            return Messages.detail(id: id, agent: agent, transitions: pages, sessions: sessions, windowStart: now - 86_400_000, loadedAt: now)
        } catch {
            var d = AgentDetail(id: id)
            d.loadedAt = now
            d.error = (error as? APIClient.Failure)?.status == 404 ? "no such agent (removed?)" : "\(error)"
            return d
        }
    }

    final class StopFlag: Sendable {
        private let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .relaxed) }
        func set() { flag.store(true, ordering: .relaxed) }
    }

    /// The loop's state and drawing, apart from the tasks around it.
    struct Loop {
        enum Outcome { case quit, keepGoing }

        let configuration: Configuration
        var state: DashboardState
        var writer: ScreenWriter
        var decoder = KeyDecoder()
        var size = Terminal.size()
        let renderer: Renderer
        var dirty = false
        var drawnAt: Millis = 0
        var detailRequested = false

        init(configuration: Configuration) {
            self.configuration = configuration
            state = DashboardState(server: configuration.server)
            writer = ScreenWriter(mode: configuration.colorMode)
            renderer = Renderer(theme: Theme(configuration.colorMode))
        }

        mutating func handle(_ input: Input) -> Outcome {
            let now = configuration.now()
            switch input {
            case .bytes(let bytes):
                for key in decoder.decode(bytes) {
                    state.pageSize = Renderer.tableRows(for: size)
                    state.refreshOrder(now: now)
                    switch state.handle(key, now: now) {
                    case .quit: return .quit
                    case .openDetail: detailRequested = true
                    case nil: break
                    }
                }
                draw(force: true)
                return .keepGoing
            case .resize:
                size = Terminal.size()
                writer.invalidate()
                draw(force: true)
                return .keepGoing
            case .terminate:
                return .quit
            case .tick:
                break
            case .feed(.status(let status)):
                state.connection = status
                dirty = true
            case .feed(.watch(.snapshot(let agents, let cursor))):
                state.fleet.applySnapshot(agents, cursor: cursor)
                dirty = true
            case .feed(.watch(.transition(let t))):
                state.fleet.apply(t)
                if let d = state.detail, d.id == t.agentID.rawValue { detailRequested = true }
                dirty = true
            case .summary(let rate):
                state.heartbeatsPerSecond = rate
                dirty = true
            case .statistics(let page):
                state.fleet.applyStatistics(page)
                dirty = true
            case .statisticsRoundDone:
                break
            case .detail(let d):
                if state.detail?.id == d.id {
                    state.detail = d
                    dirty = true
                }
            }
            if (dirty && now - drawnAt >= 100) || now - drawnAt >= 1000 { draw(force: false) }
            return .keepGoing
        }

        mutating func draw(force: Bool) {
            let now = configuration.now()
            state.pageSize = Renderer.tableRows(for: size)
            state.refreshOrder(now: now, minimumInterval: force ? 0 : 250)
            Terminal.write(writer.update(to: renderer.render(state, size: size, now: now)))
            drawnAt = now
            dirty = false
        }
    }
}
