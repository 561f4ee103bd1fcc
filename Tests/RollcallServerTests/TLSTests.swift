import Foundation
import Logging
import RollcallAgent
import RollcallClient
import RollcallCore
import RollcallDashboard
import RollcallServer
import RollcallTesting
import RollcallTop
import RollcallTransport
import Testing

/// wss:// and https:// with certificates the test makes (a private CA and a server certificate),
/// with the server addressed by name, by IPv4 literal and by IPv6 literal.
@Suite(.timeLimit(.minutes(1))) struct TLSTests {
    let quiet = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })

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

    /// `ca.pem` and `server.pem`/`server.key` naming `names` (e.g. `DNS:localhost,IP:127.0.0.1`).
    func makeCertificates(in dir: URL, names: String = "DNS:localhost,IP:127.0.0.1,IP:::1") throws {
        try run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=Rollcall Test CA"], in: dir)
        try run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], in: dir)
        try "subjectAltName=\(names)\nbasicConstraints=CA:FALSE\n".write(to: dir.appendingPathComponent("ext.cnf"), atomically: true, encoding: .utf8)
        try run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf"], in: dir)
    }

    func withTLSServer(names: String = "DNS:localhost,IP:127.0.0.1,IP:::1", host: String = "127.0.0.1", _ body: @Sendable (LiveServer, _ ca: String) async throws -> Void) async throws {
        try await withTemporaryDirectory { dir in
            try makeCertificates(in: dir, names: names)
            try await LiveServer.with(configure: {
                $0.host = host
                $0.tlsCertificatePath = dir.appendingPathComponent("server.pem").path
                $0.tlsKeyPath = dir.appendingPathComponent("server.key").path
            }) { server in
                try await body(server, dir.appendingPathComponent("ca.pem").path)
            }
        }
    }

    func agent(_ url: String, _ id: String, ca: String?) -> AgentRunner {
        var configuration = AgentConfiguration(serverURL: url, agentID: AgentID(id)!)
        configuration.caFile = ca
        return AgentRunner(configuration: configuration, logger: quiet)
    }

    /// The first thing `rollcall top`'s feed hears from `server`: live, or the reason it is not.
    /// Awaited from the feed's own events, not polled.
    func firstWatchEvent(_ server: String, ca: String?) async throws -> String {
        let client = try APIClient(baseURL: server, caFile: ca)
        let feed = WatchFeed(server: client.server, tls: client.tls, logger: quiet)
        let (words, said) = AsyncStream.makeStream(of: String.self)
        let task = Task {
            await feed.run { event in
                switch event {
                case .status(.live): said.yield("live")
                case .status(.reconnecting(attempt: _, let error)): said.yield(error)
                default: break
                }
            }
        }
        defer { task.cancel() }
        for await word in words { return word }
        return ""
    }

    @Test(arguments: ["localhost", "127.0.0.1"])
    func anAgentTheDashboardAndTheCommandsConnectOverTLSByNameOrIPv4Address(host: String) async throws {
        try await withTLSServer { server, ca in
            let id = "tls-" + host.replacingOccurrences(of: ".", with: "-")
            let outcome = await agent("wss://\(host):\(server.port)", id, ca: ca).runOnce(leaveAfter: .milliseconds(300))
            #expect(outcome == .saidGoodbye)
            let online = try await server.transitions.waitFor(agent: id, to: .online)
            #expect(online.reason == .connected)
            let health = try await APIClient(baseURL: "https://\(host):\(server.port)", caFile: ca).get("/healthz")
            #expect(health["status"]?.stringValue == "ok")
            #expect(try await firstWatchEvent("https://\(host):\(server.port)", ca: ca) == "live")
        }
    }

    @Test func theSameHoldsForAnIPv6Literal() async throws {
        try await withTLSServer(host: "::1") { server, ca in
            let outcome = await agent("wss://[::1]:\(server.port)", "tls-v6", ca: ca).runOnce(leaveAfter: .milliseconds(300))
            #expect(outcome == .saidGoodbye)
            try await server.transitions.waitFor(agent: "tls-v6", to: .online)
            let agents = try await APIClient(baseURL: "https://[::1]:\(server.port)", caFile: ca).get("/v1/agents")
            guard case .array(let list)? = agents["agents"] else {
                Issue.record("no agents array in \(agents.serialized())")
                return
            }
            #expect(list.first?["id"]?.stringValue == "tls-v6")
            #expect(try await firstWatchEvent("https://[::1]:\(server.port)", ca: ca) == "live")
        }
    }

    @Test func aServerTheCAHasNotSignedStopsTheAgentWithASentenceInsteadOfRetrying() async throws {
        try await withTLSServer { server, _ in
            guard case .misconfigured(let why) = await agent("wss://127.0.0.1:\(server.port)", "tls-doubt", ca: nil).runOnce() else {
                Issue.record("connected without trusting the CA, or would keep retrying")
                return
            }
            #expect(why.contains("pass --ca"), "\(why)")
            await #expect(throws: APIClient.Failure.self) { try await APIClient(baseURL: "https://127.0.0.1:\(server.port)").get("/healthz") }
            do {
                _ = try await APIClient(baseURL: "https://127.0.0.1:\(server.port)").get("/healthz")
            } catch let failure as APIClient.Failure {
                #expect(failure.message.contains("pass --ca"), "\(failure.message)")
            }
            #expect(server.transitions.of("tls-doubt").isEmpty)
        }
    }

    @Test func aCertificateThatDoesNotNameTheAddressStopsTheAgentWithASentence() async throws {
        try await withTLSServer(names: "DNS:localhost") { server, ca in
            guard case .misconfigured(let why) = await agent("wss://127.0.0.1:\(server.port)", "tls-wrong-ip", ca: ca).runOnce() else {
                Issue.record("connected to an address the certificate does not name, or would keep retrying")
                return
            }
            #expect(why.contains("does not name"), "\(why)")
            do {
                _ = try await APIClient(baseURL: "https://127.0.0.1:\(server.port)", caFile: ca).get("/healthz")
                Issue.record("the API client accepted a certificate that does not name 127.0.0.1")
            } catch let failure as APIClient.Failure {
                #expect(failure.message.contains("does not name"), "\(failure.message)")
            }
            #expect(try await firstWatchEvent("https://127.0.0.1:\(server.port)", ca: ca).contains("does not name"))
            // By the name it does list, all is well.
            #expect(await agent("wss://localhost:\(server.port)", "tls-by-name", ca: ca).runOnce(leaveAfter: .milliseconds(100)) == .saidGoodbye)
        }
    }
}
