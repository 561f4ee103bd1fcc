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

extension CloseCode {
    /// The code to answer a peer's close frame with: its own code when an endpoint may send it
    /// (RFC 6455 §7.4), otherwise `nil` (answer 1000). 1005, 1006 and 1015 only ever describe a
    /// close locally and must never be sent; 1004 and everything below 1000 or in 1016…2999 is
    /// reserved or undefined.
    public static func echoable(_ code: UInt16) -> UInt16? {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: code
        default: nil
        }
    }
}

extension CloseCode {
    /// `reason` as a close frame carries it: at most `limit` bytes of UTF-8 (a control frame's
    /// payload is at most 125 bytes, two of them the code), cut at a character boundary so the
    /// text stays valid and never grows back past the limit.
    public static func reasonBytes(_ reason: String, limit: Int = 123) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(min(limit, reason.utf8.count))
        for scalar in reason.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            guard out.count + bytes.count <= limit else { break }
            out += bytes
        }
        return out
    }
}
