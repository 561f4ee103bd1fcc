import Foundation
import RollcallServer
import RollcallTesting
import Testing

/// Schemathesis (the ecosystem's OpenAPI checker) against the real server: every check, every
/// phase (examples, coverage, fuzzing, stateful), bounded examples, the admin operations with a
/// token, and in open mode. A request docs/openapi.yaml allows is never refused, and every answer
/// is what the document says. The few settings it needs are in scripts/schemathesis.toml, with
/// why.
@Suite(.timeLimit(.minutes(3))) struct SchemathesisTests {
    static var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    @Test(arguments: [nil, "schemathesis-admin"] as [String?])
    func schemathesisFindsNoFailure(adminToken: String?) async throws {
        try await LiveServer.with(configure: { c in
            c.adminToken = adminToken
            c.openMode = adminToken == nil
        }) { server in
            // A few agents, so the stateful phase has something to follow (in open mode: the
            // token mode's agents are registered by the checker itself).
            for i in 0..<(adminToken == nil ? 3 : 0) {
                let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=st-\(i)")
                _ = try await ws.nextServerMessage()
            }
            var arguments = [
                "st", "--config-file", Self.root.appendingPathComponent("scripts/schemathesis.toml").path, "run",
                Self.root.appendingPathComponent("docs/openapi.yaml").path, "--url", server.httpBase, "--checks", "all",
                // See scripts/schemathesis.toml: a removed agent's history stays readable.
                "--exclude-checks", "use_after_free",
                "--max-examples", "15", "--seed", "1", "--no-color",
            ]
            if let adminToken { arguments += ["-H", "Authorization: Bearer \(adminToken)"] }
            let (status, output) = try await runProcess(arguments)
            let summary = output.split(separator: "\n").suffix(40).joined(separator: "\n")
            #expect(status == 0, "schemathesis:\n\(summary)")
        }
    }
}
