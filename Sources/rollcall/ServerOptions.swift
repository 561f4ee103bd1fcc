import ArgumentParser
import Foundation
import NIOCore
import ServiceLifecycle
import Logging
import RollcallCore
import RollcallServer
import RollcallStore

/// Flags shared by `serve` and `demo`.
struct ServerOptions: ParsableArguments {
    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port: Int = 7777

    @Option(help: "History database: a SQLite file (created if missing), or postgres://USER@HOST:PORT/DATABASE.")
    var db: String = "./rollcall.db"

    @Option(name: .customLong("db-password-file"), help: "File holding the PostgreSQL password (or set PGPASSWORD); never in --db.")
    var dbPasswordFile: String?

    @Option(name: .customLong("node-id"), help: "This node's name among the nodes on one PostgreSQL (default: HOSTNAME:PORT).")
    var nodeID: String?

    @Option(name: .customLong("node-lease"), help: "With PostgreSQL: how long this node's lease lasts unrenewed before another node takes its agents over, e.g. 10s.")
    var nodeLease: String?

    @Option(name: .customLong("interval-ms"), help: "Heartbeat interval granted to agents that ask for none.")
    var intervalMs: Int64?

    @Option(name: .customLong("timeout-ms"), help: "Silence after which an agent is offline (default: 3 intervals).")
    var timeoutMs: Int64?

    @Option(name: .customLong("min-interval-ms"), help: "Shortest interval an agent may ask for.")
    var minIntervalMs: Int64?

    @Option(name: .customLong("max-interval-ms"), help: "Longest interval an agent may ask for.")
    var maxIntervalMs: Int64?

    @Option(help: "How online agents become suspect: fixed (interval × 1.5 of silence) or phi (phi-accrual over each agent's own beats).")
    var detector: String = "fixed"

    @Option(name: .customLong("phi-threshold"), help: "Suspicion level at which the phi detector calls an agent suspect.")
    var phiThreshold: Double = 8

