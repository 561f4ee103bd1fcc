/// What the shell around the liveness engine must carry out.
public enum LivenessEffect: Sendable, Equatable {
    /// Record (and broadcast) a presence change.
    case transition(Transition)
    /// A connection was accepted: insert its `sessions` row.
    case sessionOpened(SessionStart)
    /// A connection ended (or was taken over): close its `sessions` row.
    case sessionClosed(SessionEnd)
    /// Close this session's socket with the given code and reason.
    case close(sessionID: Int64, code: CloseCode, reason: String)
}

public struct SessionStart: Sendable, Equatable {
    public var id: Int64
    public var agentID: AgentID
    public var startedAt: Millis
    public var remoteAddress: String?
    public var bootID: String?
    public var intervalMs: Int64
    public var timeoutMs: Int64
    /// `true` when the boot id differs from the previous session's (the agent restarted),
    /// `false` when it is the same (a network blip), `nil` when unknown.
    public var agentRestarted: Bool?

    public init(
        id: Int64, agentID: AgentID, startedAt: Millis, remoteAddress: String?, bootID: String?, intervalMs: Int64,
        timeoutMs: Int64, agentRestarted: Bool?
    ) {
        self.id = id
        self.agentID = agentID
        self.startedAt = startedAt
        self.remoteAddress = remoteAddress
        self.bootID = bootID
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.agentRestarted = agentRestarted
    }
}

/// Why a session ended; raw values are the `sessions.end_reason` strings.
public enum SessionEndReason: String, Sendable, Hashable, CaseIterable {
    case goodbye
    case disconnected
    case timeout
    case superseded
    case kicked
    case removed
    case protocolError = "protocol_error"
    case serverStopped = "server_stopped"
    case serverCrashed = "server_crashed"
}

public struct SessionEnd: Sendable, Equatable {
    public var id: Int64
    public var agentID: AgentID
    public var endedAt: Millis
    public var reason: SessionEndReason
    public var closeCode: Int?
    public var heartbeats: Int64
    public var lastSeen: Millis
    public var rttMs: Double?

    public init(
        id: Int64, agentID: AgentID, endedAt: Millis, reason: SessionEndReason, closeCode: Int?, heartbeats: Int64,
        lastSeen: Millis, rttMs: Double? = nil
    ) {
        self.rttMs = rttMs
        self.id = id
        self.agentID = agentID
        self.endedAt = endedAt
        self.reason = reason
        self.closeCode = closeCode
        self.heartbeats = heartbeats
        self.lastSeen = lastSeen
    }
}

/// How a connection ended, as the gateway saw it.
public enum DisconnectKind: Sendable, Equatable {
    /// `bye`, or close 1000/1001 from the agent.
    case goodbye(closeCode: Int?)
    /// TCP dropped, 1006, or any other close the agent sent.
    case abnormal(closeCode: Int?)
    /// The server closed it for a protocol violation (1007/1008/1009).
    case protocolViolation(CloseCode)
    case kicked
    case removed
    /// The server is stopping gracefully (close 1001).
    case serverStopping
}
