/// Why the server refused a handshake: its status, the JSON error body's `error` and `message`,
/// and `Retry-After`.
public struct HandshakeRefusal: Sendable, Equatable, Error {
    public var status: Int
    public var code: String?
    public var message: String?
    public var retryAfterSeconds: Int?
}

/// A reason for the agent to stop trying, with the exit code a service manager can act on.
public struct AgentStop: Error, Sendable, CustomStringConvertible {
    /// 77 (EX_NOPERM): the token was refused or revoked. 78 (EX_CONFIG): the id or parameters were refused.
    public var exitCode: Int32
    public var message: String
    public var description: String { message }
}
