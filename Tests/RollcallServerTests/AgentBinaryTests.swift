import Foundation
import HummingbirdWSClient
import NIOCore
import NIOWebSocket
import RollcallCore
import RollcallTesting
import Testing

/// The real `rollcall-agent` executable against the real server.
@Suite(.timeLimit(.minutes(1))) struct AgentBinaryTests {
    func launchAgent(_ server: LiveServer, id: String) throws -> Process {
        let binary = productsDirectory.appendingPathComponent("rollcall-agent")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build the products first: swift build")
        let process = Process()
        process.executableURL = binary
        process.arguments = ["--server", server.wsBase, "--id", id, "--interval-ms", "200", "--label", "suite=binary", "--log-level", "error"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    @Test func aKilledAgentGoesOfflineAfterTheTimeout() async throws {
        try await LiveServer.with { server in
            let agent = try launchAgent(server, id: "killed-1")
            defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
            let online = try await server.transitions.waitFor(agent: "killed-1", to: .online)
            #expect(online.reason == .connected)
            kill(agent.processIdentifier, SIGKILL)
            agent.waitUntilExit()
            let offline = try await server.transitions.waitFor(agent: "killed-1", to: .offline)
            #expect(offline.reason == .timeout)
            // The suspect the kill caused is the one just before the offline. (On a loaded machine
            // the debug agent may miss one 300 ms window before the kill and recover; that earlier
            // suspect is not what this test is about.)
            let suspect = try #require(server.transitions.of("killed-1").last { $0.to == .suspect })
            #expect(suspect.reason == .disconnected)
            #expect(offline.effectiveAt - suspect.effectiveAt <= 600)
        }
    }

    @Test func sigtermMakesTheAgentSayByeAndExitZero() async throws {
        try await LiveServer.with { server in
            let agent = try launchAgent(server, id: "termed-1")
            defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }
            try await server.transitions.waitFor(agent: "termed-1", to: .online)
            // Let it send a hello and a beat or two, then stop it like systemd would.
            try await waitForRows(server.databasePath, "SELECT json_extract(labels, '$.suite') FROM agents WHERE id = 'termed-1'", ["binary"])
            kill(agent.processIdentifier, SIGTERM)
            let offline = try await server.transitions.waitFor(agent: "termed-1", to: .offline)
            #expect(offline.reason == .goodbye)
            agent.waitUntilExit()
            #expect(agent.terminationStatus == 0)
        }
    }

    @Test func anUnreachableServerEndsInExit69AfterGiveUpAfter() async throws {
        let port = try freeLoopbackPort()
        let binary = productsDirectory.appendingPathComponent("rollcall-agent").path
        let (status, output) = try await runProcess([binary, "--server", "ws://127.0.0.1:\(port)", "--id", "lonely", "--give-up-after", "1", "--log-level", "critical"])
        #expect(status == 69)
        #expect(output.contains("cannot reach the server"))
    }

    @Test func aBadURLIsAUsageErrorThatSaysWhatToType() async throws {
        let binary = productsDirectory.appendingPathComponent("rollcall-agent").path
        let (status, output) = try await runProcess([binary, "--server", "http://127.0.0.1:7777", "--id", "web-01"])
        #expect(status == 64)
        #expect(output.contains("ws://"))
    }
}
