import ArgumentParser
import Foundation
import RollcallClient
import RollcallCore
import RollcallTransport

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(help: "The server's HTTP address, e.g. http://127.0.0.1:7777, https://[::1]:7777.")
    var server: String = "http://127.0.0.1:7777"

    @Option(help: "PEM file of the CA that signed an https server's certificate (default: the system's CAs).")
    var ca: String?

    @Flag(help: "Print JSON for scripts instead of a table.")
    var json = false

    func validate() throws { try validateServerURL(server, ca: ca) }

    /// Admin operations read the token from ROLLCALL_ADMIN_TOKEN.
    var client: APIClient {
        get throws {
            try APIClient(baseURL: server, token: ProcessInfo.processInfo.environment["ROLLCALL_ADMIN_TOKEN"], caFile: ca)
        }
    }
}

/// The `--server` (and `--ca`) check every client command makes.
func validateServerURL(_ server: String, ca: String?) throws {
    let url: ServerURL
    do {
        url = try ServerURL(parsing: server, schemes: [.http, .https])
    } catch {
        throw ValidationError("--server: \(error.description)")
    }
    if let ca {
        guard url.scheme.isTLS else { throw ValidationError("--ca applies to https:// servers only") }
        guard FileManager.default.isReadableFile(atPath: ca) else { throw ValidationError("--ca: the file \(ca) cannot be read") }
    }
}

/// Runs a client call, turning failures into a readable message and exit code 1 (2 when the
/// server cannot be reached).
func runClient(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let failure as APIClient.Failure {
        // The server's message quotes what the request sent (an id, a label): shown escaped too.
        FileHandle.standardError.write(Data("rollcall: \(TerminalText.escaped(failure.message))\n".utf8))
        throw ExitCode(failure.code == "unreachable" ? 2 : 1)
    }
}

func printJSON(_ value: JSONValue) { print(value.serialized()) }

struct Agents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show, register, remove and kick agents.",
        subcommands: [List.self, Show.self, Add.self, Remove.self, Kick.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Agents with their state, since when, and when last seen.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only this state: online, suspect, offline or unknown.") var state: String?
        @Option(help: "Only agents with this label k=v (repeatable).") var label: [String] = []
        @Option(name: .customLong("prefix"), help: "Only ids starting with this.") var prefix: String?
        @Option(help: "At most this many.") var limit: Int = 1000

        func validate() throws {
            if let state, PresenceState(rawValue: state) == nil { throw ValidationError("--state must be online, suspect, offline or unknown") }
            for l in label where !l.contains("=") { throw ValidationError("--label must look like key=value") }
            guard (1...1000).contains(limit) else { throw ValidationError("--limit must be between 1 and 1000") }
        }

        func run() async throws {
            try await runClient {
                var query = ["limit=\(limit)"]
                if let state { query.append("state=\(state)") }
                if let prefix { query.append("q=\(prefix.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? prefix)") }
                for l in label { query.append("label=\(l.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? l)") }
                let result = try await client.client.get("/v1/agents?" + query.joined(separator: "&"))
                if client.json { return printJSON(result) }
                guard case .array(let agents)? = result["agents"] else { return }
                let rows = agents.map { a in
                    [a["id"]?.stringValue ?? "", a["state"]?.stringValue ?? "", a["since"]?.stringValue ?? "-", a["last_seen"]?.stringValue ?? "-"]
                }
                print(Table.render(header: ["ID", "STATE", "SINCE", "LAST SEEN"], rows: rows))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One agent in full.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The agent id.") var id: String

        func validate() throws {
            if let problem = AgentID.validationError(id) { throw ValidationError(problem) }
        }

        func run() async throws {
            try await runClient {
                let agent = try await client.client.get("/v1/agents/\(id)")
                if client.json { return printJSON(agent) }
                let fields = Table.fields(agent)
                if !fields.isEmpty { print(fields) }
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register an agent and print its token, once.",
            discussion: "Needs ROLLCALL_ADMIN_TOKEN. Store the token on the agent's machine (e.g. --token-file); the server keeps only its hash.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The agent id.") var id: String
        @Option(help: "A label k=v (repeatable).") var label: [String] = []

        func validate() throws {
            if let problem = AgentID.validationError(id) { throw ValidationError(problem) }
            for l in label where !l.contains("=") { throw ValidationError("--label must look like key=value") }
        }

        func run() async throws {
            try await runClient {
                let labels = JSONValue.object(label.map { l in
                    let parts = l.split(separator: "=", maxSplits: 1)
                    return (String(parts[0]), JSONValue.string(parts.count > 1 ? String(parts[1]) : ""))
                })
                let result = try await client.client.send("POST", "/v1/agents", body: .object([("id", .string(id)), ("labels", labels)]))
                if client.json { return printJSON(result) }
                print("registered \(id); its token (shown only now):")
                print(result["token"]?.stringValue ?? "")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an agent: revoke its token; a connected agent is closed with 4003.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The agent id.") var id: String

        func validate() throws {
            if let problem = AgentID.validationError(id) { throw ValidationError(problem) }
        }

        func run() async throws {
            try await runClient {
                let result = try await client.client.send("DELETE", "/v1/agents/\(id)")
                if client.json { return printJSON(result) }
                print("removed \(id)" + (result["was_connected"] == .bool(true) ? " (its connection was closed)" : ""))
            }
        }
    }

    struct Kick: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disconnect an agent (4002); it may reconnect.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "The agent id.") var id: String

        func validate() throws {
            if let problem = AgentID.validationError(id) { throw ValidationError(problem) }
        }

        func run() async throws {
            try await runClient {
                let result = try await client.client.send("POST", "/v1/agents/\(id)/kick")
                if client.json { return printJSON(result) }
                print(result["was_connected"] == .bool(true) ? "kicked \(id)" : "\(id) was not connected; marked offline")
            }
        }
    }
}
