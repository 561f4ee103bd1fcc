import RollcallCore

/// One agent as the dashboard shows it.
public struct AgentRow: Equatable, Sendable {
    public var id: String
    public var state: PresenceState
    public var since: Millis
    public var lastSeen: Millis?
    public var rttMs: Double?
    /// Times it left `online` for `suspect` or `offline` in the last 24 h; `nil` until the first
    /// statistics page arrives.
    public var flaps: Int?
    /// (online + suspect) / observed time over the last 24 h.
    public var uptime: Double?

    public init(id: String, state: PresenceState, since: Millis, lastSeen: Millis? = nil, rttMs: Double? = nil, flaps: Int? = nil, uptime: Double? = nil) {
        self.id = id
        self.state = state
        self.since = since
        self.lastSeen = lastSeen
        self.rttMs = rttMs
        self.flaps = flaps
        self.uptime = uptime
    }
}

/// The dashboard's copy of the fleet: state and `since` from the watch stream (authoritative, in
/// transition-id order), the slower columns from periodic `/v1/agents?window=24h` pages.
public struct Fleet: Sendable {
    public private(set) var rows: [AgentRow] = []
    private var index: [String: Int] = [:]
    /// The last transition applied: resume the watch stream after it.
    public private(set) var cursor: Int64 = 0
    public private(set) var counts: [PresenceState: Int] = [:]
    /// Bumped by every change that can move rows: sorted views are rebuilt when it moves.
    public private(set) var version = 0
    /// Longest id seen, for the width of the id column.
    public private(set) var longestID = 0

    public init() {}

    public var count: Int { rows.count }

    public func row(_ id: String) -> AgentRow? { index[id].map { rows[$0] } }

    /// Replaces everything with a snapshot valid at `cursor`; statistics already known are kept.
    public mutating func applySnapshot(_ agents: [AgentRow], cursor: Int64) {
        let previous = index.isEmpty ? [:] : Dictionary(uniqueKeysWithValues: rows.map { ($0.id, $0) })
        rows = agents.map { a in
            var a = a
            if let old = previous[a.id] {
                a.flaps = a.flaps ?? old.flaps
                a.uptime = a.uptime ?? old.uptime
                a.rttMs = a.rttMs ?? old.rttMs
            }
            return a
        }
        index = Dictionary(rows.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.cursor = cursor
        counts = [:]
        longestID = 0
        for r in rows {
            counts[r.state, default: 0] += 1
            longestID = max(longestID, r.id.utf8.count)
        }
        version += 1
    }

    /// Applies one transition; returns `false` for one already applied (ids at or below the cursor).
    @discardableResult
    public mutating func apply(_ t: Transition) -> Bool {
        guard t.id > cursor else { return false }
        cursor = t.id
        if let i = index[t.agentID.rawValue] {
            counts[rows[i].state, default: 0] -= 1
            rows[i].state = t.to
            rows[i].since = t.effectiveAt
            // Coming online is a sign of life: "last seen" is never older than "online since".
            if t.to == .online { rows[i].lastSeen = max(rows[i].lastSeen ?? t.effectiveAt, t.effectiveAt) }
            if t.from == .online, t.to == .suspect || t.to == .offline, let flaps = rows[i].flaps { rows[i].flaps = flaps + 1 }
        } else {
            index[t.agentID.rawValue] = rows.count
            rows.append(AgentRow(id: t.agentID.rawValue, state: t.to, since: t.effectiveAt, lastSeen: t.effectiveAt, flaps: 0))
            longestID = max(longestID, t.agentID.rawValue.utf8.count)
        }
        counts[t.to, default: 0] += 1
        version += 1
        return true
    }

    /// Fills the statistics columns from one page of `/v1/agents?window=24h`. State and `since` are
    /// left alone: the watch stream owns them, and a page can be older than the last transition.
    public mutating func applyStatistics(_ page: [AgentRow]) {
        var changed = false
        for s in page {
            guard let i = index[s.id] else { continue }
            if rows[i].lastSeen != s.lastSeen || rows[i].rttMs != s.rttMs || rows[i].flaps != s.flaps || rows[i].uptime != s.uptime {
                if let seen = s.lastSeen { rows[i].lastSeen = max(seen, rows[i].lastSeen ?? seen) }
                rows[i].rttMs = s.rttMs
                rows[i].flaps = s.flaps
                rows[i].uptime = s.uptime
                changed = true
            }
        }
        if changed { version += 1 }
    }
}
