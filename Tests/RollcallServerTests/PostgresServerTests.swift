import Foundation
import Logging
import RollcallAgent
import RollcallCore
import RollcallStore
import RollcallTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real server with its history in a real PostgreSQL (SPEC §10, one node).
@Suite(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(1)))
struct PostgresServerTests {
    @Test func anAgentsLifeIsWrittenToPostgreSQLAndServedByTheAPI() async throws {
        let test = try TestStore(.postgres)
        let configuration = LiveServer.testConfiguration(databasePath: test.location)
        try await LiveServer.run(configuration: configuration, store: test.store) { server in
            var agent = AgentConfiguration(serverURL: server.wsBase, agentID: AgentID("pg-agent")!)
            agent.labels = ["env": "pg"]
            let quiet = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })
            async let outcome = AgentRunner(configuration: agent, logger: quiet).runOnce(leaveAfter: .seconds(1))
            try await server.transitions.waitFor(agent: "pg-agent", to: .online)
            #expect(await outcome == .saidGoodbye)
            try await server.transitions.waitFor(agent: "pg-agent", to: .offline, reason: .goodbye)
            // The API answers from the database: the events by cursor and the agent by label.
            let events = try await httpGET(port: server.port, "/v1/events?after=0")
            #expect(events.status == 200)
            #expect(events.body.contains("\"agent\":\"pg-agent\"") || events.body.contains("\"agent_id\":\"pg-agent\""), "\(events.body.prefix(300))")
            let listed = try await httpGET(port: server.port, "/v1/agents?label=env=pg")
            #expect(listed.body.contains("pg-agent"), "\(listed.body.prefix(300))")
        }
        #expect(
            try test.rows("SELECT agent_id, COALESCE(from_state, '-'), to_state, reason FROM transitions ORDER BY id")
                == ["pg-agent|-|online|connected", "pg-agent|online|offline|goodbye"])
        #expect(try test.rows("SELECT end_reason, close_code FROM sessions") == ["goodbye|1000"])
        #expect(try test.rows("SELECT stop_reason, node_id FROM server_runs") == ["graceful|test-node"])
        #expect(try test.rows("SELECT labels::jsonb ->> 'env' FROM agents WHERE id = 'pg-agent'") == ["pg"])
    }

    @Test func rollcallServeTakesAPostgresURLAndAfterAKillTheNextStartRepairsTheHistory() async throws {
        let database = try TestStore.createDatabase()
        let port = try freeLoopbackPort()
        let first = try ServerProcess(port: port, databasePath: database, extraArguments: ["--open", "--interval-ms", "200", "--node-id", "node-a"])
        try await first.waitUntilReady()
        let agentBinary = productsDirectory.appendingPathComponent("rollcall-agent").path
        let agent = Process()
        agent.executableURL = URL(fileURLWithPath: agentBinary)
        agent.arguments = ["--server", "ws://127.0.0.1:\(port)", "--id", "pg-bin", "--interval-ms", "200", "--log-level", "critical"]
        try agent.run()
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
        try await waitUntil("pg-bin online in the database", within: .seconds(15)) {
            (try? TestStore.psqlRows(database, "SELECT state FROM agents WHERE id = 'pg-bin'")) == ["online"]
        }
        first.kill(SIGKILL)
        _ = first.waitForExit()
        // The agent reconnects to the next run, which finds the killed one and repairs after it.
        let second = try ServerProcess(port: port, databasePath: database, extraArguments: ["--open", "--interval-ms", "200", "--node-id", "node-a"])
        try await second.waitUntilReady()
        try await waitUntil("pg-bin online in the database", within: .seconds(15)) {
            (try? TestStore.psqlRows(database, "SELECT state FROM agents WHERE id = 'pg-bin'")) == ["online"]
        }
        second.kill(SIGTERM)
        #expect(second.waitForExit() == 0)
        #expect(try TestStore.psqlRows(database, "SELECT stop_reason FROM server_runs ORDER BY id") == ["crashed", "graceful"])
        #expect(try TestStore.psqlRows(database, "SELECT count(*) FROM sessions WHERE ended_at_ms IS NULL") == ["0"])
        let reasons = try TestStore.psqlRows(database, "SELECT to_state || ':' || reason FROM transitions ORDER BY id")
        #expect(reasons.contains("unknown:server_crashed"), "\(reasons)")
        #expect(reasons.last == "unknown:server_stopped", "\(reasons)")
    }
}
