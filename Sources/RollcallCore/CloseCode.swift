/// WebSocket close codes of protocol §3.3.
public enum CloseCode: UInt16, Sendable, Hashable {
    case normal = 1000
    case goingAway = 1001
    case invalidPayload = 1007
    case policyViolation = 1008
    case messageTooBig = 1009
    case heartbeatTimeout = 4000
    case superseded = 4001
    case kicked = 4002
    case removed = 4003
}
