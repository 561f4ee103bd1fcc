import RollcallCore

/// Parsing of the server's JSON into the dashboard's model: pure, so the tests feed it the
/// documents the server writes.
public enum Messages {
    public enum Watch: Equatable, Sendable {
        case snapshot([AgentRow], cursor: Int64)
        case transition(Transition)
    }

    /// One `/v1/watch` text frame; `nil` for a message the dashboard does not know.
    public static func watch(_ value: JSONValue) -> Watch? {
        switch value["type"]?.stringValue {
        case "snapshot":
            guard let cursor = value["cursor"]?.int64Value, case .array(let items)? = value["agents"] else { return nil }
            return .snapshot(items.compactMap(agentRow), cursor: cursor)
        case "transition":
            return transition(value).map(Watch.transition)
        default:
            return nil
        }
    }

    /// The one JSON form of a transition (``Transition/init(json:)``); a reason this dashboard
    /// does not know is kept as text.
    public static func transition(_ v: JSONValue) -> Transition? { Transition(json: v) }

    /// An agent of the snapshot or of `/v1/agents` (with `window`, it carries flaps and uptime).
    public static func agentRow(_ v: JSONValue) -> AgentRow? {
        guard let id = v["id"]?.stringValue, let state = v["state"]?.stringValue.flatMap(PresenceState.init(rawValue:)),
            let since = v["since"]?.stringValue.flatMap(Timestamp.parse)
        else { return nil }
        return AgentRow(
            id: id, state: state, since: since, lastSeen: v["last_seen"]?.stringValue.flatMap(Timestamp.parse),
            rttMs: v["rtt_ms"]?.doubleValue, flaps: v["flaps"]?.int64Value.map { Int($0) }, uptime: v["uptime_ratio"]?.doubleValue)
    }

    /// `/v1/agents/{id}` plus its transitions pages (in either order) and sessions page, as the
    /// detail view shows them.
    public static func detail(
        id: String, agent: JSONValue?, transitions: [JSONValue], sessions: JSONValue?, windowStart: Millis, loadedAt: Millis
    ) -> AgentDetail {
        var d = AgentDetail(id: id)
        d.windowStart = windowStart
        d.loadedAt = loadedAt
        if let agent {
            if case .object(let labels)? = agent["labels"] { d.labels = labels.compactMap { k, v in v.stringValue.map { (k, $0) } } }
            d.hostname = agent["hostname"]?.stringValue
            d.agentVersion = agent["agent_version"]?.stringValue
            d.intervalMs = agent["interval_ms"]?.int64Value
            d.timeoutMs = agent["timeout_ms"]?.int64Value
            d.offlineAt = agent["offline_at"]?.stringValue.flatMap(Timestamp.parse)
        }
        for page in transitions {
            if case .array(let items)? = page["transitions"] { d.transitions += items.compactMap(transition) }
        }
        // Pages may come newest first; the detail keeps them oldest first.
        d.transitions.sort { $0.id < $1.id }
        if case .array(let items)? = sessions?["sessions"] {
            d.sessions = items.compactMap { s in
                guard let sid = s["id"]?.int64Value, let started = s["started_at"]?.stringValue.flatMap(Timestamp.parse) else { return nil }
                return AgentDetail.Session(
                    id: sid, startedAt: started, endedAt: s["ended_at"]?.stringValue.flatMap(Timestamp.parse),
                    endReason: s["end_reason"]?.stringValue, remoteAddress: s["remote_addr"]?.stringValue,
                    heartbeats: s["heartbeats"]?.int64Value ?? 0)
            }
        }
        return d
    }
}

extension JSONValue {
    /// The number, when this is one.
    public var doubleValue: Double? {
        if case .number(let n) = self { return n }
        return nil
    }
}
