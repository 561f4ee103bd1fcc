import Foundation
import RollcallCore
import RollcallServer
import RollcallTesting
import Testing

/// docs/examples/python_agent.py, a 25-line agent on the `websockets` package, against the server.
@Suite(.timeLimit(.minutes(1))) struct InteroperabilityTests {
    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/examples/python_agent.py").path
    }

    func runPython(_ arguments: [String]) async throws -> (Int32, String) {
        try await runProcess(["python3"] + arguments)
    }

    @Test(arguments: [false, true])
    func thePythonExampleAgentBeatsAndSaysGoodbye(binary: Bool) async throws {
        let (probe, _) = try await runPython(["-c", "import websockets"])
        try #require(probe == 0, "install the interop dependency: pip install websockets (scripts/bootstrap does)")
        try await LiveServer.with(configure: { $0.liveness.defaultIntervalMs = 100; $0.liveness.defaultTimeoutMs = 3000 }) { server in
            let id = binary ? "py-binary" : "py-json"
            let (status, output) = try await runPython([Self.script, server.wsBase, id, "--beats", "5"] + (binary ? ["--binary"] : []))
            #expect(status == 0, "python agent failed: \(output)")
            let offline = try await server.transitions.waitFor(agent: id, to: .offline)
            #expect(offline.reason == .goodbye)
            try await waitForRows(
                server.databasePath, "SELECT heartbeats || ' ' || end_reason || ' ' || close_code FROM sessions WHERE agent_id = '\(id)'",
                ["5 goodbye 1000"])
            try await waitForRows(server.databasePath, "SELECT json_extract(labels, '$.lang') FROM agents WHERE id = '\(id)'", ["python"])
        }
    }
}
