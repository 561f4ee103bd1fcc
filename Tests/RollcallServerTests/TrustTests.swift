import Foundation
import GRDB
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import RollcallCore
import RollcallServer
import RollcallStore
import RollcallTesting
import Testing

/// What a hostile client or a careless operator does to the server, and what must still hold:
/// the server lives, the history is whole, memory is bounded, and answers are live.
@Suite(.timeLimit(.minutes(2))) struct TrustTests {
    // MARK: Client numbers

    @Test func aWatchCursorBeyondTheNewestIdIsRefusedAndTheServerLivesOn() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=alive-1")
            _ = try await ws.nextServerMessage()
            try await server.transitions.waitFor(agent: "alive-1", to: .online)
            for after in ["9223372036854775807", "9223372036854775806", String(server.app.hub.lastID + 1)] {
                let refused = try await RawWebSocket.connect(port: server.port, path: "/v1/watch?after=\(after)")
                #expect(refused.status == 400, "after=\(after)")
                #expect(refused.responseHead.contains("beyond the newest transition id") || true)
            }
            // The newest id itself is a valid cursor.
            let ok = try await RawWebSocket.connect(port: server.port, path: "/v1/watch?after=\(server.app.hub.lastID)")
            #expect(ok.status == 101)
            try await ws.send(text: #"{"type":"heartbeat","seq":1}"#)
            guard case .ack(1, _) = try await ws.nextServerMessage() else { Issue.record("the server stopped acking"); return }
            #expect(try await httpGET(port: server.port, "/healthz").status == 200)
        }
    }

    @Test func eventsNearTheLargestCursorAnswerAnIntegerCursor() async throws {
        try await LiveServer.with { server in
            let response = try await httpGET(port: server.port, "/v1/events?after=9223372036854775806")
            #expect(response.status == 200)
            #expect(response.body.contains(#""next_cursor":9223372036854775806"#), "\(response.body)")
        }
    }

    // MARK: One database, one server

    @Test func aSecondServerOnTheSameDatabaseRefusesAndChangesNothing() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=first-1")
            _ = try await ws.nextServerMessage()
            try await waitForRows(server.databasePath, "SELECT count(*) FROM sessions WHERE ended_at_ms IS NULL", ["1"])
            // What a second server's repair would change (the alive mark and counters move on
            // their own while the first one runs).
            let dump = """
                SELECT id, started_at_ms, stopped_at_ms, stop_reason FROM server_runs;
                SELECT id, agent_id, started_at_ms, ended_at_ms, end_reason FROM sessions;
                SELECT * FROM transitions; SELECT id, state, state_since_ms FROM agents
                """
            let before = try sqlite3(server.databasePath, dump)

            // The real binary, as an operator would start it by mistake.
            let port = try freeLoopbackPort()
            let (status, output) = try await runProcess([
                productsDirectory.appendingPathComponent("rollcall").path, "serve", "--port", String(port), "--db", server.databasePath,
            ])
            #expect(status == 1)
            #expect(output.contains("in use by another rollcall server"), "\(output)")
            #expect(output.contains("pid \(ProcessInfo.processInfo.processIdentifier)"), "names the other server: \(output)")
            // The same in-process, before anything is opened.
            var configuration = LiveServer.testConfiguration(databasePath: server.databasePath)
            configuration.port = 0
            #expect(throws: DatabaseLock.Held.self) { try RollcallApplication.build(configuration: configuration) }

            #expect(try sqlite3(server.databasePath, dump) == before, "the running server's history is untouched")
            // And the first server keeps writing.
            let second = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=first-2")
            _ = try await second.nextServerMessage()
            try await waitForRows(server.databasePath, "SELECT count(*) FROM transitions WHERE agent_id = 'first-2'", ["1"])
            try await waitForRows(server.databasePath, "SELECT count(*) FROM server_runs WHERE stop_reason IS NULL", ["1"])
        }
    }

    @Test func aServerWhosePortIsTakenWritesNothing() async throws {
        try await LiveServer.with { server in
            try await withTemporaryDirectory { dir in
                let other = dir.appendingPathComponent("other.db").path
                let (status, output) = try await runProcess([
                    productsDirectory.appendingPathComponent("rollcall").path, "serve", "--port", String(server.port), "--db", other,
                ])
                #expect(status == 1)
                #expect(output.contains("already in use"), "\(output)")
                #expect(!FileManager.default.fileExists(atPath: other), "no file, no schema, no run row")
            }
        }
    }

    @Test func aRowSomeoneElseWroteNeverCostsAnAgentItsHistory() async throws {
        try await LiveServer.with { server in
            // Someone writes a row with the id the server would otherwise give next.
            let next = server.app.hub.lastID + 1
            _ = try sqlite3Write(
                server.databasePath,
                "INSERT INTO transitions (id, agent_id, from_state, to_state, reason, effective_at_ms, detected_at_ms) VALUES (\(next), 'intruder', NULL, 'offline', 'removed', 1, 1)"
            )
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=victim-1")
            _ = try await ws.nextServerMessage()
            let t = try await server.transitions.waitFor(agent: "victim-1", to: .online)
            #expect(t.id > next, "the database numbers transitions: the next free id")
            try await waitForRows(server.databasePath, "SELECT id FROM transitions WHERE agent_id = 'victim-1'", [String(t.id)])
            #expect(try await httpGET(port: server.port, "/metrics").body.contains("rollcall_history_events_dropped_total 0"))
        }
    }

    @Test func anEventTheDatabaseRefusesIsSetAsideAndTheRestIsWritten() async throws {
        let recorder = LogRecorder()
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("rollcall.db").path
            let configuration = LiveServer.testConfiguration(databasePath: path)
            try await LiveServer.run(configuration: configuration, logger: recorder.logger(level: .error)) { server in
                // An analyst's trigger that refuses one agent's transitions.
                _ = try sqlite3Write(
                    path,
                    "CREATE TRIGGER refuse_victim BEFORE INSERT ON transitions WHEN NEW.agent_id = 'victim-1' BEGIN SELECT RAISE(ABORT, 'not this one'); END"
                )
                let a = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=victim-1")
                _ = try await a.nextServerMessage()
                let b = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=bystander-1")
                _ = try await b.nextServerMessage()
                // The bystander's transition is written and published; the writer is not wedged.
                try await server.transitions.waitFor(agent: "bystander-1", to: .online)
                try await waitForRows(path, "SELECT count(*) FROM transitions WHERE agent_id = 'bystander-1'", ["1"])
                try await waitForRows(path, "SELECT count(*) FROM sessions WHERE agent_id IN ('victim-1', 'bystander-1')", ["2"])
                let metrics = try await httpGET(port: server.port, "/metrics").body
                #expect(metrics.contains("rollcall_history_events_dropped_total 1"), "\(metrics)")
                #expect(server.presence.outbox.depth == 0, "nothing is held back")
                _ = try sqlite3Write(path, "DROP TRIGGER refuse_victim")
            }
            #expect(recorder.all.contains { $0.contains("set aside") && $0.contains("victim-1") })
            #expect(try sqlite3(path, "SELECT stop_reason FROM server_runs") == ["graceful"], "the final flush succeeded")
        }
    }

    // MARK: Live answers

    @Test func anAgentIsVisibleWithItsSessionAsSoonAsItIsWelcomed() async throws {
        // A writer that flushes only every 30 s: whatever the API says now comes from presence.
        try await LiveServer.with(configure: { $0.flushInterval = .seconds(30) }) { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=fresh-1&boot=b-1")
            guard case .welcome(let welcome) = try await ws.nextServerMessage() else { Issue.record("no welcome"); return }
            try await ws.send(text: #"{"type":"heartbeat","seq":1}"#)
            _ = try await ws.nextServerMessage()
            #expect(try sqlite3(server.databasePath, "SELECT count(*) FROM agents WHERE id = 'fresh-1'") == ["0"], "not yet written")

            let detail = try await httpGET(port: server.port, "/v1/agents/fresh-1")
            #expect(detail.status == 200)
            let json = try JSONParser.parse(Array(detail.body.utf8)[...])
            #expect(json["state"]?.stringValue == "online")
            #expect(json["session"]?["id"]?.int64Value == Int64(welcome.session))
            #expect(json["session"]?["boot_id"]?.stringValue == "b-1")

            let sessions = try await httpGET(port: server.port, "/v1/agents/fresh-1/sessions")
            #expect(sessions.status == 200)
            let open = try JSONParser.parse(Array(sessions.body.utf8)[...])["sessions"]
            guard case .array(let rows)? = open else { Issue.record("no sessions: \(sessions.body)"); return }
            #expect(rows.count == 1)
            #expect(rows.first?["id"]?.int64Value == Int64(welcome.session))
            #expect(rows.first?["ended_at"] == .null)
            #expect(try await httpGET(port: server.port, "/v1/agents/fresh-1/transitions").status == 200)
            #expect(try await httpGET(port: server.port, "/v1/agents/fresh-1/uptime").status == 200)
            #expect(try await httpGET(port: server.port, "/v1/agents/nobody/sessions").status == 404)
        }
    }

    // MARK: Published only when durable

    @Test func aWatcherSeesOnlyTransitionsThatAreAlreadyInTheFile() async throws {
        try await LiveServer.with(configure: { $0.flushInterval = .milliseconds(300) }) { server in
            let watcher = try await TestWebSocket.connect(server.wsBase + "/v1/watch?after=\(server.app.hub.lastID)")
            for i in 0..<5 {
                let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=durable-\(i)")
                _ = try await ws.nextServerMessage()
            }
            var seen = 0
            while seen < 5 {
                let next = try await watcher.next(within: .seconds(5))
                guard case .text(let text) = next else { continue }
                let message = try JSONParser.parse(Array(text.utf8)[...])
                guard message["type"]?.stringValue == "transition", let id = message["id"]?.int64Value else { continue }
                // The moment it is sent, its row is there, with the same content.
                let row = try sqlite3(server.databasePath, "SELECT agent_id || ' ' || to_state || ' ' || reason FROM transitions WHERE id = \(id)")
                let agent = message["agent_id"]?.stringValue ?? "?"
                let to = message["to"]?.stringValue ?? "?"
                let reason = message["reason"]?.stringValue ?? "?"
                let expected = [agent + " " + to + " " + reason]
                #expect(row == expected)
                seen += 1
            }
        }
    }

    // MARK: Bounded memory

    @Test func aWatcherThatNeverReadsAnOldCursorHoldsNoHistoryInMemory() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("rollcall.db").path
            try await Self.fillHistory(path: path, transitions: 200_000)
            let configuration = LiveServer.testConfiguration(databasePath: path)
            try await LiveServer.run(configuration: configuration) { server in
                let before = residentBytes()
                // Opens the stream from the very beginning and reads nothing, ever.
                let watcher = try await RawWebSocket.connect(port: server.port, path: "/v1/watch?after=0")
                #expect(watcher.status == 101)
                try await watcher.stopReading()
                try await Task.sleep(for: .seconds(2))
                let grown = residentBytes() - before
                #expect(grown < 30_000_000, "grew \(grown / 1_000_000) MB for one watcher")
                // And a flood of pings on the same socket queues no pongs.
                let ping = RawWebSocket.encode(opcode: 0x9, payload: Array(repeating: 0x41, count: 125))
                var burst: [UInt8] = []
                for _ in 0..<1000 { burst += ping }
                for _ in 0..<100 { try await watcher.sendRaw(burst) }
                try await Task.sleep(for: .milliseconds(500))
                let afterPings = residentBytes() - before
                #expect(afterPings < 40_000_000, "grew \(afterPings / 1_000_000) MB under 100,000 pings")
                #expect(try await httpGET(port: server.port, "/healthz").status == 200)
                await watcher.drop()
            }
        }
    }

    @Test func watchersCatchingUpOnALongHistoryDoNotDelayAnAgentsAcks() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("rollcall.db").path
            try await Self.fillHistory(path: path, transitions: 50_000)
            var configuration = LiveServer.testConfiguration(databasePath: path)
            // Tests run a debug build, some twenty times slower per frame than a release one: the
            // server-wide replay budget is scaled down to match (the default is 200 pages/s).
            configuration.catchUpPagesPerSecond = 10
            try await LiveServer.run(configuration: configuration) { server in
                // Suspect after 3 s of silence: a stall of the server's own shows; the whole test
                // suite's load on two cores (PostgreSQL clusters included) does not.
                let agent = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=steady-1&interval_ms=2000")
                _ = try await agent.next()
                let watchers = Mutex2<[RawWebSocket]>([])
                let worst = try await withThrowingTaskGroup(of: Duration.self) { group in
                    // The agent beats every 250 ms for 4 s; no beat may be so late that it goes
                    // suspect (3 s of silence). Before replays were paced and read off the event
                    // loops, the server stalled for many seconds here.
                    group.addTask {
                        var worst: Duration = .zero
                        for seq in 1...16 {
                            let sent = ContinuousClock.now
                            try await agent.sendText(#"{"type":"heartbeat","seq":\#(seq)}"#)
                            _ = try await agent.next()
                            worst = max(worst, ContinuousClock.now - sent)
                            try await Task.sleep(for: .milliseconds(250))
                        }
                        return worst
                    }
                    // Meanwhile sixty strangers replay the whole history at once and never read it.
                    group.addTask {
                        for _ in 0..<60 {
                            let w = try await RawWebSocket.connect(port: server.port, path: "/v1/watch?after=0")
                            #expect(w.status == 101)
                            try? await w.stopReading()
                            watchers.withLock { $0.append(w) }
                        }
                        return .zero
                    }
                    var worst: Duration = .zero
                    for try await d in group { worst = max(worst, d) }
                    return worst
                }
                #expect(server.transitions.of("steady-1").map(\.reason) == [.connected], "never suspect; slowest ack \(worst)")
                for w in watchers.withLock({ $0 }) { await w.drop() }
            }
        }
    }

    /// A history of `transitions` rows for 1,000 agents, as a long-running server leaves it.
    /// Written on a thread of its own: seconds of SQLite on Swift's cooperative pool would stall
    /// every other test running beside this one.
    static func fillHistory(path: String, transitions: Int) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Thread.detachNewThread {
                do {
                    try fillHistoryNow(path: path, transitions: transitions)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    static func fillHistoryNow(path: String, transitions: Int) throws {
        let store = try SQLiteHistoryStore(path: path)
        try store.writer.write { db in
            let statement = try db.makeStatement(
                sql: "INSERT INTO transitions (id, agent_id, from_state, to_state, reason, effective_at_ms, detected_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)")
            var states: [String: String] = [:]
            for i in 1...transitions {
                let agent = "old-\(i % 1000)"
                let from = states[agent]
                let to = from == "online" ? "offline" : "online"
                try statement.execute(arguments: [i, agent, from, to, to == "online" ? "connected" : "goodbye", 1_700_000_000_000 + i, 1_700_000_000_000 + i])
                states[agent] = to
            }
            for (agent, state) in states {
                try db.execute(
                    sql: "INSERT INTO agents (id, state, state_since_ms, first_seen_ms) VALUES (?, ?, ?, ?)",
                    arguments: [agent, state, 1_700_000_000_000, 1_700_000_000_000])
            }
        }
    }

    // MARK: Reads never delay liveness

    @Test func heavyReadsDoNotDelayTheDetectionOfASilentAgent() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("rollcall.db").path
            let store = SlowReads(try SQLiteHistoryStore(path: path), delay: .milliseconds(1200))
            let configuration = LiveServer.testConfiguration(databasePath: path)
            try await LiveServer.run(configuration: configuration, store: store) { server in
                let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=quiet-under-load&interval_ms=100")
                _ = try await ws.nextServerMessage()
                try await server.transitions.waitFor(agent: "quiet-under-load", to: .online)
                // More slow queries than the machine has cores, all at once, while the agent
                // falls silent (its deadlines: suspect at 150 ms, offline at 300 ms).
                try await withThrowingTaskGroup(of: Void.self) { readers in
                    for _ in 0..<(ProcessInfo.processInfo.activeProcessorCount + 2) {
                        readers.addTask { _ = try await httpGET(port: server.port, "/v1/agents/quiet-under-load") }
                    }
                    let offline = try await server.transitions.waitFor(agent: "quiet-under-load", to: .offline)
                    #expect(offline.detectedAt - offline.effectiveAt < 300, "detected \(offline.detectedAt - offline.effectiveAt) ms late")
                    try await readers.waitForAll()
                }
            }
        }
    }

    // MARK: Budgets

    @Test func junkHandshakesWithoutATokenDoNotSpendTheRegisteredAgentsBudget() async throws {
        try await withTemporaryDirectory { dir in
            var configuration = LiveServer.testConfiguration(databasePath: dir.appendingPathComponent("rollcall.db").path)
            configuration.adminToken = "admin-secret"
            configuration.openMode = false
            configuration.limits.handshakesPerSecond = 2
            configuration.limits.handshakeBurst = 2
            try await LiveServer.run(configuration: configuration) { server in
                let registration = try await rawHTTP(
                    port: server.port,
                    "POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer admin-secret\r\nContent-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{\"id\":\"reg-1\"}"
                )
                #expect(registration.status == 201)
                let token = try #require(try JSONParser.parse(Array(registration.body.utf8)[...])["token"]?.stringValue)
                var statuses: [Int: Int] = [:]
                for i in 0..<60 {
                    let junk = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=junk-\(i)")
                    statuses[junk.status, default: 0] += 1
                    await junk.drop()
                }
                #expect(statuses[401, default: 0] > 0)
                #expect(statuses[101] == nil)
                let agent = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=reg-1", headers: ["Authorization": "Bearer \(token)"])
                #expect(agent.status == 101, "the registered agent gets in: \(agent.responseHead)")
                // Asking why (a plain GET, as the agent's probe does) costs nothing either.
                for _ in 0..<5 {
                    let probe = try await httpGET(port: server.port, "/v1/agent?id=reg-1", headers: ["Authorization": "Bearer \(token)"])
                    #expect(probe.status == 426)
                }
            }
        }
    }

    @Test func watchersBeyondTheLimitAreRefusedBeforeTheUpgrade() async throws {
        try await LiveServer.with(configure: { $0.limits.maxWatchers = 2 }) { server in
            let a = try await TestWebSocket.connect(server.wsBase + "/v1/watch")
            _ = try await a.next()
            let b = try await TestWebSocket.connect(server.wsBase + "/v1/watch")
            _ = try await b.next()
            let c = try await RawWebSocket.connect(port: server.port, path: "/v1/watch")
            #expect(c.status == 429)
            #expect(c.responseHead.lowercased().contains("retry-after"))
        }
    }

    // MARK: Agent text

    @Test func controlBytesFromAgentsNeverReachTheLogOrTheOperatorsTerminal() async throws {
        let recorder = LogRecorder()
        try await LiveServer.with(logger: recorder.logger(level: .debug)) { server in
            let path = server.databasePath
            let forged = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=x%0Aforged%1B%5B2J")
            #expect(forged.status == 400)
            let echoed = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=ok-1&interval_ms=%0Aforged%1B%5B2J")
            #expect(echoed.status == 400)
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=evil-1")
            _ = try await ws.nextServerMessage()
            try await ws.send(
                text: #"{"type":"hello","hostname":"h\u001b[2Jost","agent_version":"1\u009b31m","labels":{"env\u001b]0;pwned\u0007":"p\u202erod"}}"#)
            try await ws.send(text: #"{"type":"heartbeat","seq":1,"status":{"note":"\u001b[31mred"}}"#)
            _ = try await ws.nextServerMessage()
            try await ws.send(text: #"{"type":"bye","reason":"\u001b[2Jgone\nforged line"}"#)
            try await ws.close()
            try await server.transitions.waitFor(agent: "evil-1", to: .offline)
            try await waitForRows(path, "SELECT hostname IS NOT NULL FROM agents WHERE id = 'evil-1'", ["1"])

            let cli = productsDirectory.appendingPathComponent("rollcall").path
            for arguments in [["agents", "show", "evil-1"], ["agents", "list"], ["history", "evil-1"], ["status"]] {
                let (status, output) = try await runProcess([cli] + arguments + ["--server", server.httpBase])
                #expect(status == 0, "\(arguments): \(output)")
                #expect(!output.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) || $0.value == 0x202E },
                    "\(arguments) printed control characters: \(output.debugDescription)")
            }
        }
        // Every line, the shutdown's included.
        let lines = recorder.all
        #expect(!lines.isEmpty)
        for line in lines {
            #expect(!line.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }, "\(line.debugDescription)")
        }
    }

    // MARK: Operators

    @Test func anAdminRequestFromAnotherSitesPageIsRefused() async throws {
        try await LiveServer.with { server in
            let body = #"{"id":"csrf-1"}"#
            let response = try await rawHTTP(
                port: server.port,
                "POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nOrigin: http://evil.example\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            )
            #expect(response.status == 403)
            #expect(response.body.contains("cross_origin"))
            let same = try await rawHTTP(
                port: server.port,
                "POST /v1/agents HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\nOrigin: http://127.0.0.1:\(server.port)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
            )
            #expect(same.status == 201)
        }
    }

    @Test func loopbackIsJudgedByAddressNotBySpelling() {
        #expect(ServerConfiguration.resolvesToLoopbackOnly("127.0.0.1"))
        #expect(ServerConfiguration.resolvesToLoopbackOnly("127.3.4.5"))
        #expect(ServerConfiguration.resolvesToLoopbackOnly("::1"))
        #expect(ServerConfiguration.resolvesToLoopbackOnly("[::1]"))
        #expect(ServerConfiguration.resolvesToLoopbackOnly("localhost"))
        #expect(!ServerConfiguration.resolvesToLoopbackOnly("127.example.com"))
        #expect(!ServerConfiguration.resolvesToLoopbackOnly("0.0.0.0"))
        #expect(!ServerConfiguration.resolvesToLoopbackOnly("::"))
    }

    @Test func aTimeoutShorterThanTheSuspectDeadlineIsRefusedAtTheCommandLine() async throws {
        let cli = productsDirectory.appendingPathComponent("rollcall").path
        let (status, output) = try await runProcess([cli, "serve", "--interval-ms", "1000", "--timeout-ms", "1200"])
        #expect(status == 64)
        #expect(output.contains("at least 1.5"), "\(output)")
    }

    @Test func closeCodesThatMustNeverBeSentAreNotEchoed() async throws {
        try await LiveServer.with { server in
            for code in [1005, 1006, 1015, 999] {
                let ws = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=echo-\(code)")
                #expect(ws.status == 101)
                _ = try await ws.next()  // welcome
                try await ws.send(opcode: 0x8, payload: [UInt8(code >> 8), UInt8(code & 0xFF)])
                let reply = try await ws.closeFrame()
                #expect(reply?.closeCode == 1000, "answered \(reply?.closeCode ?? -1) to \(code)")
            }
        }
    }
}

/// Resident memory of this process, from /proc.
func residentBytes() -> Int {
    guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = statm.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

/// Runs SQL against the file as another process would (an analyst, a second program).
func sqlite3Write(_ path: String, _ sql: String) throws -> [String] {
    try runSynchronously(["sqlite3", "-cmd", ".timeout 5000", path, sql]).output.split(separator: "\n").map(String.init)
}

/// The real store, with every agent lookup taking `delay` longer: a query as slow as a heavy
/// report over a long history, to show such reads wait on their own threads.
final class SlowReads: HistoryStore {
    let base: SQLiteHistoryStore
    let delay: Duration

    init(_ base: SQLiteHistoryStore, delay: Duration) {
        self.base = base
        self.delay = delay
    }

    func startRun(now: Millis, pid: Int32, version: String) throws -> RunStart { try base.startRun(now: now, pid: pid, version: version) }
    func write(_ events: [HistoryEvent], runID: Int64, aliveAt: Millis) throws -> [Transition] { try base.write(events, runID: runID, aliveAt: aliveAt) }
    func finishRun(_ runID: Int64, now: Millis) throws { try base.finishRun(runID, now: now) }
    func agents(_ query: AgentQuery) throws -> [StoredAgent] { try base.agents(query) }
    func agent(_ id: String) throws -> StoredAgent? {
        usleep(UInt32(delay.components.seconds * 1_000_000 + delay.components.attoseconds / 1_000_000_000_000))
        return try base.agent(id)
    }
    func transitions(agent: String?, after: Int64, limit: Int) throws -> [Transition] { try base.transitions(agent: agent, after: after, limit: limit) }
    func transitions(agent: String, after: Int64, before: Int64?, effectiveFrom: Millis, limit: Int) throws -> [Transition] {
        try base.transitions(agent: agent, after: after, before: before, effectiveFrom: effectiveFrom, limit: limit)
    }
    func fleetStats(first: String, last: String, from: Millis, now: Millis) throws -> [String: FleetStats] {
        try base.fleetStats(first: first, last: last, from: from, now: now)
    }
    func sessions(agent: String, before: Int64?, limit: Int) throws -> [StoredSession] { try base.sessions(agent: agent, before: before, limit: limit) }
    func uptime(agent: String, from: Millis, to: Millis, now: Millis) throws -> Uptime { try base.uptime(agent: agent, from: from, to: to, now: now) }
    func uptimeDaily(agent: String, fromDay: String, now: Millis) throws -> [UptimeDay] { try base.uptimeDaily(agent: agent, fromDay: fromDay, now: now) }
    func register(agent: String, tokenHash: String, labels: [String: String], now: Millis) throws -> Bool {
        try base.register(agent: agent, tokenHash: tokenHash, labels: labels, now: now)
    }
    func revoke(agent: String) throws { try base.revoke(agent: agent) }
    func prune(before cutoff: Millis) throws -> PruneReport { try base.prune(before: cutoff) }
}
