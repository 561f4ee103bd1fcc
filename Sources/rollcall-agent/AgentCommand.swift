import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FoundationEssentials
import Logging
import NIOCore
import NIOPosix
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
            Settings come from flags, then the environment (ROLLCALL_SERVER, ROLLCALL_ID, ROLLCALL_INTERVAL_MS, \
            ROLLCALL_BINARY, ROLLCALL_LABELS=k=v,k=v, ROLLCALL_TOKEN, ROLLCALL_TOKEN_FILE, ROLLCALL_CA), then --config FILE \
            (key = value lines: server, id, interval_ms, binary, label.KEY, token_file, ca, status_file, log_level).
            The token comes from a file or ROLLCALL_TOKEN, never from the command line.
            SIGTERM or SIGINT send bye, close the connection and exit 0. Exit 77: the token was refused or revoked; \
            78: the server refused the id or parameters; 69: the server could not be reached within --give-up-after; \
            64: bad settings.
            """,
        version: "0.1.0"
    )

    @Option(help: "Server URL, e.g. ws://127.0.0.1:7777 or wss://rollcall.example.com")
    var server: String?

    @Option(help: "This agent's id: 1-128 characters of A-Z a-z 0-9 . _ : -")
    var id: String?

    @Option(name: .customLong("interval-ms"), help: "Requested heartbeat interval; the server grants within its bounds.")
    var intervalMs: Int64?

    @Flag(help: "Send the compact 9-byte binary heartbeat.")
    var binary = false

    @Option(name: .customLong("label"), help: "A label k=v sent in hello (repeatable).")
    var labels: [String] = []

    @Option(name: .customLong("token-file"), help: "File holding this agent's token.")
    var tokenFile: String?

    @Option(help: "PEM CA bundle to verify a wss:// server (default: the system trust store).")
    var ca: String?

    @Option(name: .customLong("status-file"), help: "File with a small JSON object sent as each heartbeat's status.")
    var statusFile: String?

    @Option(name: .customLong("give-up-after"), help: "Exit 69 when the server could not be reached for this many seconds (default: retry forever).")
    var giveUpAfter: Int?

    @Option(help: "Configuration file of key = value lines.")
    var config: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    /// The merged settings; `validate()` and `run()` agree on them.
    func settings() throws -> AgentSettings {
        var flags = AgentSettings()
        flags.server = server
        flags.id = id
        flags.intervalMs = intervalMs
        flags.binary = binary ? true : nil
        for label in labels {
            guard let eq = label.firstIndex(of: "="), eq != label.startIndex else {
                throw ValidationError("--label must look like key=value, e.g. --label env=prod")
            }
            flags.labels[String(label[..<eq])] = String(label[label.index(after: eq)...])
        }
        flags.tokenFile = tokenFile
        flags.ca = ca
        flags.statusFile = statusFile
        flags.logLevel = logLevel
        if let giveUpAfter {
            guard giveUpAfter > 0 else { throw ValidationError("--give-up-after must be a positive number of seconds") }
            flags.giveUpAfterSeconds = giveUpAfter
        }
        var file = AgentSettings()
        if let config {
            guard let text = try? String(contentsOfFile: config, encoding: .utf8) else { throw ValidationError("--config \(config) cannot be read") }
            do { file = try AgentSettings.parseFile(text, name: config) } catch { throw ValidationError(error.description) }
        }
        return file.overridden(by: .fromEnvironment(ProcessInfo.processInfo.environment)).overridden(by: flags)
    }

    /// Every long option this command takes, to catch a mistyped one before anything else.
    static let longOptions = [
        "server", "id", "interval-ms", "binary", "label", "token-file", "ca", "status-file", "give-up-after", "config", "log-level", "help",
        "version",
    ]

    func validate() throws {
        // A typo such as --sever must be named as one, not reported as a missing --server.
        try Self.checkOptionNames(CommandLine.arguments.dropFirst())
        let settings = try settings()
        do { _ = try settings.configuration(hostname: nil) } catch { throw ValidationError(error.description) }
        if let level = settings.logLevel, Logger.Level(rawValue: level) == nil {
            throw ValidationError("the log level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        // One event-loop thread: the agent has one connection, and every thread costs the
        // machine it runs on memory (stack, malloc arena) for nothing.
        NIOSingletons.groupLoopCountSuggestion = 1
        let settings = try settings()
        let configuration = try settings.configuration(hostname: ProcessInfo.processInfo.hostName)
        var logger = Logger(label: "rollcall-agent")
        logger.logLevel = settings.logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info
        logger[metadataKey: "agent"] = "\(configuration.agentID)"
        let runner = AgentRunner(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [AgentService(runner: runner)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let stop as AgentStop {
            printToStandardError("rollcall-agent: \(stop.message)")
            throw ExitCode(stop.exitCode)
        }
    }
}

extension AgentCommand {
    /// Throws "Unknown option '--sever'. Did you mean '--server'?" for an option this command
    /// does not take, as ArgumentParser words it for every other command.
    static func checkOptionNames(_ arguments: ArraySlice<String>) throws {
        var skipNext = false
        for argument in arguments {
            if skipNext {
                skipNext = false
                continue
            }
            if argument == "--" { return }
            guard argument.hasPrefix("--") else { continue }
            let name = String(argument.dropFirst(2).prefix { $0 != "=" })
            if longOptions.contains(name) {
                // An option's value may itself start with "--" only in the `--name=value` form.
                skipNext = !argument.contains("=") && name != "binary" && name != "help" && name != "version"
                continue
            }
            let closest = longOptions.min { distance($0, name) < distance($1, name) }
            let hint = closest.map { distance($0, name) <= 3 ? " Did you mean '--\($0)'?" : "" } ?? ""
            throw ValidationError("Unknown option '--\(name)'.\(hint)")
        }
    }

    /// Levenshtein distance, for suggestions.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        var row = Array(0...y.count)
        for i in 1...max(1, x.count) where !x.isEmpty {
            var previous = row[0]
            row[0] = i
            for j in 1...max(1, y.count) where !y.isEmpty {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (x[i - 1] == y[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[y.count]
    }
}

struct AgentService: Service {
    let runner: AgentRunner
    func run() async throws { try await runner.run() }
}

/// One line on standard error. (`FileHandle` is in Foundation proper, which the agent does not
/// link: it would bring ICU and some 50 MB with it.)
func printToStandardError(_ line: String) {
    var text = line
    text.append("\n")
    text.withUTF8 { bytes in
        var rest = UnsafeRawBufferPointer(bytes)
        while !rest.isEmpty {
            let written = write(2, rest.baseAddress, rest.count)
            if written <= 0 { return }
            rest = UnsafeRawBufferPointer(rebasing: rest[written...])
        }
    }
}
