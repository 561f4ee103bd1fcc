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
