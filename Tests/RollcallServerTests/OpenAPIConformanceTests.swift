import Foundation
import RollcallServer
import RollcallTesting
import Testing

/// scripts/openapi-check exercises every operation of docs/openapi.yaml against the real server
/// and validates each answer's status and body against the document.
@Suite(.timeLimit(.minutes(2))) struct OpenAPIConformanceTests {
    static var root: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent() }

    func check(_ server: LiveServer, adminToken: String?) async throws -> (Int32, String) {
        var environment = ProcessInfo.processInfo.environment
        environment["ROLLCALL_ADMIN_TOKEN"] = adminToken
        return try await runProcess(["python3", Self.root.appendingPathComponent("scripts/openapi-check").path, server.httpBase], environment: environment)
    }

    @Test(arguments: [nil, "conformance-admin"] as [String?])
    func theServerAnswersAsTheOpenAPIDocumentSays(adminToken: String?) async throws {
        try await LiveServer.with(configure: { c in
            c.adminToken = adminToken
            c.openMode = adminToken == nil
        }) { server in
            let (status, output) = try await check(server, adminToken: adminToken)
            let summary = output.split(separator: "\n").last.map(String.init) ?? ""
            #expect(status == 0, "openapi-check: \(output.split(separator: "\n").filter { !$0.hasPrefix("ok ") }.joined(separator: "\n"))")
            #expect(summary.hasSuffix(" 0 failed"))
        }
    }
}
