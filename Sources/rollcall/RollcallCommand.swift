import Foundation
import ArgumentParser

@main
struct RollcallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollcall",
        abstract: "Heartbeat and presence monitoring: who is online, suspect or offline, and since when.",
        version: "0.1.0",
        subcommands: [Serve.self, Demo.self, Top.self, Status.self, History.self, Agents.self, Migrate.self]
    )

    static func main() async {
        // A closed stdout pipe must not kill the server mid-shutdown.
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
