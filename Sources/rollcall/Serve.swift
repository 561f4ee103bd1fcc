import ArgumentParser
import Foundation
import Logging
import RollcallServer
import ServiceLifecycle
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the server: agent gateway, liveness, history, query API.",
        discussion: "SIGTERM or SIGINT stop it gracefully: agents are told (close 1001) and every open session is closed in the history."
    )

    @OptionGroup var options: ServerOptions

    @Flag(help: "Open mode: any agent id may connect without a token (loopback only unless --allow-open-remote). The default when no admin token is set.")
    var open = false

    @Flag(name: .customLong("allow-open-remote"), help: "Allow open mode on an address other than loopback.")
    var allowOpenRemote = false

    @Option(name: .customLong("admin-token-file"), help: "File holding the admin token (or set ROLLCALL_ADMIN_TOKEN). With one, agents need tokens.")
    var adminTokenFile: String?

    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain; with --tls-key the port serves wss:// and https://.")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "PEM private key for --tls-cert.")
    var tlsKey: String?

    @Option(name: .customLong("max-connections"), help: "Most agent connections at once.")
    var maxConnections: Int = 100_000

    @Option(name: .customLong("max-message-bytes"), help: "Largest agent message (bigger ones close with 1009).")
    var maxMessageBytes: Int = 4096

    @Option(name: .customLong("max-messages-per-second"), help: "Messages per second one agent may send before it is closed (1008).")
    var maxMessagesPerSecond: Double = 20

    @Option(
        name: .customLong("max-handshakes-per-second"),
        help: "New agent connections per second, server-wide (beyond: 429 with Retry-After); also paces the warm-up after a restart.")
    var maxHandshakesPerSecond: Double = 2_000

    @Option(name: .customLong("max-watchers"), help: "Most /v1/watch streams at once (beyond: 429 before the upgrade).")
    var maxWatchers: Int = 1_000

    func validate() throws {
        guard maxWatchers > 0 else { throw ValidationError("--max-watchers must be positive, e.g. --max-watchers 1000") }
        if let adminTokenFile, !FileManager.default.isReadableFile(atPath: adminTokenFile) {
            throw ValidationError("--admin-token-file \(adminTokenFile) cannot be read")
        }
        for path in [tlsCert, tlsKey].compactMap({ $0 }) where !FileManager.default.isReadableFile(atPath: path) {
            throw ValidationError("\(path) cannot be read; --tls-cert and --tls-key take PEM files")
        }
        guard maxMessagesPerSecond >= 1 else { throw ValidationError("--max-messages-per-second must be at least 1") }
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be positive") }
        guard maxHandshakesPerSecond >= 1, maxHandshakesPerSecond.isFinite else {
            throw ValidationError("--max-handshakes-per-second must be at least 1, e.g. --max-handshakes-per-second 2000")
        }
        guard (256...1_048_576).contains(maxMessageBytes) else { throw ValidationError("--max-message-bytes must be between 256 and 1048576") }
        let configuration = try makeConfiguration()
        if let problem = configuration.validationError() { throw ValidationError(problem) }
    }

    func makeConfiguration() throws -> ServerConfiguration {
        var configuration = options.serverConfiguration()
        configuration.allowOpenBeyondLoopback = allowOpenRemote
        configuration.limits.maxConnections = maxConnections
        configuration.limits.maxWatchers = maxWatchers
        configuration.maxMessageBytes = maxMessageBytes
        configuration.limits.messagesPerSecond = maxMessagesPerSecond
        configuration.limits.messageBurst = maxMessagesPerSecond * 2
        configuration.limits.handshakesPerSecond = maxHandshakesPerSecond
        configuration.limits.handshakeBurst = maxHandshakesPerSecond * 2
        configuration.tlsCertificatePath = tlsCert
        configuration.tlsKeyPath = tlsKey
        if let adminTokenFile {
            configuration.adminToken = try String(contentsOfFile: adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let token = ProcessInfo.processInfo.environment["ROLLCALL_ADMIN_TOKEN"], !token.isEmpty {
            configuration.adminToken = token
        }
        if configuration.adminToken?.isEmpty == true { configuration.adminToken = nil }
        configuration.openMode = open || configuration.adminToken == nil
        return configuration
    }

    func run() async throws {
        let configuration = try makeConfiguration()
        let logger = options.makeLogger(default: .info)
        let host = configuration.host
        let db = configuration.databasePath
        let mode = configuration.openMode ? "open" : "tokens"
        let app: RollcallApplication
        do {
            app = try buildApplication(configuration: configuration, postgres: try options.postgres(), logger: logger) { port in
                logger.info("rollcall listening", metadata: ["address": "\(host):\(port)", "db": "\(db)", "mode": "\(mode)"])
            }
        } catch let failure as ListenFailure {
            throw failure.exit()
        }
        let group = ServiceGroup(
            configuration: .init(services: [app.application], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await runServer(group, host: configuration.host, port: configuration.port)
        } catch let failure as ListenFailure {
            throw failure.exit()
        }
    }
}
