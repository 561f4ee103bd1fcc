import RollcallCore

/// `rollcall-agent`'s command line. The agent parses its own arguments instead of using
/// ArgumentParser like the `rollcall` commands: ArgumentParser links Foundation, which would be
/// most of the agent's binary and memory on every monitored machine. It keeps ArgumentParser's
/// wording ("Error: …", "Usage: …", exit 64), so both programs answer mistakes alike.
public enum AgentCommandLine {
    public static let version = "0.1.0"

    /// What the arguments ask for.
    public enum Action: Sendable, Equatable {
        /// Run with these settings from the flags, and this configuration file if one was named.
        case run(flags: AgentSettings, configFile: String?)
        case help
        case version
    }

    /// A mistake on the command line, as a sentence that says what to type instead.
    public struct UsageError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    struct Option {
        var name: String
        /// The value's placeholder; `nil` for a flag.
        var value: String?
        var help: String
    }

    static let options: [Option] = [
        Option(name: "server", value: "url", help: "Server URL, e.g. ws://127.0.0.1:7777, wss://rollcall.example.com or ws://[::1]:7777"),
        Option(name: "id", value: "id", help: "This agent's id: 1-128 characters of A-Z a-z 0-9 . _ : -"),
        Option(name: "interval-ms", value: "ms", help: "Requested heartbeat interval; the server grants within its bounds."),
        Option(name: "binary", value: nil, help: "Send the compact 9-byte binary heartbeat."),
        Option(name: "label", value: "key=value", help: "A label sent in hello (repeatable)."),
        Option(name: "token-file", value: "file", help: "File holding this agent's token."),
        Option(name: "ca", value: "file", help: "PEM CA bundle to verify a wss:// server (default: the system trust store)."),
        Option(name: "status-file", value: "file", help: "File with a small JSON object (at most 1 KiB) sent as each heartbeat's status."),
        Option(name: "give-up-after", value: "seconds", help: "Exit 69 when the server could not be reached for this long (default: retry forever)."),
        Option(name: "config", value: "file", help: "Configuration file of key = value lines."),
        Option(name: "log-level", value: "level", help: "trace, debug, info, notice, warning, error or critical."),
        Option(name: "version", value: nil, help: "Show the version."),
        Option(name: "help", value: nil, help: "Show help information."),
    ]

    static let usageLine = "rollcall-agent [--server <url>] [--id <id>] [--interval-ms <ms>] [--binary] [--label <key=value> ...] [--token-file <file>] [--ca <file>] [--status-file <file>] [--give-up-after <seconds>] [--config <file>] [--log-level <level>]"

    public static var help: String {
        var text = """
            OVERVIEW: Hold a connection to a Rollcall server and send heartbeats.

            Settings come from flags, then the environment (ROLLCALL_SERVER, ROLLCALL_ID, ROLLCALL_INTERVAL_MS,
            ROLLCALL_BINARY, ROLLCALL_LABELS=k=v,k=v, ROLLCALL_TOKEN, ROLLCALL_TOKEN_FILE, ROLLCALL_CA), then --config FILE
            (key = value lines: server, id, interval_ms, binary, label.KEY, token_file, ca, status_file, log_level,
            give_up_after_s). The token comes from a file or ROLLCALL_TOKEN, never from the command line.
            SIGTERM or SIGINT send bye, close the connection and exit 0; a second one exits at once (143 or 130).
            Exit 77: the token was refused or revoked; 78: the server refused the id or parameters, or a TLS
            setting is wrong; 69: the server could not be reached within --give-up-after; 64: bad settings.

            USAGE: \(usageLine)

            OPTIONS:

            """
        for option in options {
            let name = option.name == "help" ? "-h, --help" : "--\(option.name)" + (option.value.map { " <\($0)>" } ?? "")
            let padded = name.count < 28 ? name + String(repeating: " ", count: 28 - name.count) : name + "\n" + String(repeating: " ", count: 30)
            text += "  \(padded)\(option.help)\n"
        }
        return text
    }

    /// The text printed for `error`, ending with how to get help.
    public static func usageMessage(_ error: UsageError) -> String {
        "Error: \(error.description)\nUsage: \(usageLine)\n  See 'rollcall-agent --help' for more information."
    }