    @Option(help: "Prune history older than this, e.g. 90d, 12h (default: keep everything).")
    var retain: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, e.g. --port 7777") }
        if let intervalMs, intervalMs < 10 { throw ValidationError("--interval-ms must be at least 10, e.g. --interval-ms 5000") }
        if let timeoutMs, timeoutMs < 20 { throw ValidationError("--timeout-ms must be at least 20, e.g. --timeout-ms 15000") }
        // Below interval × slack an agent would be timed out before it is even suspect.
        if let timeoutMs, let interval = intervalMs, Double(timeoutMs) < Double(interval) * 1.5 {
            throw ValidationError(
                "--timeout-ms (\(timeoutMs)) must be at least 1.5 × --interval-ms (\(interval)), e.g. --timeout-ms \(interval * 3) (three intervals)")
        }
        if let logLevel, Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if db.isEmpty { throw ValidationError("--db needs a file path, e.g. --db ./rollcall.db") }
        if PostgresLocation.isPostgresURL(db) {
            do { _ = try PostgresLocation(parsing: db) } catch { throw ValidationError(error.description) }
            if let dbPasswordFile, !FileManager.default.isReadableFile(atPath: dbPasswordFile) {
                throw ValidationError("--db-password-file \(dbPasswordFile) cannot be read")
            }
        } else if dbPasswordFile != nil || nodeID != nil || nodeLease != nil {
            throw ValidationError("--db-password-file, --node-id and --node-lease are for a PostgreSQL --db (postgres://USER@HOST:PORT/DATABASE)")
        }
        if let nodeLease {
            guard let ms = DurationText.parseMillis(nodeLease), (1_000...3_600_000).contains(ms) else {
                throw ValidationError("--node-lease must be a duration between 1s and 1h, e.g. --node-lease 10s")
            }
        }
        if let nodeID, AgentID(nodeID) == nil {
            throw ValidationError("--node-id must be 1-128 characters of A-Z a-z 0-9 . _ : -, e.g. --node-id monitor-a")
        }
        if detector != "fixed" && detector != "phi" { throw ValidationError("--detector must be fixed or phi") }
        guard phiThreshold > 0 && phiThreshold <= 16 else { throw ValidationError("--phi-threshold must be between 0 and 16, e.g. 8") }
        if let retain, DurationText.parseMillis(retain) == nil {
            throw ValidationError("--retain must be a duration such as 90d, 12h or 30m")
        }
        if let minIntervalMs, minIntervalMs < 10 { throw ValidationError("--min-interval-ms must be at least 10") }
        if let minIntervalMs, let maxIntervalMs, maxIntervalMs < minIntervalMs {
            throw ValidationError("--max-interval-ms must not be below --min-interval-ms")
        }
    }

    func serverConfiguration(defaultIntervalMs: Int64 = 5000) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.host = host
        configuration.port = port
        configuration.databasePath = db
        let interval = intervalMs ?? defaultIntervalMs
        configuration.liveness.defaultIntervalMs = interval
        configuration.liveness.defaultTimeoutMs = timeoutMs ?? interval * 3
        configuration.liveness.minIntervalMs = minIntervalMs ?? min(configuration.liveness.minIntervalMs, interval)
        configuration.liveness.maxIntervalMs = maxIntervalMs ?? max(configuration.liveness.maxIntervalMs, interval)
        if detector == "phi" { configuration.liveness.detector = .phiAccrual(threshold: phiThreshold) }
        configuration.retainMs = retain.flatMap(DurationText.parseMillis)
        if let lease = nodeLease.flatMap(DurationText.parseMillis) { configuration.leaseMs = lease }
        return configuration
    }

    /// The PostgreSQL database, its password and this node's name, when `--db` names one.
    func postgres() throws -> (location: PostgresLocation, password: String?, nodeID: String)? {
        guard PostgresLocation.isPostgresURL(db) else { return nil }
        let location = try PostgresLocation(parsing: db)
        var password = ProcessInfo.processInfo.environment["PGPASSWORD"]
        if let dbPasswordFile {
            password = try String(contentsOfFile: dbPasswordFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return (location, password, nodeID ?? "\(ProcessInfo.processInfo.hostName):\(port)")
    }

    func makeLogger(default level: Logger.Level) -> Logger {
        var logger = Logger(label: "rollcall")
        logger.logLevel = logLevel.flatMap(Logger.Level.init(rawValue:)) ?? level
        return logger
    }
}

/// The system refused the listening socket; `message` says why and what to do.
struct ListenFailure: Error {
    let message: String

    /// Prints the message and ends the command with status 1.
    func exit() -> ExitCode {
        FileHandle.standardError.write(Data("rollcall: \(message)\n".utf8))
        return ExitCode(1)
    }
}

/// Builds the server; a database held by another server, a database that cannot be opened, or
/// an address that cannot be bound becomes a ``ListenFailure`` with one sentence. None of these
/// has written anything to the database.
func buildApplication(
    configuration: ServerConfiguration, postgres: (location: PostgresLocation, password: String?, nodeID: String)? = nil, logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void
) throws -> RollcallApplication {
    do {
        if let postgres {
            do {
                return try RollcallApplication.build(
                    configuration: configuration, postgres: postgres.location, password: postgres.password, nodeID: postgres.nodeID, logger: logger,
                    onServerRunning: onServerRunning)
            } catch let error as IOError {
                throw error
            } catch {
                throw ListenFailure(message: "cannot use the history database at \(postgres.location): \(TerminalText.escaped(String("\(error)".prefix(400))))")
            }
        }
        return try RollcallApplication.build(configuration: configuration, logger: logger, onServerRunning: onServerRunning)
    } catch let held as DatabaseLock.Held {
        throw ListenFailure(message: held.description)
    } catch let unavailable as DatabaseLock.Unavailable {
        throw ListenFailure(message: unavailable.description)
    } catch let error as IOError {
        throw ListenFailure(message: "cannot listen on \(configuration.host):\(configuration.port): \(listenProblem(error) ?? "\(error)")")
    }
}

/// One sentence for the errno of a listening socket the system refused.
func listenProblem(_ error: IOError) -> String? {
    switch error.errnoCode {
    case EADDRINUSE: "the address is already in use (another rollcall serve?); stop it or choose another --port"
    case EACCES: "permission denied (ports below 1024 need privileges); choose another --port"
    case EADDRNOTAVAIL: "this machine has no such address; check --host"
    default: nil
    }
}

/// Runs a server's service group; a listening socket the system refuses becomes a
/// ``ListenFailure`` with one sentence instead of NIO's error text.
func runServer(_ group: ServiceGroup, host: String, port: Int) async throws {
    do {
        try await group.run()
    } catch let error as IOError {
        guard let why = listenProblem(error) else { throw error }
        throw ListenFailure(message: "cannot listen on \(host):\(port): \(why)")
    }
}
