import Foundation
import Logging
import RollcallAgent
import RollcallCore
import RollcallTesting
import Synchronization
import Testing

/// The real `rollcall serve` process, killed with SIGKILL under live agents and restarted.
@Suite(.timeLimit(.minutes(2))) struct CrashRecoveryTests {
    @Test func afterAKillAndRestartTheHistoryHoldsAndReturningAgentsAreNeverOffline() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("crash.db").path
            let port = try freeLoopbackPort()
            let first = try ServerProcess(port: port, databasePath: path, extraArguments: ["--interval-ms", "300", "--timeout-ms", "10000"])
            try await first.waitUntilReady()
            let ids = (1...6).map { "crash-\($0)" }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for id in ids {
                    group.addTask {
                        var configuration = AgentConfiguration(serverURL: "ws://127.0.0.1:\(port)", agentID: AgentID(id)!)
                        configuration.initialBackoff = .milliseconds(100)
                        configuration.maxBackoff = .milliseconds(400)
                        let quiet = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })
                        try? await AgentRunner(configuration: configuration, logger: quiet).run()
                    }
                }
                defer { group.cancelAll() }
                try await waitForRows(path, "SELECT count(*) FROM agents WHERE state = 'online'", ["6"], within: .seconds(20))
                // Mid-traffic: the server dies without a word.
                first.kill(SIGKILL)
                _ = first.waitForExit()
                let second = try ServerProcess(port: port, databasePath: path, extraArguments: ["--interval-ms", "300", "--timeout-ms", "10000"])
                try await second.waitUntilReady()
                try await waitForRows(path, "SELECT count(*) FROM agents WHERE state = 'online'", ["6"], within: .seconds(20))
                second.kill(SIGTERM)
                #expect(second.waitForExit() == 0)
            }
            let bad = try sqlite3(path, "SELECT agent_id || ' ' || from_state || '>' || to_state || ' ' || reason FROM transitions WHERE to_state = 'offline'")
            #expect(bad.isEmpty, "agents that came back within the warm-up were recorded offline: \(bad)")
            #expect(try sqlite3(path, "SELECT count(DISTINCT agent_id) FROM transitions WHERE reason = 'server_crashed'") == ["6"])
            #expect(try sqlite3(path, "SELECT count(*) FROM sessions WHERE ended_at_ms IS NULL") == ["0"])
            #expect(try sqlite3(path, "SELECT count(*) FROM sessions WHERE end_reason = 'server_crashed'") == ["6"])
            #expect(try sqlite3(path, "SELECT stop_reason FROM server_runs ORDER BY id") == ["crashed", "graceful"])
            let gaps = try sqlite3(
                path,
                """
                SELECT count(*) FROM (SELECT agent_id, ended_at_ms, LEAD(started_at_ms) OVER (PARTITION BY agent_id ORDER BY started_at_ms) AS next
                FROM presence_intervals) WHERE next IS NOT NULL AND next != ended_at_ms
                """)
            #expect(gaps == ["0"], "intervals tile time")
            let agreement = try sqlite3(
                path,
                """
                SELECT (SELECT SUM(online_ms + suspect_ms + offline_ms + unknown_ms) FROM uptime_daily)
                     - (SELECT SUM(MAX(0, COALESCE(ended_at_ms, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)) - started_at_ms)) FROM presence_intervals)
                """)
            #expect(agreement == ["0"], "uptime_daily agrees with presence_intervals")
            if agreement != ["0"] { try? FileManager.default.copyItem(atPath: path, toPath: "/tmp/rollcall-crash-failure.db") }
        }
    }
}

/// `rollcall serve` and `rollcall demo` on a port that is taken: one sentence, status 1, no hang.
@Suite(.timeLimit(.minutes(1))) struct BusyPortTests {
    @Test func servingOnAPortInUseSaysSoAndExitsInsteadOfHanging() async throws {
        try await LiveServer.with { server in
            try await withTemporaryDirectory { dir in
                let binary = productsDirectory.appendingPathComponent("rollcall").path
                for command in [["serve"], ["demo", "--log"]] {
                    let (status, output) = try await runProcess(
                        [binary] + command + ["--port", String(server.port), "--db", dir.appendingPathComponent("busy.db").path])
                    #expect(status == 1, "\(command[0])")
                    #expect(output.contains("rollcall: cannot listen on 127.0.0.1:\(server.port): the address is already in use"), "\(output)")
                }
            }
        }
    }
}
