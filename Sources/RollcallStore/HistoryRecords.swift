import RollcallCore

/// One change for the history, in the order it happened.
public enum HistoryEvent: Sendable, Equatable {
    case transition(Transition)
    case sessionOpened(SessionStart)
    case sessionClosed(SessionEnd)
    /// Periodic heartbeat counts and last-seen times of open sessions.
    case counters([LivenessEngine.SessionCounter])
    /// The agent's latest `hello`.
    case hello(AgentID, Hello)
    /// The agent's latest heartbeat `status` object.
    case status(AgentID, JSONValue)
}

/// An `agents` row.
public struct StoredAgent: Sendable, Equatable {
    public var id: String
    public var state: PresenceState
    public var stateSince: Millis
    public var firstSeen: Millis
    public var lastSeen: Millis?
    /// JSON object text.
    public var labels: String
    public var hostname: String?
    public var agentVersion: String?
    public var metadata: String?
    public var status: String?
    public var intervalMs: Int64?
    public var timeoutMs: Int64?
    public var tokenHash: String?
    public var disabled: Bool
    /// Boot id of the agent's latest session, so a restart can still be told from a blip.
    public var lastBootID: String?
}

/// A `sessions` row.
public struct StoredSession: Sendable, Equatable {
    public var id: Int64
    public var agentID: String
    public var startedAt: Millis
    public var endedAt: Millis?
    public var endReason: String?
    public var closeCode: Int?
    public var remoteAddress: String?
    public var bootID: String?
    public var heartbeats: Int64
    public var lastSeen: Millis?
    public var intervalMs: Int64?
    public var timeoutMs: Int64?
    public var agentRestarted: Bool?
    public var rttMs: Double?
}

/// A `transitions` row.
public struct StoredTransition: Sendable, Equatable {
    public var id: Int64
    public var agentID: String
    public var from: String?
    public var to: String
    public var reason: String
    public var effectiveAt: Millis
    public var detectedAt: Millis
    public var sessionID: Int64?
}

/// What the store found and repaired when a server run started.
public struct RunStart: Sendable {
    public var runID: Int64
    /// The previous run ended without recording its stop.
    public var recoveredCrash: Bool
    /// Transitions written by the repair (agents moved to `unknown`).
    public var repairTransitions: [StoredTransition]
    public var nextTransitionID: Int64
    public var nextSessionID: Int64
    /// Every known agent, after the repair.
    public var agents: [StoredAgent]
}

/// Filters of `GET /v1/agents`.
public struct AgentQuery: Sendable, Equatable {
    public var state: PresenceState?
    public var labels: [(String, String)]
    public var idPrefix: String?
    /// Return agents whose id sorts after this one (the cursor).
    public var after: String?
    public var limit: Int

    public init(state: PresenceState? = nil, labels: [(String, String)] = [], idPrefix: String? = nil, after: String? = nil, limit: Int = 100) {
        self.state = state
        self.labels = labels
        self.idPrefix = idPrefix
        self.after = after
        self.limit = limit
    }

    public static func == (a: AgentQuery, b: AgentQuery) -> Bool {
        a.state == b.state && a.labels.map { $0.0 + "=" + $0.1 } == b.labels.map { $0.0 + "=" + $0.1 } && a.idPrefix == b.idPrefix
            && a.after == b.after && a.limit == b.limit
    }
}

/// The one interface between Rollcall and its history database. Nothing outside
/// `RollcallStore` speaks SQL; a PostgreSQL implementation would sit behind the same protocol.
public protocol HistoryStore: Sendable {
    /// Records a new server run, repairing what a previous crash or stop left open.
    func startRun(now: Millis, pid: Int32, version: String) throws -> RunStart
    /// Writes events in one transaction, in order; `aliveAt` checkpoints the run.
    func write(_ events: [HistoryEvent], runID: Int64, aliveAt: Millis) throws
    /// Records a graceful stop.
    func finishRun(_ runID: Int64, now: Millis) throws

    func agents(_ query: AgentQuery) throws -> [StoredAgent]
    func agent(_ id: String) throws -> StoredAgent?
    func transitions(agent: String?, after: Int64, limit: Int) throws -> [StoredTransition]
    /// One agent's transitions whose effective time is at or after `effectiveFrom`: oldest first
    /// after `after`, or, with `before`, newest first below it.
    func transitions(agent: String, after: Int64, before: Int64?, effectiveFrom: Millis, limit: Int) throws -> [StoredTransition]
    /// Uptime and flaps between `from` and `now` for every agent whose id is in `first...last`.
    func fleetStats(first: String, last: String, from: Millis, now: Millis) throws -> [String: FleetStats]
    func sessions(agent: String, before: Int64?, limit: Int) throws -> [StoredSession]
    /// Milliseconds per state between `from` and `to`, open intervals counting up to `now`.
    func uptime(agent: String, from: Millis, to: Millis, now: Millis) throws -> Uptime
    /// Rows of `uptime_daily` for one agent, oldest first, from `fromDay` (`YYYY-MM-DD`).
    func uptimeDaily(agent: String, fromDay: String) throws -> [UptimeDay]
    /// Registers an agent with a token hash; `false` when the id already has a token.
    func register(agent: String, tokenHash: String, labels: [String: String], now: Millis) throws -> Bool
    /// Forgets an agent's token and disables it (its history stays).
    func revoke(agent: String) throws

    /// Deletes history older than `cutoff`, keeping every invariant: each agent's first remaining
    /// interval starts at the cutoff.
    func prune(before cutoff: Millis) throws -> PruneReport
}

/// Time per state over a window.
public struct Uptime: Sendable, Equatable {
    public var onlineMs: Int64 = 0
    public var suspectMs: Int64 = 0
    public var offlineMs: Int64 = 0
    public var unknownMs: Int64 = 0

    public init() {}

    /// (online + suspect) / (online + suspect + offline), `nil` when nothing was observed.
    public var ratio: Double? {
        let observed = onlineMs + suspectMs + offlineMs
        return observed == 0 ? nil : Double(onlineMs + suspectMs) / Double(observed)
    }
}

/// An agent's presence over a window, for fleet listings.
public struct FleetStats: Sendable, Equatable {
    public var uptime = Uptime()
    /// Times the agent left `online` for `suspect` or `offline` within the window.
    public var flaps = 0

    public init(uptime: Uptime = Uptime(), flaps: Int = 0) {
        self.uptime = uptime
        self.flaps = flaps
    }
}

/// One `uptime_daily` row.
public struct UptimeDay: Sendable, Equatable {
    public var day: String
    public var uptime: Uptime
    public var ratio: Double?
}

public struct PruneReport: Sendable, Equatable {
    public var transitions: Int
    public var sessions: Int
    public var serverRuns: Int

    public init(transitions: Int, sessions: Int, serverRuns: Int) {
        self.transitions = transitions
        self.sessions = sessions
        self.serverRuns = serverRuns
    }
}
