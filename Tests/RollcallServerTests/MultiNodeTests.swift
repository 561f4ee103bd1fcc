import Foundation
import HTTPTypes
import RollcallCore
import RollcallStore
import RollcallTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Several real `rollcall serve` nodes on one real PostgreSQL (SPEC §10).
@Suite(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(2)))
struct MultiNodeTests {
    /// Starts `names` as nodes on `database`, each on a free loopback port.
    func nodes(_ names: [String], database: String, arguments: [String] = []) async throws -> [ServerProcess] {
        var nodes: [ServerProcess] = []
        for name in names {
            let node = try ServerProcess(
                port: try freeLoopbackPort(), databasePath: database, extraArguments: ["--open", "--node-id", name, "--node-lease", "2s"] + arguments)
            try await node.waitUntilReady()
            nodes.append(node)
        }
        return nodes
    }

    func rows(_ database: String, _ sql: String) -> [String]? { try? TestStore.psqlRows(database, sql) }

    /// Connects as `agent` to `node` and reads its welcome.
    func connect(_ agent: String, to node: ServerProcess) async throws -> TestWebSocket {
        let socket = try await TestWebSocket.connect("ws://127.0.0.1:\(node.port)/v1/agent?id=\(agent)")
        guard case .welcome = try await socket.nextServerMessage() else { throw TestTimeout(what: "a welcome") }
        return socket
    }

    /// Real `rollcall-agent` processes, one per id, connecting through `balancer`.
    func startAgents(_ ids: [String], through balancer: HAProxy) throws -> [Process] {
        var agents: [Process] = []
        for id in ids {
            let agent = Process()
            agent.executableURL = productsDirectory.appendingPathComponent("rollcall-agent")
            agent.arguments = ["--server", "ws://127.0.0.1:\(balancer.port)", "--id", id, "--log-level", "critical"]
            agent.standardOutput = FileHandle.nullDevice
            agent.standardError = FileHandle.nullDevice
            do {
                try agent.run()
            } catch {
                stop(agents)
                throw error
            }
            agents.append(agent)
        }
        return agents
    }

    func stop(_ agents: [Process]) {
        for agent in agents where agent.isRunning { kill(agent.processIdentifier, SIGKILL) }
    }