    /// Parses the arguments after the program's name.
    public static func parse(_ arguments: [String]) throws(UsageError) -> Action {
        // As ArgumentParser: help and version win over any mistake next to them.
        for argument in arguments {
            if argument == "--" { break }
            if argument == "-h" || argument == "--help" { return .help }
            if argument == "--version" { return .version }
        }
        var flags = AgentSettings()
        var configFile: String?
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument.hasPrefix("-") && !argument.hasPrefix("--") && argument.count > 1 {
                throw UsageError("Unknown option '\(TerminalText.escaped(argument))'. Every option has a long name, e.g. --server")
            }
            guard argument.hasPrefix("--"), argument != "--" else {
                throw UsageError("Unexpected argument '\(TerminalText.escaped(argument))': every setting is an --option, e.g. --server ws://127.0.0.1:7777")
            }
            let body = argument.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            let inline: String? = body.contains("=") ? String(body[body.index(after: body.firstIndex(of: "=")!)...]) : nil
            guard let option = options.first(where: { $0.name == name }) else {
                let closest = options.min { distance($0.name, name) < distance($1.name, name) }
                let hint = closest.map { distance($0.name, name) <= 3 ? " Did you mean '--\($0.name)'?" : "" } ?? ""
                throw UsageError("Unknown option '--\(TerminalText.escaped(name))'.\(hint)")
            }
            var value: String?
            if let placeholder = option.value {
                if let inline {
                    value = inline
                } else if index < arguments.count, !arguments[index].hasPrefix("--") {
                    // A value that starts with `--` only in the `--name=value` form: otherwise
                    // `--server --id a` would take `--id` as the URL.
                    value = arguments[index]
                    index += 1
                } else {
                    throw UsageError("Missing value for '--\(name) <\(placeholder)>'")
                }
            } else if inline != nil {
                throw UsageError("'--\(name)' takes no value")
            }
            let shown = "--\(name) <\(option.value ?? "")>"
            switch name {
            case "help": return .help
            case "version": return .version
            case "server": flags.server = value
            case "id": flags.id = value
            case "interval-ms":
                guard let v = value.flatMap({ Int64($0) }) else {
                    throw UsageError("The value '\(TerminalText.escaped(value ?? ""))' is invalid for '\(shown)': a whole number of milliseconds, e.g. 5000")
                }
                flags.intervalMs = v
            case "binary": flags.binary = true
            case "label":
                guard let value, let eq = value.firstIndex(of: "="), eq != value.startIndex else {
                    throw UsageError("--label must look like key=value, e.g. --label env=prod")
                }
                flags.labels[String(value[..<eq])] = String(value[value.index(after: eq)...])
            case "token-file": flags.tokenFile = value
            case "ca": flags.ca = value
            case "status-file": flags.statusFile = value
            case "give-up-after":
                guard let v = value.flatMap({ Int($0) }), v > 0 else {
                    throw UsageError("--give-up-after must be a positive number of seconds, e.g. --give-up-after 300")
                }
                flags.giveUpAfterSeconds = v
            case "config": configFile = value
            case "log-level": flags.logLevel = value
            default: break
            }
        }
        return .run(flags: flags, configFile: configFile)
    }

    /// The merged settings: flags over the environment over the configuration file.
    public static func settings(flags: AgentSettings, configFile: String?, environment: [String: String]) throws(UsageError) -> AgentSettings {
        var file = AgentSettings()
        if let configFile {
            guard let text = readSmallTextFile(configFile) else {
                throw UsageError("--config \(TerminalText.escaped(configFile)) cannot be read (it must be a readable file of at most 1 MiB)")
            }
            do { file = try AgentSettings.parseFile(text, name: configFile) } catch { throw UsageError(error.description) }
        }
        return file.overridden(by: .fromEnvironment(environment)).overridden(by: flags)
    }

    /// Levenshtein distance, for suggestions.
    static func distance(_ a: String, _ b: String) -> Int {
        let x = Array(a), y = Array(b)
        guard !x.isEmpty else { return y.count }
        guard !y.isEmpty else { return x.count }
        var row = Array(0...y.count)
        for i in 1...x.count {
            var previous = row[0]
            row[0] = i
            for j in 1...y.count {
                let current = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (x[i - 1] == y[j - 1] ? 0 : 1))
                previous = current
            }
        }
        return row[y.count]
    }
}
