/// An agent's presence as the server sees it (spec §4).
///
/// Legal transitions, and the reason each carries:
/// - (new), `offline`, `unknown` → `online`: `connected`
/// - `online` → `suspect`: `missed_heartbeat` (a beat overdue by interval × slack) or `disconnected`
///   (abnormal close)
/// - `suspect` → `online`: `heartbeat` or `reconnected`
/// - `suspect` → `offline`: `timeout` (no sign of life for `timeout_ms`)
/// - any → `offline`: `goodbye`, `kicked`, `removed`
/// - `online`/`suspect` → `unknown`: `server_stopped` or `server_crashed`
/// - `unknown` → `offline`: `timeout` (the agent did not return within the warm-up)
public enum PresenceState: String, Sendable, Hashable, CaseIterable, Codable {
    case online
    case suspect
    case offline
    case unknown
}

/// Why a transition happened; the raw values are the SQL contract's `reason` strings.
public enum TransitionReason: String, Sendable, Hashable, CaseIterable, Codable {
    case connected
    case missedHeartbeat = "missed_heartbeat"
    case disconnected
    case heartbeat
    case reconnected
    case timeout
    case goodbye
    case kicked
    case removed
    case serverStopped = "server_stopped"
    case serverCrashed = "server_crashed"
}

/// Milliseconds since the Unix epoch on the server's monotonic timeline.
///
/// The server anchors its monotonic clock to the wall clock once at start, so these values are
/// both comparable as durations (they never jump) and storable as `_ms` columns.
public typealias Millis = Int64

/// One change of an agent's presence, as written to the `transitions` table and the watch stream.
public struct Transition: Sendable, Hashable {
    /// The event cursor: increasing, gap-free within one server run.
    public var id: Int64
    public var agentID: AgentID
    /// `nil` for an agent's first transition.
    public var from: PresenceState?
    public var to: PresenceState
    public var reason: TransitionReason
    /// When it became true: the deadline for a timeout, the close for a disconnect.
    public var effectiveAt: Millis
    /// When the server noticed.
    public var detectedAt: Millis
    public var sessionID: Int64?

    public init(
        id: Int64, agentID: AgentID, from: PresenceState?, to: PresenceState, reason: TransitionReason,
        effectiveAt: Millis, detectedAt: Millis, sessionID: Int64?
    ) {
        self.id = id
        self.agentID = agentID
        self.from = from
        self.to = to
        self.reason = reason
        self.effectiveAt = effectiveAt
        self.detectedAt = detectedAt
        self.sessionID = sessionID
    }
}
