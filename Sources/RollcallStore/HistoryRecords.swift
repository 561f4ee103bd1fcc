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

    public init(
        id: String, state: PresenceState, stateSince: Millis, firstSeen: Millis, lastSeen: Millis?, labels: String, hostname: String?,
        agentVersion: String?, metadata: String?, status: String?, intervalMs: Int64?, timeoutMs: Int64?, tokenHash: String?, disabled: Bool,
        lastBootID: String?
    ) {
        self.id = id
        self.state = state
        self.stateSince = stateSince
        self.firstSeen = firstSeen
        self.lastSeen = lastSeen
        self.labels = labels
        self.hostname = hostname
        self.agentVersion = agentVersion
        self.metadata = metadata
        self.status = status
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.tokenHash = tokenHash
        self.disabled = disabled
        self.lastBootID = lastBootID
    }
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

    public init(
        id: Int64, agentID: String, startedAt: Millis, endedAt: Millis?, endReason: String?, closeCode: Int?, remoteAddress: String?,
        bootID: String?, heartbeats: Int64, lastSeen: Millis?, intervalMs: Int64?, timeoutMs: Int64?, agentRestarted: Bool?, rttMs: Double?
    ) {
        self.id = id
        self.agentID = agentID
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.endReason = endReason
        self.closeCode = closeCode
        self.remoteAddress = remoteAddress
        self.bootID = bootID
        self.heartbeats = heartbeats
        self.lastSeen = lastSeen
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.agentRestarted = agentRestarted
        self.rttMs = rttMs
    }
}

/// What the store found and repaired when a server run started.
public struct RunStart: Sendable {
    public var runID: Int64
    /// The previous run ended without recording its stop.
    public var recoveredCrash: Bool
    /// Transitions written by the repair (agents moved to `unknown`).
    public var repairTransitions: [Transition]
    public var nextTransitionID: Int64
    public var nextSessionID: Int64
    /// Every known agent, after the repair.
    public var agents: [StoredAgent]
    /// Agents other nodes own (several nodes on PostgreSQL): known here, timed there.
    public var foreignAgents: Set<String> = []
    /// The session ids this node may hand out, when they are reserved in blocks (several
    /// nodes); `nil`: every id from `nextSessionID` on.
    public var sessionIDs: Range<Int64>?
}

/// What a node learned from the shared database in one round of upkeep (SPEC §10).
public struct NodeUpkeep: Sendable {
    /// This node's lease had lapsed: another node may have taken its agents over. It must drop
    /// every agent it holds; it has rejoined with a fresh lease.
    public var leaseLost = false
    /// Agents of nodes whose lease lapsed, now this node's: their state after the takeover.
    public var adopted: [(id: AgentID, state: PresenceState, since: Millis, timeoutMs: Int64?)] = []
    /// The nodes taken over.
    public var nodesTakenOver: [String] = []
    /// A new block of session ids, when one was asked for.
    public var sessionIDs: Range<Int64>?
    /// The adopted agents' new epochs, for the store's own book.
    var adoptedEpochs: [String: Int64] = [:]

    public init() {}
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
///
/// The calls are synchronous and may block: the server makes them on threads of their own
/// (never on the threads that time agents).
public protocol HistoryStore: Sendable {
    /// Records a new server run, repairing what a previous crash or stop left open.
    func startRun(now: Millis, pid: Int32, version: String) throws -> RunStart
    /// Writes events in one transaction, in order; `aliveAt` checkpoints the run. Returns the
    /// transitions as committed: their ids are the database's (the next free ones, in commit
    /// order), which is what anyone may be shown from now on.
    @discardableResult
    func write(_ events: [HistoryEvent], runID: Int64, aliveAt: Millis) throws -> [Transition]
    /// Records a graceful stop.
    func finishRun(_ runID: Int64, now: Millis) throws

    func agents(_ query: AgentQuery) throws -> [StoredAgent]
    func agent(_ id: String) throws -> StoredAgent?
    func transitions(agent: String?, after: Int64, limit: Int) throws -> [Transition]
    /// One agent's transitions whose effective time is at or after `effectiveFrom`: oldest first
    /// after `after`, or, with `before`, newest first between `after` and `before`.
    func transitions(agent: String, after: Int64, before: Int64?, effectiveFrom: Millis, limit: Int) throws -> [Transition]
    /// Uptime and flaps between `from` and `now` for every agent whose id is in `first...last`.
    func fleetStats(first: String, last: String, from: Millis, now: Millis) throws -> [String: FleetStats]
    func sessions(agent: String, before: Int64?, limit: Int) throws -> [StoredSession]
    /// Milliseconds per state between `from` and `to`, open intervals counting up to `now`.
    func uptime(agent: String, from: Millis, to: Millis, now: Millis) throws -> Uptime
    /// What `uptime_daily` says of one agent, oldest day first, from `fromDay` (`YYYY-MM-DD`),
    /// the open interval counting up to `now`. Computed from that agent's intervals alone (the
    /// view's recursive split cannot be filtered by agent before it runs).
    func uptimeDaily(agent: String, fromDay: String, now: Millis) throws -> [UptimeDay]
    /// Registers an agent with a token hash; `false` when the id already has a token.
    func register(agent: String, tokenHash: String, labels: [String: String], now: Millis) throws -> Bool
    /// Forgets an agent's token and disables it (its history stays).
    func revoke(agent: String) throws

