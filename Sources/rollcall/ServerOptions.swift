import ArgumentParser
import Logging
import RollcallCore
import RollcallServer

/// Flags shared by `serve` and `demo`.
struct ServerOptions: ParsableArguments {
    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port: Int = 7777

    @Option(help: "SQLite history file (created if missing).")
    var db: String = "./rollcall.db"

    @Option(name: .customLong("interval-ms"), help: "Heartbeat interval granted to agents that ask for none.")
    var intervalMs: Int64?

    @Option(name: .customLong("timeout-ms"), help: "Silence after which an agent is offline (default: 3 intervals).")
    var timeoutMs: Int64?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, e.g. --port 7777") }
        if let intervalMs, intervalMs < 10 { throw ValidationError("--interval-ms must be at least 10, e.g. --interval-ms 5000") }
        if let timeoutMs, timeoutMs < 20 { throw ValidationError("--timeout-ms must be at least 20, e.g. --timeout-ms 15000") }
        if let intervalMs, let timeoutMs, timeoutMs <= intervalMs {
            throw ValidationError("--timeout-ms (\(timeoutMs)) must be longer than --interval-ms (\(intervalMs)), e.g. three intervals")
        }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if db.isEmpty { throw ValidationError("--db needs a file path, e.g. --db ./rollcall.db") }
    }

    func serverConfiguration(defaultIntervalMs: Int64 = 5000) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.databasePath = db
        let interval = intervalMs ?? defaultIntervalMs
        configuration.liveness.defaultIntervalMs = interval
        configuration.liveness.defaultTimeoutMs = timeoutMs ?? interval * 3
        configuration.liveness.minIntervalMs = min(configuration.liveness.minIntervalMs, interval)
        return configuration
    }

    func makeLogger(default level: Logger.Level) -> Logger {
        var logger = Logger(label: "rollcall")
        logger.logLevel = logLevel.flatMap(Logger.Level.init(rawValue:)) ?? level
        return logger
    }
}
