import ArgumentParser
import Foundation
import Logging
import RollcallAgent
import RollcallCore
import ServiceLifecycle
import UnixSignals

@main
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollcall-agent",
        abstract: "Hold a connection to a Rollcall server and send heartbeats.",
        discussion: """
            The token comes from ROLLCALL_TOKEN or --token-file, never from the command line.
            SIGTERM or SIGINT send bye, close the connection and exit 0.
            """,
        version: "0.1.0"
    )

    @Option(help: "Server URL, e.g. ws://127.0.0.1:7777 or wss://rollcall.example.com")
    var server: String

    @Option(help: "This agent's id: 1-128 characters of A-Z a-z 0-9 . _ : -")
    var id: String

    @Option(name: .customLong("interval-ms"), help: "Requested heartbeat interval; the server grants within its bounds.")
    var intervalMs: Int64?

    @Flag(help: "Send the compact 9-byte binary heartbeat.")
    var binary = false

    @Option(name: .customLong("label"), help: "A label k=v sent in hello (repeatable).")
    var labels: [String] = []

    @Option(name: .customLong("token-file"), help: "File holding this agent's token.")
    var tokenFile: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        if let problem = AgentConfiguration.urlProblem(server) { throw ValidationError(problem) }
        if let problem = AgentID.validationError(id) { throw ValidationError("--id: \(problem)") }
        if let intervalMs, intervalMs <= 0 { throw ValidationError("--interval-ms must be a positive number of milliseconds, e.g. 5000") }
        for label in labels where !label.contains("=") || label.hasPrefix("=") {
            throw ValidationError("--label must look like key=value, e.g. --label env=prod")
        }
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if let tokenFile, !FileManager.default.isReadableFile(atPath: tokenFile) {
            throw ValidationError("--token-file \(tokenFile) cannot be read")
        }
    }

    func run() async throws {
        var logger = Logger(label: "rollcall-agent")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        logger[metadataKey: "agent"] = "\(id)"
        var configuration = AgentConfiguration(serverURL: server, agentID: AgentID(id)!)
        configuration.requestedIntervalMs = intervalMs
        configuration.binary = binary
        configuration.hostname = ProcessInfo.processInfo.hostName
        for label in labels {
            let parts = label.split(separator: "=", maxSplits: 1)
            configuration.labels[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        if let tokenFile {
            configuration.token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let token = ProcessInfo.processInfo.environment["ROLLCALL_TOKEN"], !token.isEmpty {
            configuration.token = token
        }
        let runner = AgentRunner(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [AgentService(runner: runner)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let stop as AgentStop {
            FileHandle.standardError.write(Data("rollcall-agent: \(stop.message)\n".utf8))
            throw ExitCode(stop.exitCode)
        }
    }
}

struct AgentService: Service {
    let runner: AgentRunner
    func run() async throws { try await runner.run() }
}