    /// Beats on `socket` every 100 ms until cancelled, as a live agent does.
    func beating(_ socket: TestWebSocket) -> Task<Void, Never> {
        Task {
            var seq = 1
            while !Task.isCancelled {
                try? await socket.send(text: #"{"type":"heartbeat","seq":\#(seq)}"#)
                seq += 1
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    @Test func anAgentThatConnectsToAnotherNodeMovesThereAndTheOldOneClosesItWith4001WithoutATransition() async throws {
        let database = try TestStore.createDatabase()
        let nodes = try await nodes(["node-a", "node-b"], database: database)
        let (a, b) = (nodes[0], nodes[1])
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        let first = try await connect("mover", to: a)
        try await waitUntil("mover online, owned by node-a") {
            rows(database, "SELECT a.state || ':' || o.node_id || ':' || o.epoch FROM agents a JOIN agent_owners o ON o.agent_id = a.id") == ["online:node-a:1"]
        }
        // The agent's new connection lands on node B (a balancer's choice) while A still holds the old one.
        let second = try await connect("mover", to: b)
        let moved = ContinuousClock.now
        let closed = try await first.closed(within: .seconds(5))
        let took = ContinuousClock.now - moved
        #expect(closed.code == 4001, "\(closed)")
        #expect(took < .seconds(1), "node-a closed the old connection after \(took)")
        try await second.send(text: #"{"type":"heartbeat","seq":1}"#)
        guard case .ack(1, _) = try await second.nextServerMessage() else { Issue.record("node-b does not ack the moved agent"); return }
        try await waitUntil("node-a's session of mover closed") {
            rows(database, "SELECT count(*) FROM sessions WHERE ended_at_ms IS NULL") == ["1"]
        }
        #expect(rows(database, "SELECT o.node_id || ':' || o.epoch FROM agent_owners o") == ["node-b:2"])
        #expect(rows(database, "SELECT end_reason || ':' || close_code FROM sessions WHERE ended_at_ms IS NOT NULL") == ["superseded:4001"])
        // Presence did not blink: the one transition is the first connection.
        #expect(rows(database, "SELECT COALESCE(from_state, '-') || ':' || to_state || ':' || reason FROM transitions") == ["-:online:connected"])
        // Either node answers for it, from what its owner wrote.
        for node in nodes {
            let answer = try await httpGET(port: node.port, "/v1/agents/mover")
            #expect(answer.status == 200 && answer.body.contains(#""state":"online""#), "\(answer.body.prefix(300))")
        }
    }

    @Test func aWatcherOnOneNodeSeesEveryNodesTransitionsInIDOrderAndEveryNodeServesTheSameEvents() async throws {
        let database = try TestStore.createDatabase()
        let nodes = try await nodes(["node-a", "node-b"], database: database)
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        let watcher = try await RawWebSocket.connect(port: nodes[1].port, path: "/v1/watch?after=0")
        var agents: [TestWebSocket] = []
        for i in 0..<6 { agents.append(try await connect("w\(i)", to: nodes[i % 2])) }
        for (i, agent) in agents.enumerated() where i % 3 == 0 { try await agent.close() }
        // Every transition, whichever node made it, reaches the watcher on node-b, ids increasing.
        var seen: [(id: Int64, agent: String)] = []
        func receive(until count: Int) async throws {
            while seen.count < count {
                guard let frame = try await watcher.next() else { throw TestTimeout(what: "\(count) transitions (got \(seen.count))") }
                let event = try JSONParser.parse(frame.text)
                guard event["type"]?.stringValue == "transition", let id = event["id"]?.int64Value, let agent = event["agent_id"]?.stringValue else { continue }
                seen.append((id, agent))
            }
        }
        try await receive(until: 8)
        // The nodes' listening connections are cut; they make them again, and nothing is missed.
        let listening = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        #expect(rows(database, listening) == ["2"])
        _ = rows(database, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
        for i in 6..<9 { agents.append(try await connect("w\(i)", to: nodes[0])) }
        try await agents[6].close()
        try await receive(until: 12)
        try await waitUntil("both nodes listen again") { rows(database, listening) == ["2"] }
        #expect(seen.map(\.id) == seen.map(\.id).sorted() && Set(seen.map(\.id)).count == seen.count)
        let table = rows(database, "SELECT id || ':' || agent_id FROM transitions ORDER BY id") ?? []
        #expect(seen.map { "\($0.id):\($0.agent)" } == table, "no gap against the table")
        // The same page of the one log from either node (the agents here do not beat, so later
        // transitions may land between the two requests: the page is bounded by what was seen).
        let fromA = try await httpGET(port: nodes[0].port, "/v1/events?after=0&limit=\(seen.count)")
        let fromB = try await httpGET(port: nodes[1].port, "/v1/events?after=0&limit=\(seen.count)")
        #expect(fromA.status == 200 && fromA.body == fromB.body)
    }

    // The agents ask for 2 s intervals (suspect after 3 s of silence): on a loaded machine a test's
    // own beats may stall for a second, and that is not what these tests are about.
    @Test func aKilledNodesAgentsAreTakenOverThoseThatComeBackStayOnlineAndTheRestGoOfflineAfterTheWarmUp() async throws {
        let database = try TestStore.createDatabase()
        let nodes = try await nodes(["node-a", "node-b"], database: database, arguments: ["--interval-ms", "2000"])
        let (a, b) = (nodes[0], nodes[1])
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        let back = try await connect("back", to: a)
        let gone = try await connect("gone", to: a)
        let beats = [beating(back), beating(gone)]
        defer { beats.forEach { $0.cancel() } }
        try await waitUntil("both online on node-a") {
            rows(database, "SELECT count(*) FROM agent_owners o JOIN agents a ON a.id = o.agent_id WHERE a.state = 'online' AND o.node_id = 'node-a'") == ["2"]
        }
        a.kill(SIGKILL)
        _ = a.waitForExit()
        let killed = ContinuousClock.now
        // "back" returns through the balancer to node-b at once and keeps beating.
        let returned = beating(try await connect("back", to: b))
        defer { returned.cancel() }
        try await waitUntil("node-a's sessions closed server_crashed", within: .seconds(7)) {
            rows(database, "SELECT count(*) FROM sessions s JOIN server_runs r ON r.id = s.server_run_id WHERE r.node_id = 'node-a' AND s.end_reason = 'server_crashed'") == ["2"]
        }
        #expect(ContinuousClock.now - killed < .seconds(7), "within the lease (2 s) + 5 s")
        try await waitUntil("gone offline after its warm-up", within: .seconds(25)) {
            rows(database, "SELECT state FROM agents WHERE id = 'gone'") == ["offline"]
        }
        #expect(
            rows(database, "SELECT to_state || ':' || reason FROM transitions WHERE agent_id = 'gone' ORDER BY id")
                == ["online:connected", "unknown:server_crashed", "offline:timeout"])
        let backStates = rows(database, "SELECT to_state FROM transitions WHERE agent_id = 'back' ORDER BY id") ?? []
        #expect(!backStates.contains("offline") && backStates.last == "online", "\(backStates)")
        #expect(rows(database, "SELECT node_id FROM agent_owners ORDER BY agent_id") == ["node-b", "node-b"])
        #expect(rows(database, "SELECT stop_reason FROM nodes WHERE id = 'node-a'") == ["lease lapsed"])
        // Intervals tile: each transition starts from the state the previous one ended in.
        #expect(
            rows(
                database,
                "SELECT count(*) FROM (SELECT from_state, LAG(to_state) OVER (PARTITION BY agent_id ORDER BY id) AS prev FROM transitions) t WHERE from_state IS DISTINCT FROM prev"
            ) == ["0"])
    }

    @Test func aGracefulStopHandsItsAgentsToAnotherNodeAndOnlyThoseThatDoNotReturnBecomeUnknown() async throws {
        let database = try TestStore.createDatabase()
        let nodes = try await nodes(["node-a", "node-b"], database: database, arguments: ["--interval-ms", "2000"])
        let (a, b) = (nodes[0], nodes[1])
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        let staying = try await connect("staying", to: a)
        let leaving = try await connect("leaving", to: a)
        let beats = [beating(staying), beating(leaving)]
        defer { beats.forEach { $0.cancel() } }
        try await waitUntil("both owned by node-a") {
            rows(database, "SELECT count(*) FROM agent_owners WHERE node_id = 'node-a'") == ["2"]
        }
        a.kill(SIGTERM)
        #expect(try await staying.closed().code == 1001)
        #expect(try await leaving.closed().code == 1001)
        // "staying" follows the balancer to node-b; "leaving" does not come back.
        let returned = beating(try await connect("staying", to: b))
        defer { returned.cancel() }
        #expect(a.waitForExit() == 0)
        try await waitUntil("leaving offline after node-b takes the stopped node's rest over", within: .seconds(25)) {
            rows(database, "SELECT state FROM agents WHERE id = 'leaving'") == ["offline"]
        }
        #expect(
            rows(database, "SELECT to_state || ':' || reason FROM transitions WHERE agent_id = 'leaving' ORDER BY id")
                == ["online:connected", "unknown:server_stopped", "offline:timeout"])
        #expect(
            rows(database, "SELECT to_state || ':' || reason FROM transitions WHERE agent_id = 'staying' ORDER BY id") == ["online:connected"],
            "presence did not blink")
        #expect(rows(database, "SELECT end_reason FROM sessions WHERE agent_id = 'staying' ORDER BY started_at_ms") == ["server_stopped", ""])
        #expect(rows(database, "SELECT stop_reason FROM nodes WHERE id = 'node-a'") == ["graceful"])
    }

    @Test func aNodePausedPastItsLeaseWritesNothingForTheAgentsItLostAndRejoins() async throws {
        let database = try TestStore.createDatabase()
        let nodes = try await nodes(["node-a", "node-b"], database: database, arguments: ["--interval-ms", "500"])
        let (a, b) = (nodes[0], nodes[1])
        defer {
            a.kill(SIGCONT)
            nodes.forEach { $0.kill(SIGKILL) }
        }
        let old = try await connect("paused", to: a)
        let oldBeats = beating(old)
        defer { oldBeats.cancel() }
        try await waitUntil("paused owned by node-a") { rows(database, "SELECT node_id FROM agent_owners") == ["node-a"] }
        a.kill(SIGSTOP)
        try await waitUntil("node-b takes node-a over", within: .seconds(10)) {
            rows(database, "SELECT stop_reason FROM nodes WHERE id = 'node-a'") == ["lease lapsed"]
        }
        // The agent gives up on its silent node and comes back through the balancer to node-b.
        oldBeats.cancel()
        let returned = beating(try await connect("paused", to: b))
        defer { returned.cancel() }
        try await waitUntil("paused online on node-b") { rows(database, "SELECT state FROM agents WHERE id = 'paused'") == ["online"] }
        let before = rows(database, "SELECT to_state || ':' || reason FROM transitions ORDER BY id")
        let newest = rows(database, "SELECT COALESCE(MAX(id), 0) FROM transitions")?.first ?? "0"
        a.kill(SIGCONT)
        // node-a wakes to an agent silent for seconds: whatever it decides is fenced off, and it
        // finds its lease lost, drops the old socket and rejoins.
        let closed = try await old.closed(within: .seconds(10))
        #expect(closed.code == 1001 || closed.code == 4000, "\(closed)")
        try await waitUntil("node-a rejoined with a fresh lease") {
            rows(database, "SELECT COALESCE(stop_reason, 'running') FROM nodes WHERE id = 'node-a'") == ["running"]
        }
        // node-a's acknowledgement that whatever it decided is flushed: its writer counted the lost
        // lease (before dropping the agents and rejoining) and holds no event any more.
        try await waitUntil("node-a's writer flushed after losing its lease") {
            guard let metrics = try? await httpGET(port: a.port, "/metrics") else { return false }
            let lines = metrics.body.split(separator: "\n")
            return lines.contains("rollcall_lease_losses_total 1") && lines.contains { $0.hasPrefix("rollcall_history_queue_depth 0") }
        }
        // Nothing node-a decided landed: any later transition is node-b's, on node-b's session (on
        // a loaded machine the returned agent may be late once there, which node-b rightly records).
        let later = rows(
            database,
            "SELECT t.to_state || ':' || t.reason || ':' || COALESCE(r.node_id, '-') FROM transitions t LEFT JOIN sessions s ON s.id = t.session_id LEFT JOIN server_runs r ON r.id = s.server_run_id WHERE t.id > \(newest) ORDER BY t.id"
        ) ?? []
        #expect(later.allSatisfy { $0.hasSuffix(":node-b") }, "\(later)")
        #expect(before == ["online:connected", "unknown:server_crashed", "online:connected"], "\(before ?? [])")
        #expect(rows(database, "SELECT node_id FROM agent_owners") == ["node-b"])
    }

    @Test func anOperatorOnAnyNodeKicksAnAgentConnectedToAnotherAndARegistrationOnOneAdmitsOnAll() async throws {
        let database = try TestStore.createDatabase()
        let adminToken = "multi-node-admin-token-0123456789"
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("rollcall-admin-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: tokenFile) }
        try adminToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        var nodes: [ServerProcess] = []
        for name in ["node-a", "node-b"] {
            let node = try ServerProcess(
                port: try freeLoopbackPort(), databasePath: database, extraArguments: ["--node-id", name, "--node-lease", "2s", "--admin-token-file", tokenFile])
            try await node.waitUntilReady()
            nodes.append(node)
        }
        let (a, b) = (nodes[0], nodes[1])
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        func post(_ port: Int, _ path: String, _ body: String) async throws -> RawResponse {
            try await rawHTTP(
                port: port,
                "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: Bearer \(adminToken)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        }
        // Registered on node-b, the agent is admitted by node-a.
        let registered = try await post(b.port, "/v1/agents", #"{"id":"kickme"}"#)
        #expect(registered.status == 201, "\(registered.body)")
        let token = try #require(try JSONParser.parse(registered.body)["token"]?.stringValue)
        var socket: TestWebSocket?
        try await waitUntil("node-a admits the agent registered on node-b") {
            socket = try? await TestWebSocket.connect(
                "ws://127.0.0.1:\(a.port)/v1/agent?id=kickme", headers: [.authorization: "Bearer \(token)"])
            return socket != nil
        }
        let agent = try #require(socket)
        _ = try await agent.nextServerMessage()
        try await waitUntil("kickme online") { rows(database, "SELECT state FROM agents WHERE id = 'kickme'") == ["online"] }
        // Kicked through node-b, it is closed by node-a, its owner.
        let kicked = try await post(b.port, "/v1/agents/kickme/kick", "")
        #expect(kicked.status == 200 && kicked.body.contains(#""was_connected":true"#), "\(kicked.body)")
        #expect(try await agent.closed().code == 4002)
        try await waitUntil("kickme offline (kicked)") {
            rows(database, "SELECT to_state || ':' || reason FROM transitions WHERE agent_id = 'kickme' ORDER BY id") == ["online:connected", "offline:kicked"]
        }
    }

    @Test(.enabled(if: HAProxy.isInstalled))
    func realAgentsBehindHAProxyFollowTheBalancerWhenTheirNodeIsKilledWithoutGoingOffline() async throws {
        let database = try TestStore.createDatabase()
        let nodes = try await nodes(["node-a", "node-b"], database: database, arguments: ["--interval-ms", "300"])
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        let balancer = try HAProxy(backends: [("node-a", nodes[0].port), ("node-b", nodes[1].port)])
        try await balancer.waitUntilReady()
        let agents = try startAgents((0..<6).map { "ha-\($0)" }, through: balancer)
        defer { stop(agents) }
        try await waitUntil("six agents online, spread over both nodes", within: .seconds(15)) {
            rows(database, "SELECT o.node_id || ':' || count(*) FROM agent_owners o JOIN agents a ON a.id = o.agent_id WHERE a.state = 'online' GROUP BY o.node_id ORDER BY 1")
                == ["node-a:3", "node-b:3"]
        }
        nodes[0].kill(SIGKILL)
        _ = nodes[0].waitForExit()
        try await waitUntil("all six online on node-b", within: .seconds(20)) {
            rows(database, "SELECT o.node_id || ':' || a.state || ':' || count(*) FROM agent_owners o JOIN agents a ON a.id = o.agent_id GROUP BY o.node_id, a.state") == ["node-b:online:6"]
        }
        try await waitUntil("node-a taken over", within: .seconds(10)) {
            rows(database, "SELECT stop_reason FROM nodes WHERE id = 'node-a'") == ["lease lapsed"]
        }
        #expect(rows(database, "SELECT count(*) FROM transitions WHERE to_state = 'offline'") == ["0"], "nobody went offline")
        #expect(rows(database, "SELECT count(*) FROM sessions WHERE ended_at_ms IS NULL") == ["6"], "one open session per agent")
    }

    /// docs/operations.md's rolling upgrade, one node at a time behind HAProxy: stop a node, start
    /// it again, then the next. The agents follow the balancer each time and nobody blinks.
    @Test(.enabled(if: HAProxy.isInstalled))
    func aRollingRestartBehindHAProxyMovesTheAgentsWithoutATransition() async throws {
        let database = try TestStore.createDatabase()
        var nodes = try await nodes(["node-a", "node-b"], database: database, arguments: ["--interval-ms", "500"])
        let ports = nodes.map(\.port)
        defer { nodes.forEach { $0.kill(SIGKILL) } }
        let balancer = try HAProxy(backends: [("node-a", ports[0]), ("node-b", ports[1])])
        try await balancer.waitUntilReady()
        let agents = try startAgents((0..<4).map { "roll-\($0)" }, through: balancer)
        defer { stop(agents) }
        try await waitUntil("four agents online", within: .seconds(15)) {
            rows(database, "SELECT count(*) FROM agents WHERE state = 'online'") == ["4"]
        }
        for (index, name) in ["node-a", "node-b"].enumerated() {
            nodes[index].kill(SIGTERM)
            #expect(nodes[index].waitForExit() == 0)
            let other = index == 0 ? "node-b" : "node-a"
            try await waitUntil("every agent on \(other) while \(name) is down", within: .seconds(20)) {
                rows(database, "SELECT o.node_id || ':' || a.state || ':' || count(*) FROM agent_owners o JOIN agents a ON a.id = o.agent_id GROUP BY o.node_id, a.state")
                    == ["\(other):online:4"]
            }
            // The "upgraded" node comes back on its port; the balancer sees it healthy again.
            let restarted = try ServerProcess(
                port: ports[index], databasePath: database, extraArguments: ["--open", "--node-id", name, "--node-lease", "2s", "--interval-ms", "500"])
            try await restarted.waitUntilReady()
            nodes[index] = restarted
            // As docs/operations.md says: the next node stops once the balancer counts this one in.
            try await balancer.backendsChecked()
        }
        #expect(
            rows(database, "SELECT agent_id || ':' || COALESCE(from_state, '-') || ':' || to_state || ':' || reason FROM transitions WHERE to_state <> 'online'") == [],
            "nobody blinked")
        #expect(rows(database, "SELECT count(*) FROM agents WHERE state = 'online'") == ["4"])
        #expect(rows(database, "SELECT stop_reason FROM server_runs ORDER BY id") == ["graceful", "graceful", "", ""])
    }
}
