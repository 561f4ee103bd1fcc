import Foundation
import RollcallCore
import RollcallServer
import RollcallTesting
import Testing

/// `/metrics` as Prometheus's own checker reads it.
@Suite(.timeLimit(.minutes(1))) struct MetricsTests {
    @Test func promtoolFindsNothingToSayAboutTheMetrics() async throws {
        try await LiveServer.with { server in
            // Something in every family: an agent, a beat, a refusal, a violation, a transition.
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=metrics-1")
            _ = try await ws.nextServerMessage()
            try await ws.send(text: #"{"type":"heartbeat","seq":1}"#)
            _ = try await ws.nextServerMessage()
            _ = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=%zz")
            let rude = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=metrics-2")
            try await rude.sendText(#"{"type":"nope"}"#)
            _ = try await rude.closeFrame()
            try await server.transitions.waitFor(agent: "metrics-2", to: .suspect)
            let metrics = try await httpGET(port: server.port, "/metrics")
            #expect(metrics.status == 200)
            for name in [
                "rollcall_build_info{version=", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                "process_max_fds", "process_start_time_seconds", "rollcall_heartbeats_total 1", "rollcall_agents{state=\"online\"} 1",
                "rollcall_transitions_total{", "rollcall_handshake_refusals_total{", "rollcall_protocol_violations_total{",
            ] {
                #expect(metrics.body.contains(name), "\(name)")
            }
            try await withTemporaryDirectory { dir in
                let file = dir.appendingPathComponent("metrics.txt")
                try Data(metrics.body.utf8).write(to: file)
                let (status, output) = try await runProcess(["sh", "-c", "promtool check metrics < '\(file.path)'"])
                #expect(status == 0 && output.isEmpty, "promtool: \(output)")
            }
        }
    }
}
