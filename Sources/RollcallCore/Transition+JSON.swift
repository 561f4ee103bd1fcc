/// The one JSON form of a transition, shared by `/v1/events`, `/v1/agents/{id}/transitions` and
/// the watch stream, so a client parses the same object wherever it reads one.
extension Transition {
    /// The members in their documented order; the watch stream puts `"type":"transition"` first.
    public func jsonMembers() -> [(String, JSONValue)] {
        [
            ("id", .integer(id)), ("agent_id", .string(agentID.rawValue)), ("from", from.map { .string($0.rawValue) } ?? .null),
            ("to", .string(to.rawValue)), ("reason", .string(reason.rawValue)), ("effective_at", .string(Timestamp.rfc3339(effectiveAt))),
            ("detected_at", .string(Timestamp.rfc3339(detectedAt))), ("session_id", sessionID.map { .integer($0) } ?? .null),
        ]
    }

    /// The API's object.
    public var json: JSONValue { .object(jsonMembers()) }

    /// One watch-stream message.
    public var watchMessage: String { JSONValue.object([("type", .string("transition"))] + jsonMembers()).serialized() }
}

extension Transition {
    /// Reads the object ``jsonMembers()`` writes (an API item or a watch-stream message);
    /// `nil` when a required member is missing or malformed.
    public init?(json v: JSONValue) {
        guard let id = v["id"]?.int64Value, let agent = v["agent_id"]?.stringValue.flatMap(AgentID.init),
            let to = v["to"]?.stringValue.flatMap(PresenceState.init(rawValue:)),
            let effective = v["effective_at"]?.stringValue.flatMap(Timestamp.parse)
        else { return nil }
        self.init(
            id: id, agentID: agent, from: v["from"]?.stringValue.flatMap(PresenceState.init(rawValue:)), to: to,
            reason: TransitionReason(rawValue: v["reason"]?.stringValue ?? ""), effectiveAt: effective,
            detectedAt: v["detected_at"]?.stringValue.flatMap(Timestamp.parse) ?? effective, sessionID: v["session_id"]?.int64Value)
    }
}
