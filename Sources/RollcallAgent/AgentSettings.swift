import RollcallCore

/// The agent's settings from its three sources. Flags win over the environment, which wins over
/// the configuration file. The token is read from a file or `ROLLCALL_TOKEN`, never from argv.
public struct AgentSettings: Sendable, Equatable {
    public var server: String?
    public var id: String?
    public var intervalMs: Int64?
    public var binary: Bool?
    public var labels: [String: String] = [:]
    public var tokenFile: String?
    public var token: String?
    public var ca: String?
    public var statusFile: String?
    public var logLevel: String?
    /// Seconds without reaching the server before giving up (exit 69).
    public var giveUpAfterSeconds: Int?

    public init() {}

    public struct Problem: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// `key = value` lines; `#` starts a comment; labels as `label.env = prod`.
    public static func parseFile(_ text: String, name rawName: String = "config") throws(Problem) -> AgentSettings {
        // Names and keys are echoed in messages to a terminal: escaped once, here.
        let name = TerminalText.escaped(rawName)
        var settings = AgentSettings()
        for (number, raw) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)?
                .trimmed ?? ""
            if line.isEmpty { continue }
            guard let eq = line.firstIndex(of: "=") else { throw Problem("\(name):\(number + 1): expected key = value") }
            let key = line[..<eq].trimmed
            var value = line[line.index(after: eq)...].trimmed
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            switch key {
            case "server": settings.server = value
            case "id": settings.id = value
            case "interval_ms":
                guard let v = Int64(value) else { throw Problem("\(name):\(number + 1): interval_ms must be a number of milliseconds") }
                settings.intervalMs = v
            case "binary": settings.binary = ["true", "yes", "1"].contains(value.lowercased())
            case "token_file": settings.tokenFile = value
            case "token": throw Problem("\(name):\(number + 1): put the token in its own file and name it with token_file")
            case "ca": settings.ca = value
            case "status_file": settings.statusFile = value
            case "log_level": settings.logLevel = value
            case "give_up_after_s":
                guard let v = Int(value), v > 0 else { throw Problem("\(name):\(number + 1): give_up_after_s must be a positive number of seconds") }
                settings.giveUpAfterSeconds = v
            case _ where key.hasPrefix("label."): settings.labels[String(key.dropFirst(6))] = value
            default: throw Problem("\(name):\(number + 1): unknown setting '\(TerminalText.escaped(key))'")
            }
        }
        return settings
    }

    /// `ROLLCALL_SERVER`, `ROLLCALL_ID`, `ROLLCALL_INTERVAL_MS`, `ROLLCALL_BINARY`, `ROLLCALL_LABELS`
    /// (`k=v,k=v`), `ROLLCALL_TOKEN`, `ROLLCALL_TOKEN_FILE`, `ROLLCALL_CA`.
    public static func fromEnvironment(_ env: [String: String]) -> AgentSettings {
        var settings = AgentSettings()
        settings.server = env["ROLLCALL_SERVER"]
        settings.id = env["ROLLCALL_ID"]
        settings.intervalMs = env["ROLLCALL_INTERVAL_MS"].flatMap { Int64($0) }
        settings.binary = env["ROLLCALL_BINARY"].map { ["true", "yes", "1"].contains($0.lowercased()) }
        for pair in (env["ROLLCALL_LABELS"] ?? "").split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { settings.labels[String(parts[0])] = String(parts[1]) }
        }
        settings.token = env["ROLLCALL_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        settings.tokenFile = env["ROLLCALL_TOKEN_FILE"]
        settings.ca = env["ROLLCALL_CA"]
        return settings
    }

    /// These settings with every value `other` sets taken from `other`.
    public func overridden(by other: AgentSettings) -> AgentSettings {
        var merged = self
        merged.server = other.server ?? server
        merged.id = other.id ?? id
        merged.intervalMs = other.intervalMs ?? intervalMs
        merged.binary = other.binary ?? binary
        merged.labels.merge(other.labels) { _, new in new }
        if other.tokenFile != nil {
            merged.tokenFile = other.tokenFile
            merged.token = nil
        } else if other.token != nil {
            merged.token = other.token
        }
        merged.ca = other.ca ?? ca
        merged.statusFile = other.statusFile ?? statusFile
        merged.logLevel = other.logLevel ?? logLevel
        merged.giveUpAfterSeconds = other.giveUpAfterSeconds ?? giveUpAfterSeconds
        return merged
    }

    /// The configuration to run, or a sentence saying what to fix.
    public func configuration(hostname: String?) throws(Problem) -> AgentConfiguration {
        guard let server else { throw Problem("no server: pass --server ws://HOST:7777, set ROLLCALL_SERVER, or server = … in the config file") }
        if let problem = AgentConfiguration.urlProblem(server) { throw Problem(problem) }
        guard let id else { throw Problem("no agent id: pass --id ID, set ROLLCALL_ID, or id = … in the config file") }
        if let problem = AgentID.validationError(id) { throw Problem("id: \(problem)") }
        if let intervalMs, intervalMs <= 0 { throw Problem("the interval must be a positive number of milliseconds, e.g. 5000") }
        if let ca {
            guard isReadableFile(ca) else { throw Problem("the CA file \(TerminalText.escaped(ca)) cannot be read") }
            guard server.lowercased().hasPrefix("wss://") else { throw Problem("a CA file applies to wss:// servers only") }
        }
        var configuration = AgentConfiguration(serverURL: server, agentID: AgentID(id)!)
        configuration.requestedIntervalMs = intervalMs
        configuration.binary = binary ?? false
        configuration.labels = labels
        configuration.caFile = ca
        configuration.statusFile = statusFile
        configuration.hostname = hostname
        configuration.giveUpAfter = giveUpAfterSeconds.map { .seconds($0) }
        if let tokenFile {
            guard let text = readSmallTextFile(tokenFile, limit: 64 << 10) else {
                throw Problem("the token file \(TerminalText.escaped(tokenFile)) cannot be read (it must be a readable file of at most 64 KiB)")
            }
            configuration.token = text.trimmed
        } else {
            configuration.token = token
        }
        // It goes into an HTTP header: one line of visible ASCII, or the server could never see it.
        if let token = configuration.token, token.isEmpty || !token.utf8.allSatisfy({ (0x21...0x7E).contains($0) }) {
            throw Problem("the token must be one line of visible ASCII characters (no spaces or line breaks inside)")
        }
        return configuration
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace (spaces, tabs, line ends).
    var trimmed: String {
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
