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
///
/// A value type over the string rather than a closed enum, so one ``Transition`` type can carry
/// any reason a history or a newer server holds (a client shows it as text) while the server
/// only ever produces the ones below.
public struct TransitionReason: RawRepresentable, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    public static let connected = Self(rawValue: "connected")
    public static let missedHeartbeat = Self(rawValue: "missed_heartbeat")
    public static let disconnected = Self(rawValue: "disconnected")
    public static let heartbeat = Self(rawValue: "heartbeat")
    public static let reconnected = Self(rawValue: "reconnected")
    public static let timeout = Self(rawValue: "timeout")
    public static let goodbye = Self(rawValue: "goodbye")
    public static let kicked = Self(rawValue: "kicked")
    public static let removed = Self(rawValue: "removed")
    public static let serverStopped = Self(rawValue: "server_stopped")
    public static let serverCrashed = Self(rawValue: "server_crashed")

    /// The reasons this server writes (spec §4).
    public static let allCases: [TransitionReason] = [
        .connected, .missedHeartbeat, .disconnected, .heartbeat, .reconnected, .timeout, .goodbye, .kicked, .removed, .serverStopped,
        .serverCrashed,
    ]

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// Milliseconds since the Unix epoch on the server's monotonic timeline.
///
/// The server anchors its monotonic clock to the wall clock once at start, so these values are
/// both comparable as durations (they never jump) and storable as `_ms` columns.
public typealias Millis = Int64

/// One change of an agent's presence, as written to the `transitions` table and the watch stream.
public struct Transition: Sendable, Hashable {
    /// The event cursor, increasing in commit order. The history numbers a transition when it
    /// commits it; the engine's own number is provisional and is never shown to anyone.
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