    /// Deletes history older than `cutoff`, keeping every invariant: each agent's first remaining
    /// interval starts at the cutoff.
    func prune(before cutoff: Millis) throws -> PruneReport

    // MARK: Several nodes (SPEC §10); one node on SQLite needs none of it

    /// Whether other nodes may write this history too (PostgreSQL).
    var isShared: Bool { get }
    /// Whether another node runs on this history now (its lease is fresh).
    func otherNodesRunning() throws -> Bool
    /// Renews this node's lease, takes over nodes whose lease lapsed, and reserves session ids
    /// when `needSessionIDs`. Called by the writer, between its batches.
    func upkeep(now: Millis, needSessionIDs: Bool) throws -> NodeUpkeep
    /// Agents this node must give up since the last call: another node took them over (its
    /// connection is newer), so their sockets here close with 4001.
    func takeRelinquished() -> [AgentID]
    /// The newest transition id another node announced, for the writer to read up to.
    var announcedTransitionID: Int64 { get }
    /// This node's lease was taken over: the writer must drop every agent, then call
    /// ``upkeep(now:needSessionIDs:)``, which rejoins.
    var leaseLost: Bool { get }
    /// Tells every node (this one included) of an operator's action, so that the agent's owner
    /// carries it out and every node reloads the agent's credential.
    func tellNodes(_ command: NodeCommand) throws
    /// The operators' actions other nodes announced since the last call.
    func takeCommands() -> [NodeCommand]
    /// Every agent with a token or disabled: (id, token hash, disabled). With several nodes each
    /// node reloads these now and then, so a registration or revocation whose `NOTIFY` it missed
    /// reaches it all the same.
    func credentials() throws -> [(id: String, tokenHash: String?, disabled: Bool)]
}

/// An operator's action that every node must hear of (several nodes only).
public enum NodeCommand: Sendable, Equatable {
    /// The agent's registration or token changed: reload its credential.
    case credentials(AgentID)
    /// End the agent's presence (its owner closes it with 4002).
    case kick(AgentID)
    /// The agent was removed (its owner closes it with 4003); its credential is gone.
    case remove(AgentID)

    var payload: String {
        switch self {
        case .credentials(let id): "c \(id.rawValue)"
        case .kick(let id): "k \(id.rawValue)"
        case .remove(let id): "r \(id.rawValue)"
        }
    }

    init?(payload: String) {
        let parts = payload.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, let id = AgentID(String(parts[1])) else { return nil }
        switch parts[0] {
        case "c": self = .credentials(id)
        case "k": self = .kick(id)
        case "r": self = .remove(id)
        default: return nil
        }
    }
}

extension HistoryStore {
    public var isShared: Bool { false }
    public func otherNodesRunning() throws -> Bool { false }
    public func upkeep(now: Millis, needSessionIDs: Bool) throws -> NodeUpkeep { NodeUpkeep() }
    public func takeRelinquished() -> [AgentID] { [] }
    public var announcedTransitionID: Int64 { 0 }
    public var leaseLost: Bool { false }
    public func tellNodes(_ command: NodeCommand) throws {}
    public func takeCommands() -> [NodeCommand] { [] }
    public func credentials() throws -> [(id: String, tokenHash: String?, disabled: Bool)] { [] }
}

/// Time per state over a window.
public struct Uptime: Sendable, Equatable {
    public var onlineMs: Int64 = 0
    public var suspectMs: Int64 = 0
    public var offlineMs: Int64 = 0
    public var unknownMs: Int64 = 0

    public init() {}

    /// Sets the milliseconds of the state named `state` (a row of the history); an unknown name
    /// changes nothing.
    public mutating func set(_ ms: Int64, forState state: String) {
        switch PresenceState(rawValue: state) {
        case .online: onlineMs = ms
        case .suspect: suspectMs = ms
        case .offline: offlineMs = ms
        case .unknown: unknownMs = ms
        case nil: break
        }
    }

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

    public init(day: String, uptime: Uptime, ratio: Double?) {
        self.day = day
        self.uptime = uptime
        self.ratio = ratio
    }

    static let dayMs: Int64 = 86_400_000

    /// Splits one agent's intervals into UTC days from `fromDayStart` on, exactly as the
    /// `uptime_daily` view does: one row per day that has any interval, states summed.
    static func split(_ intervals: [(state: PresenceState?, start: Millis, end: Millis)], fromDayStart: Millis) -> [UptimeDay] {
        var days: [Int64: Uptime] = [:]
        for interval in intervals {
            let start = max(interval.start, fromDayStart)
            guard interval.end > start, let state = interval.state else { continue }
            var day = start - ((start % dayMs) + dayMs) % dayMs
            while day < interval.end {
                let ms = min(interval.end, day + dayMs) - max(start, day)
                switch state {
                case .online: days[day, default: Uptime()].onlineMs += ms
                case .suspect: days[day, default: Uptime()].suspectMs += ms
                case .offline: days[day, default: Uptime()].offlineMs += ms
                case .unknown: days[day, default: Uptime()].unknownMs += ms
                }
                day += dayMs
            }
        }
        return days.sorted { $0.key < $1.key }.map { UptimeDay(day: Timestamp.day($0.key), uptime: $0.value, ratio: $0.value.ratio) }
    }
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
