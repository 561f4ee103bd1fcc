import ArgumentParser
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

    @Flag(help: "Open mode: any agent id may connect without a token (loopback only unless --allow-open-remote).")
    var open = false

    @Flag(name: .customLong("allow-open-remote"), help: "Allow open mode on an address other than loopback.")
    var allowOpenRemote = false

    func validate() throws {
        var configuration = options.serverConfiguration()
        configuration.allowOpenBeyondLoopback = allowOpenRemote
        if let problem = configuration.validationError() { throw ValidationError(problem) }
    }

    func run() async throws {
        var configuration = options.serverConfiguration()
        configuration.allowOpenBeyondLoopback = allowOpenRemote
        let logger = options.makeLogger(default: .info)
        let host = configuration.host
        let db = configuration.databasePath
        let app = try RollcallApplication.build(configuration: configuration, logger: logger) { port in
            logger.info("rollcall listening", metadata: ["address": "\(host):\(port)", "db": "\(db)", "mode": "open"])
        }
        let group = ServiceGroup(
            configuration: .init(services: [app.application], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
