import RollcallCore

/// What `rollcall-load` simulates.
public struct LoadConfiguration: Sendable {
    public enum Scenario: String, Sendable, CaseIterable {
        /// Every agent connects (at `rampPerSecond`) and beats for the duration.
        case steady
        /// Agents keep leaving (bye) and coming back.
        case churn
        /// After the ramp and a settle period, `stormCount` agents drop their TCP connections at once.
        case storm
        /// Agents reconnect with backoff whenever the server goes away (restart the server under them).
        case herd
        /// After the settle period, `stormCount` agents stop beating with their sockets open, so the
        /// server must detect them by deadline (detection latency).
        case silence
    }

    public var host: String = "127.0.0.1"
    public var port: Int = 7777
    /// Other nodes' ports (several nodes on PostgreSQL): an agent whose reconnect to `port` failed
    /// tries these, spread by its index, as a balancer would send it elsewhere. (A real balancer
    /// cannot stand in here: it would need two sockets per agent in one process.)
    public var fallbackPorts: [Int] = []
    /// `host:port` for the `Host` header, an IPv6 literal in brackets.
    public var authority: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    public var agents: Int = 1000
    public var intervalMs: Int64 = 5000
    public var rampPerSecond: Int = 2000
    public var binary: Bool = false
    /// Flood mode: `window` heartbeats in flight per connection, the next sent as each ack returns.
    public var flood: Bool = false
    public var window: Int = 8
    public var durationSeconds: Double = 30
    /// Local source addresses to spread connections over (each has ~28k ephemeral ports).
    public var sourceAddresses: [String] = ["127.0.0.1"]
    public var scenario: Scenario = .steady
    public var stormCount: Int = 0
    /// Seconds after the ramp before the storm.
    public var settleSeconds: Double = 5
    /// Storm scenario: drop at this wall-clock time (Unix ms) instead of after `settleSeconds`, so
    /// two load processes (the victims, and the survivors with `stormCount` 0) time the same moment.
    public var stormAtUnixMs: Double?
    public var idPrefix: String = "load"
    /// `/v1/watch` streams to open after the ramp; their delivery latency is reported.
    public var watchers: Int = 0
    /// Churn: the share of the fleet that leaves (and returns) each second.
    public var churnPerSecond: Double = 0.01
    public var token: String?

    public init() {}

    /// `127.0.0.2-127.0.0.40` → every address in the range; loopback only.
    public static func parseSources(_ text: String) -> [String]? {
        if text == "::1" { return ["::1"] }
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        /// The four numbers of a dotted IPv4 loopback address, strictly (no empty or extra parts).
        func octets(_ s: String) -> [Int]? {
            let fields = s.split(separator: ".", omittingEmptySubsequences: false)
            let o = fields.compactMap { $0.count <= 3 && $0.allSatisfy(\.isASCII) ? Int($0) : nil }
            return fields.count == 4 && o.count == 4 && o.allSatisfy({ (0...255).contains($0) }) && o[0] == 127 ? o : nil
        }
        guard let firstText = parts.first, let first = octets(firstText) else { return nil }
        guard parts.count == 2 else { return [firstText] }
        guard let last = octets(parts[1]), last[1] == first[1], last[2] == first[2], last[3] >= first[3] else { return nil }
        return (first[3]...last[3]).map { "127.\(first[1]).\(first[2]).\($0)" }
    }

    /// Whether `host` is a loopback address the load generator may target: an IPv4 literal in
    /// 127.0.0.0/8, `::1` or `localhost` (never a name that could resolve elsewhere).
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || parseSources(host)?.count == 1 && !host.contains(":")
    }
}
