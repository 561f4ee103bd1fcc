import Foundation
import Logging
import RollcallAgent
import RollcallCore
import RollcallServer
import RollcallTesting
import Testing

/// wss:// and https:// with a certificate the test makes (a private CA and a server certificate).
@Suite(.timeLimit(.minutes(1))) struct TLSTests {
    func run(_ arguments: [String], in dir: URL) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.currentDirectoryURL = dir
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(arguments.joined(separator: " ")) failed")
    }

    func makeCertificates(in dir: URL) throws {
        try run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=Rollcall Test CA"], in: dir)
        try run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], in: dir)
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n".write(to: dir.appendingPathComponent("ext.cnf"), atomically: true, encoding: .utf8)
        try run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf"], in: dir)
    }

    @Test func anAgentConnectsOverWssAndVerifiesTheServer() async throws {
        try await withTemporaryDirectory { dir in
            try makeCertificates(in: dir)
            try await LiveServer.with(configure: {
                $0.tlsCertificatePath = dir.appendingPathComponent("server.pem").path
                $0.tlsKeyPath = dir.appendingPathComponent("server.key").path
            }) { server in
                let quiet = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })
                var trusting = AgentConfiguration(serverURL: "wss://localhost:\(server.port)", agentID: AgentID("tls-ok")!)
                trusting.caFile = dir.appendingPathComponent("ca.pem").path
                let outcome = await AgentRunner(configuration: trusting, logger: quiet).runOnce(leaveAfter: .milliseconds(300))
                #expect(outcome == .saidGoodbye)
                let online = try await server.transitions.waitFor(agent: "tls-ok", to: .online)
                #expect(online.reason == .connected)

                // Without the private CA the agent refuses the server's certificate.
                let doubting = AgentConfiguration(serverURL: "wss://localhost:\(server.port)", agentID: AgentID("tls-doubt")!)
                // Retrying cannot heal that: the agent says what to do and stops (exit 78).
                guard case .misconfigured(let why) = await AgentRunner(configuration: doubting, logger: quiet).runOnce() else {
                    Issue.record("connected without trusting the CA, or kept retrying")
                    return
                }
                #expect(why.contains("pass --ca"), "\(why)")

                // An IP literal cannot be sent as SNI by the WebSocket client: said, not retried.
                var byAddress = AgentConfiguration(serverURL: "wss://127.0.0.1:\(server.port)", agentID: AgentID("tls-ip")!)
                byAddress.caFile = dir.appendingPathComponent("ca.pem").path
                guard case .misconfigured(let ipWhy) = await AgentRunner(configuration: byAddress, logger: quiet).runOnce() else {
                    Issue.record("an IP literal was retried or connected")
                    return
                }
                #expect(ipWhy.contains("IP address"), "\(ipWhy)")
                #expect(server.transitions.of("tls-doubt").isEmpty)

                // The API is served over https on the same port.
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = ["curl", "-s", "--cacert", dir.appendingPathComponent("ca.pem").path, "https://localhost:\(server.port)/healthz"]
                let pipe = Pipe()
                process.standardOutput = pipe
                try process.run()
                let body = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                #expect(body == #"{"status":"ok"}"#)
            }
        }
    }
}
