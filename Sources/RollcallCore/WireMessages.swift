/// Messages of protocol version 1 (spec §3.2).
public enum AgentMessage: Sendable, Equatable {
    case hello(Hello)
    case heartbeat(Heartbeat)
    case bye(reason: String?)
}

/// Optional metadata an agent sends at any time.
public struct Hello: Sendable, Equatable {
    public var hostname: String?
    public var agentVersion: String?
    public var labels: [String: String]
    /// The whole message, kept as the agent's metadata.
    public var raw: JSONValue

    public init(hostname: String? = nil, agentVersion: String? = nil, labels: [String: String] = [:], raw: JSONValue? = nil) {
        self.hostname = hostname
        self.agentVersion = agentVersion
        self.labels = labels
        self.raw = raw ?? Hello.makeRaw(hostname: hostname, agentVersion: agentVersion, labels: labels)
    }

    static func makeRaw(hostname: String?, agentVersion: String?, labels: [String: String]) -> JSONValue {
        var members: [(String, JSONValue)] = [("type", .string("hello"))]
        if let hostname { members.append(("hostname", .string(hostname))) }
        if let agentVersion { members.append(("agent_version", .string(agentVersion))) }
        members.append(("labels", .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        return .object(members)
    }
}

public struct Heartbeat: Sendable, Equatable {
    public var seq: UInt64
    /// Agent wall clock at send time; only feeds the skew report.
    public var sentMs: Int64?
    /// How late the agent's own scheduler sent this beat.
    public var lateMs: Int64?
    /// A small free-form object kept as the agent's latest status.
    public var status: JSONValue?

    public init(seq: UInt64, sentMs: Int64? = nil, lateMs: Int64? = nil, status: JSONValue? = nil) {
        self.seq = seq
        self.sentMs = sentMs
        self.lateMs = lateMs
        self.status = status
    }
}

/// Messages from the server to an agent.
public enum ServerMessage: Sendable, Equatable {
    case welcome(Welcome)
    case ack(seq: UInt64, serverTimeMs: Int64)
}

public struct Welcome: Sendable, Equatable {
    public var session: String
    public var intervalMs: Int64
    public var timeoutMs: Int64
    public var serverTimeMs: Int64

    public init(session: String, intervalMs: Int64, timeoutMs: Int64, serverTimeMs: Int64) {
        self.session = session
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.serverTimeMs = serverTimeMs
    }
}

/// A message the server must refuse, with the close code and reason text of spec §3.3.
public struct ProtocolViolation: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: CloseCode
    public var reason: String
    /// A short, stable label for metrics (`invalid_json`, `unknown_type`, …).
    public var cause: String

    public init(_ code: CloseCode, _ reason: String, cause: String) {
        self.code = code
        self.reason = reason
        self.cause = cause
    }

    public var description: String { "\(code.rawValue) \(reason)" }
}
