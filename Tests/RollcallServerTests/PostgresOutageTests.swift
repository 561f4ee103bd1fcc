import Foundation
import Logging
import RollcallAgent
import RollcallCore
import RollcallServer
import RollcallStore
import RollcallTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL outage under a running server, on a cluster of the test's own (the shared one
/// serves other tests at the same time): agents are still timed, nothing is published before it is
/// written, and the backlog is written when the database returns.
@Suite(.enabled(if: StoreBackend.available.contains(.postgres)), .timeLimit(.minutes(3)))
struct PostgresOutageTests {
    @Test func duringAnOutageAgentsAreStillTimedAndAGoodbyeIsPublishedOnlyOnceTheReturningDatabaseHasIt() async throws {
        let cluster = try await PrivateCluster.start()
        do {
            try await outage(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    func outage(_ cluster: PrivateCluster) async throws {
        // The server in a process of its own: its database threads wait out the outage, and in
        // this process they would be every test server's.
        let port = try freeLoopbackPort()
        let server = try ServerProcess(
            port: port, databasePath: cluster.url, extraArguments: ["--open", "--interval-ms", "1000", "--timeout-ms", "5000", "--node-id", "outage"])
        defer { server.kill(SIGKILL) }
        try await server.waitUntilReady()
        let stays = AgentShutdown(), leaves = AgentShutdown()
        let agentLogger = Logger(label: "agent", factory: { _ in SwiftLogNoOpLogHandler() })
        func runner(_ id: String, _ shutdown: AgentShutdown) -> AgentRunner {
            AgentRunner(configuration: AgentConfiguration(serverURL: "ws://127.0.0.1:\(port)", agentID: AgentID(id)!), logger: agentLogger, shutdown: shutdown)
        }
        let staying = Task { try await runner("stays", stays).run() }
        let leaving = Task { await runner("leaves", leaves).runOnce() }
        defer { staying.cancel() }
        func summary() async -> String { (try? await httpGET(port: port, "/v1/summary"))?.body ?? "" }
        try await waitUntil("both agents online and written") {
            let text = await summary()
            return text.contains("\"online\":2,") && text.contains("\"last_transition_id\":2,")
        }

        try await cluster.pause()
        leaves.trigger()
        #expect(await leaving.value == .saidGoodbye)
        // The live answer knows at once; the log of committed transitions does not have it yet.
        try await waitUntil("the summary to count 'leaves' offline") { await summary().contains("\"online\":1,\"suspect\":0,\"offline\":1") }
        #expect(await summary().contains("\"last_transition_id\":2,"), "published before it was written")
        // What needs the database answers 503 with a reason after the read deadline, not never.
        let unavailable = try await httpGET(port: port, "/v1/agents/leaves")
        #expect(unavailable.status == 503)
        #expect(unavailable.body.contains("history_unavailable"))
        #expect(unavailable.header("Retry-After") == "5")
        // (That read took the read deadline, 5 s of outage, with heartbeats going on all along.)
        try await cluster.resume()
        // The database's client retries its connections with a growing backoff: give it time.
        try await waitUntil("the goodbye to be written", within: .seconds(90)) {
            (try? TestStore.psqlRows(cluster.url, "SELECT count(*) FROM transitions WHERE agent_id = 'leaves' AND reason = 'goodbye'")) == ["1"]
        }
        let newest = try TestStore.psqlRows(cluster.url, "SELECT MAX(id) FROM transitions").first ?? "?"
        try await waitUntil("the goodbye to be published") { await summary().contains("\"last_transition_id\":\(newest),") }
        #expect(try TestStore.psqlRows(cluster.url, "SELECT count(*) FROM transitions WHERE agent_id = 'stays' AND to_state IN ('offline', 'unknown')") == ["0"],
            "no one was called offline for the database's sake")
        stays.trigger()
        try await staying.value
        server.kill(SIGTERM)
        #expect(server.waitForExit() == 0)
    }
}

/// A PostgreSQL cluster of one test's own, from scripts/postgres.
final class PrivateCluster: Sendable {
    let url: String
    let directory: String
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/postgres").path

    private init(url: String, directory: String) {
        self.url = url
        self.directory = directory
    }

    static func start() async throws -> PrivateCluster {
        let exports = try await run(["start"])
        func value(_ name: String) -> String? {
            exports.split(separator: "\n").first { $0.hasPrefix("export \(name)=") }.map { String($0.dropFirst("export \(name)=".count)) }
        }
        guard let url = value("ROLLCALL_TEST_POSTGRES"), let directory = value("ROLLCALL_TEST_POSTGRES_DIR") else {
            throw TestStoreError(description: "scripts/postgres start said: \(exports)")
        }
        return PrivateCluster(url: url, directory: directory)
    }

    func pause() async throws { _ = try await Self.run(["pause", directory]) }
    func resume() async throws { _ = try await Self.run(["resume", directory]) }
    func stop() async { _ = try? await Self.run(["stop", directory]) }

    /// The script's output. It runs through `system()` on a thread of its own: Foundation's
    /// `Process` here sometimes never notices the script's exit once it has started a daemon.
    static func run(_ arguments: [String]) async throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("pg-\(UInt64.random(in: 0...UInt64.max)).out").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let command = ([script] + arguments).map { "'\($0)'" }.joined(separator: " ") + " > '\(output)' 2>&1 < /dev/null"
        let status: Int32 = await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: system(command)) }
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else { throw TestStoreError(description: "scripts/postgres \(arguments[0]) failed (\(status)): \(text)") }
        return text
    }
}
