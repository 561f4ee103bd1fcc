import Foundation
import Logging
import RollcallAgent
import RollcallClient
import RollcallCore
import RollcallServer
import RollcallTesting
import Testing

/// A server listening on `::1`, reached by every client through an IPv6 literal URL.
@Suite(.timeLimit(.minutes(1))) struct IPv6Tests {
    @Test func theAgentTheCommandsAndTheBinariesReachAServerByIPv6Literal() async throws {
        try await LiveServer.with(configure: { $0.host = "::1" }) { server in
            let quiet = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })
            let configuration = AgentConfiguration(serverURL: "ws://[::1]:\(server.port)", agentID: AgentID("v6-lib")!)
            #expect(await AgentRunner(configuration: configuration, logger: quiet).runOnce(leaveAfter: .milliseconds(200)) == .saidGoodbye)
            try await server.transitions.waitFor(agent: "v6-lib", to: .offline)

            let agent = try await APIClient(baseURL: "http://[::1]:\(server.port)").get("/v1/agents/v6-lib")
            #expect(agent["state"]?.stringValue == "offline")

            // The shipped executables, as an operator types them.
            let rollcall = productsDirectory.appendingPathComponent("rollcall").path
            let agentBinary = productsDirectory.appendingPathComponent("rollcall-agent").path
            let (status, output) = try await runProcess([rollcall, "status", "--server", "http://[::1]:\(server.port)"])
            #expect(status == 0, "\(output)")
            #expect(output.contains("v6-lib"), "\(output)")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: agentBinary)
            process.arguments = ["--server", "ws://[::1]:\(server.port)", "--id", "v6-bin", "--log-level", "critical"]
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            try await server.transitions.waitFor(agent: "v6-bin", to: .online)
            kill(process.processIdentifier, SIGTERM)
            let offline = try await server.transitions.waitFor(agent: "v6-bin", to: .offline)
            #expect(offline.reason == .goodbye)

            // The load generator too: its connections leave from ::1 and name the host in brackets.
            let load = productsDirectory.appendingPathComponent("rollcall-load").path
            let (loadStatus, report) = try await runProcess([
                load, "--host", "::1", "--port", String(server.port), "--agents", "5", "--interval-ms", "200", "--duration", "1",
            ])
            #expect(loadStatus == 0, "\(report)")
            #expect(report.contains(#""connected":5,"failed_connects":0"#), "\(report)")
        }
    }

    @Test func aRefusedHandshakeSaysWhyOverIPv6Too() async throws {
        try await LiveServer.with(configure: { $0.host = "::1" }) { server in
            let quiet = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })
            // A path the server does not serve: 404 with the server's hint, read from the refusal itself.
            let wrongPath = AgentConfiguration(serverURL: "ws://[::1]:\(server.port)/ws", agentID: AgentID("v6-refused")!)
            guard case .refused(let refusal) = await AgentRunner(configuration: wrongPath, logger: quiet).runOnce() else {
                Issue.record("a handshake on the wrong path was not refused")
                return
            }
            #expect(refusal.status == 404)
            #expect(refusal.message?.contains("/v1/agent") == true, "\(refusal)")
        }
    }
}

/// A server that stops answering without closing (a half-open connection, here a stopped process).
@Suite(.timeLimit(.minutes(1))) struct SilentServerTests {
    @Test func anAgentDropsAConnectionOnWhichTheServerFellSilentAndSaysSo() async throws {
        try await withTemporaryDirectory { dir in
            let port = try freeLoopbackPort()
            let server = try ServerProcess(port: port, databasePath: dir.appendingPathComponent("r.db").path)
            defer { server.kill(SIGKILL) }
            try await server.waitUntilReady()
            var configuration = AgentConfiguration(serverURL: "ws://127.0.0.1:\(port)", agentID: AgentID("silent-1")!)
            configuration.keepalive = .milliseconds(200)
            configuration.requestedIntervalMs = 1000
            let quiet = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })
            let agent = AgentRunner(configuration: configuration, logger: quiet)
            async let outcome = agent.runOnce(onWelcome: {})
            // Stop the server once the agent is in (its row exists), so its kernel keeps the
            // connection open while nothing answers.
            try await waitForRows(dir.appendingPathComponent("r.db").path, "SELECT count(*) FROM sessions WHERE agent_id = 'silent-1'", ["1"])
            server.kill(SIGSTOP)
            let result = await outcome
            server.kill(SIGCONT)
            guard case .failed(let why) = result else {
                Issue.record("expected the agent to give up on the silent server, got \(result)")
                return
            }
            #expect(why.contains("stopped answering"), "\(why)")
            #expect(why.contains("not even a pong"), "\(why)")
        }
    }

    @Test func aQuietButLivingServerKeepsTheConnectionThroughItsPongs() async throws {
        try await LiveServer.with { server in
            // Beats every 5 s, keepalive 200 ms: between beats only the pongs to the agent's own
            // pings show the server is there, for ten keepalive periods.
            var configuration = AgentConfiguration(serverURL: server.wsBase, agentID: AgentID("quiet-1")!)
            configuration.keepalive = .milliseconds(200)
            configuration.requestedIntervalMs = 5000
            let quiet = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })
            let outcome = await AgentRunner(configuration: configuration, logger: quiet).runOnce(leaveAfter: .seconds(2))
            #expect(outcome == .saidGoodbye)
        }
    }
}
