import ArgumentParser
import Foundation
import Logging
import RollcallDashboard
import RollcallTop

struct Top: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The full-screen live dashboard of a Rollcall server.",
        discussion: """
            Live from /v1/watch. Keys: ↑ ↓ j k move, PgUp PgDn Home End, Enter detail, / filter, s sort, \
            r reverse, ? help, q quit. Honours NO_COLOR. For scripts, use `rollcall status --json`.
            """
    )

    @Option(help: "The server's HTTP address, e.g. http://127.0.0.1:7777, https://[::1]:7777.")
    var server: String = "http://127.0.0.1:7777"

    @Option(help: "PEM file of the CA that signed an https server's certificate (default: the system's CAs).")
    var ca: String?

    @Option(help: "Seconds between refreshes of last seen, RTT, flaps and uptime.")
    var refresh: Double = 3

    func validate() throws {
        try validateServerURL(server, ca: ca)
        guard refresh >= 0.5, refresh <= 3600 else { throw ValidationError("--refresh must be between 0.5 and 3600 seconds, e.g. --refresh 3") }
        guard Terminal.isInteractive else {
            throw ValidationError("rollcall top needs a terminal; for scripts use `rollcall status --json` or GET /v1/watch")
        }
    }

    func run() async throws {
        var logger = Logger(label: "rollcall.top")
        logger.logLevel = .critical  // the screen is the dashboard's
        let configuration = LiveDashboard.Configuration(
            server: server, caFile: ca, colorMode: ColorMode.detect(environment: ProcessInfo.processInfo.environment),
            statisticsInterval: .milliseconds(Int64(refresh * 1000)))
        try await LiveDashboard(configuration: configuration, logger: logger).run()
    }
}
