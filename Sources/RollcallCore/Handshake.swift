/// A validated `GET /v1/agent` request (protocol §3.1).
public struct HandshakeRequest: Sendable, Equatable {
    public var agentID: AgentID
    public var requestedIntervalMs: Int64?
    public var bootID: String?
    /// The bearer token, when the request carried one.
    public var token: String?
    /// The client listed subprotocol `rollcall.v1`.
    public var wantsSubprotocol: Bool

    public static let subprotocol = "rollcall.v1"
    public static let path = "/v1/agent"

    public init(agentID: AgentID, requestedIntervalMs: Int64? = nil, bootID: String? = nil, token: String? = nil, wantsSubprotocol: Bool = false) {
        self.agentID = agentID
        self.requestedIntervalMs = requestedIntervalMs
        self.bootID = bootID
        self.token = token
        self.wantsSubprotocol = wantsSubprotocol
    }

    /// Validates the parts of a handshake that need no server state. One function serves both the
    /// upgrade path and the plain-HTTP answer, so a refused upgrade and a plain GET say the same.
    public static func parse(uri: String, authorization: String?, subprotocols: String?) -> Result<HandshakeRequest, Refusal> {
        let (_, queryItems) = QueryString.split(uri: uri)
        guard let query = queryItems else {
            return .failure(.badRequest("bad_parameter", "the query string has a malformed percent escape"))
        }
        var id: String?
        var interval: Int64?
        var boot: String?
        for (name, value) in query {
            switch name {
            case "id": id = value
            case "interval_ms":
                guard let v = Int64(value), v > 0 else {
                    return .failure(.badRequest("bad_parameter", "interval_ms must be a positive integer of milliseconds, got '\(value.prefix(32))'"))
                }
                interval = v
            case "boot":
                guard !value.isEmpty, value.utf8.count <= 128, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    return .failure(.badRequest("bad_parameter", "boot must be 1-128 printable ASCII characters"))
                }
                boot = value
            default: continue  // unknown parameters are ignored, like unknown message fields
            }
        }
        guard let rawID = id else {
            return .failure(.badRequest("missing_id", "the query parameter 'id' is required, e.g. /v1/agent?id=web-01"))
        }
        if let problem = AgentID.validationError(rawID) {
            return .failure(.badRequest("bad_id", problem))
        }
        var token: String?
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { token = String(parts[1]).trimmingSpaces() }
        }
        let wants = subprotocols?.split(separator: ",").contains { $0.trimmingSpaces() == subprotocol } ?? false
        return .success(
            HandshakeRequest(agentID: AgentID(rawID)!, requestedIntervalMs: interval, bootID: boot, token: token, wantsSubprotocol: wants))
    }
}

/// A refusal before the upgrade: an HTTP status and the JSON error body of §3.1.
public struct Refusal: Error, Sendable, Equatable {
    public var status: Int
    /// Machine-readable code, the `error` field of the body.
    public var code: String
    /// A human sentence, the `message` field.
    public var message: String
    /// Seconds for a `Retry-After` header (429, 503).
    public var retryAfter: Int?

    public init(status: Int, code: String, message: String, retryAfter: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
    }

    public static func badRequest(_ code: String, _ message: String) -> Refusal { .init(status: 400, code: code, message: message) }

    /// The JSON body `{"error":…,"message":…}`.
    public var body: String {
        var out = "{\"error\":"
        JSONValue.writeString(code, to: &out)
        out += ",\"message\":"
        JSONValue.writeString(message, to: &out)
        return out + "}"
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }
}
