/// An agent's identity: 1–128 characters of `A–Z a–z 0–9 . _ : -` (protocol §3.1).
///
/// Validation is byte-wise on the UTF-8 form, so it never allocates on the handshake path
/// beyond the `String` itself.
public struct AgentID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public static let maxLength = 128

    public let rawValue: String

    /// Returns `nil` when `rawValue` is not a valid agent id.
    public init?(_ rawValue: String) {
        guard Self.validationError(rawValue) == nil else { return nil }
        self.rawValue = rawValue
    }

    /// A sentence that says why `candidate` is not a valid agent id, or `nil` when it is.
    public static func validationError(_ candidate: String) -> String? {
        let utf8 = candidate.utf8
        if utf8.isEmpty { return "agent id must not be empty" }
        if utf8.count > maxLength { return "agent id must be at most \(maxLength) characters, got \(utf8.count)" }
        for byte in utf8 where !isAllowed(byte) {
            return "agent id may contain only A-Z a-z 0-9 . _ : - (found \(Self.describe(byte)))"
        }
        return nil
    }

    @inline(__always)
    static func isAllowed(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: ":"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    private static func describe(_ byte: UInt8) -> String {
        if byte >= 0x21 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16, uppercase: true)
    }

    public var description: String { rawValue }
    public static func < (lhs: AgentID, rhs: AgentID) -> Bool { lhs.rawValue < rhs.rawValue }
}
