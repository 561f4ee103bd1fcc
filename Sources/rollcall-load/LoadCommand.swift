import ArgumentParser
import Foundation
import RollcallLoad

@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollcall-load",
        abstract: "Simulate thousands of Rollcall agents from one process (loopback only).",
        discussion: "Prints a table and, last, one JSON line. Each process holds at most ~19,900 connections here (open-file limit)."
    )

    @Option(help: "Server address (loopback only).") var host: String = "127.0.0.1"
    @Option(help: "Server port.") var port: Int = 7777
    @Option(name: .customLong("fallback-port"), help: "Another node's port, for agents whose reconnect to --port failed (repeatable; herd scenario).") var fallbackPorts: [Int] = []
    @Option(help: "Number of simulated agents.") var agents: Int = 1000
    @Option(name: .customLong("interval-ms"), help: "Heartbeat interval each agent asks for.") var intervalMs: Int64 = 5000
    @Option(help: "New connections per second during the ramp.") var ramp: Int = 2000
    @Flag(help: "Send 9-byte binary heartbeats.") var binary = false
    @Flag(help: "Flood: keep --window heartbeats in flight per connection, each ack triggering the next.") var flood = false
    @Option(help: "Heartbeats in flight per connection with --flood.") var window: Int = 8
    @Option(help: "Seconds to measure after the ramp.") var duration: Double = 30
    @Option(help: "Source addresses, e.g. 127.0.0.2-127.0.0.40, to pass ~28k ephemeral ports per address (default: 127.0.0.1, or ::1 for an IPv6 --host).")
    var source: String?
    @Option(help: "steady, churn, storm, herd or silence.") var scenario: String = "steady"
    @Option(name: .customLong("storm-count"), help: "Agents that drop at once in the storm scenario.") var stormCount: Int = 0
    @Option(help: "Seconds between the ramp and the storm.") var settle: Double = 5
    @Option(name: .customLong("storm-at"), help: "Storm at this Unix time in ms instead of after --settle (align two load processes).") var stormAt: Double?
    @Option(name: .customLong("id-prefix"), help: "Agent ids are PREFIX-N.") var idPrefix: String = "load"
    @Option(help: "Watch streams to open after the ramp; their delivery latency is reported.") var watchers: Int = 0
    @Option(name: .customLong("churn"), help: "Churn scenario: share of the fleet leaving and returning each second.") var churn: Double = 0.01
    @Option(help: "Event-loop threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard LoadConfiguration.isLoopback(host) else {
            throw ValidationError("--host must be a loopback address (127.0.0.0/8 or ::1); the load generator never targets other hosts")
        }
        if let source {
            guard let sources = LoadConfiguration.parseSources(source) else {
                throw ValidationError("--source must be a loopback address or range, e.g. 127.0.0.2-127.0.0.40, or ::1")
            }
            guard sources[0].contains(":") == host.contains(":") else {
                throw ValidationError("--source and --host must both be IPv4 or both IPv6 (e.g. --host ::1 --source ::1)")
            }
        }
        guard LoadConfiguration.Scenario(rawValue: scenario) != nil else { throw ValidationError("--scenario must be steady, churn, storm, herd or silence") }
        guard (1...200_000).contains(agents) else { throw ValidationError("--agents must be between 1 and 200000") }
        guard intervalMs >= 10 else { throw ValidationError("--interval-ms must be at least 10") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be between 0 and 3600 seconds") }
        guard (0...1000).contains(watchers) else { throw ValidationError("--watchers must be between 0 and 1000") }
        guard churn > 0, churn <= 1 else { throw ValidationError("--churn must be a share between 0 and 1, e.g. 0.01") }
        guard (1...1000).contains(window) else { throw ValidationError("--window must be between 1 and 1000") }
        guard (1...65535).contains(port), fallbackPorts.allSatisfy({ (1...65535).contains($0) }) else {
            throw ValidationError("--port and --fallback-port must be between 1 and 65535, e.g. --port 7777")
        }
    }

    func run() async throws {
        var configuration = LoadConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.fallbackPorts = fallbackPorts
        configuration.agents = agents
        configuration.intervalMs = intervalMs
        configuration.rampPerSecond = ramp
        configuration.binary = binary
        configuration.flood = flood
        configuration.window = window
        configuration.durationSeconds = duration
        configuration.sourceAddresses = source.flatMap(LoadConfiguration.parseSources) ?? [host.contains(":") ? "::1" : "127.0.0.1"]
        configuration.scenario = LoadConfiguration.Scenario(rawValue: scenario)!
        configuration.stormCount = stormCount
        configuration.settleSeconds = settle
        configuration.stormAtUnixMs = stormAt
        configuration.idPrefix = idPrefix
        configuration.watchers = watchers
        configuration.churnPerSecond = churn
        configuration.token = ProcessInfo.processInfo.environment["ROLLCALL_TOKEN"]
        let generator = LoadGenerator(configuration: configuration, threads: threads)
        let report = await generator.run { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        print(report.table)
        print(report.json)
        try await generator.shutdown()
    }
}
