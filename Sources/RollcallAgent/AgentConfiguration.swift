import RollcallCore
import RollcallTransport

/// How a `rollcall-agent` connects and beats.
public struct AgentConfiguration: Sendable {
    /// `ws://HOST:PORT` or `wss://HOST:PORT`; the path `/v1/agent` is added when missing.
    public var serverURL: String
    public var agentID: AgentID
    /// Requested interval; the server's grant (in `welcome`) is what the agent uses.
    public var requestedIntervalMs: Int64?
    /// Send the 9-byte binary heartbeat instead of JSON.
    public var binary: Bool = false
    public var labels: [String: String] = [:]
    public var token: String?
    public var hostname: String?
    public var agentVersion: String = "0.1.0"
    /// Drawn once per process start, so the server can tell a restart from a network blip.
    public var bootID: String
    /// First reconnect delay ceiling; doubles per failed attempt up to `maxBackoff`.
    /// PEM CA bundle to verify a `wss://` server against, instead of the system trust store.
    public var caFile: String?
    /// A file holding a small JSON object, sent as each heartbeat's `status` (read every beat).
    public var statusFile: String?
    /// Stop (exit 69) when the server could not be reached for this long; `nil` retries forever.
    public var giveUpAfter: Duration?
    /// With nothing from the server for this long the agent pings it, and after three times this
    /// long it drops the connection and reconnects: a server gone without a FIN is noticed.
    public var keepalive: Duration = .seconds(15)
    public var initialBackoff: Duration = .milliseconds(500)
    public var maxBackoff: Duration = .seconds(30)

    public init(serverURL: String, agentID: AgentID, bootID: String = AgentConfiguration.makeBootID()) {
        self.serverURL = serverURL
        self.agentID = agentID
        self.bootID = bootID
    }

    /// The handshake URL: the server's, with `/v1/agent` and `id`, `boot` and `interval_ms`.
    public func handshakeTarget() throws(ServerURL.Problem) -> ServerURL {
        let server = try ServerURL(parsing: serverURL, schemes: [.ws, .wss])
        let path = server.path.hasSuffix("/v1/agent") ? server.path : server.path + "/v1/agent"
        var query = "id=" + agentID.rawValue + "&boot=" + bootID
        if let interval = requestedIntervalMs { query += "&interval_ms=\(interval)" }
        return server.with(path: path, query: query)
    }

    /// ``handshakeTarget()`` as text, for messages.
    public var handshakeURL: String { (try? handshakeTarget())?.description ?? serverURL }

    public static func makeBootID() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() as UInt64, radix: 16) + String(generator.next() as UInt32, radix: 16)
    }

    /// A sentence saying what is wrong with the URL, or `nil`.
    public static func urlProblem(_ url: String) -> String? {
        do {
            _ = try ServerURL(parsing: url, schemes: [.ws, .wss])
            return nil
        } catch {
            return error.description
        }
    }
}

/// Capped exponential backoff with full jitter: a fleet that lost its server does not come back
/// as one thundering herd.
public struct Backoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    public private(set) var attempt = 0

    public init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The ceiling for the next delay: `min(maximum, initial × 2^attempt)`.
    public var ceiling: Duration {
        let factor = 1 << min(attempt, 20)
        let grown = initial * factor
        return grown > maximum ? maximum : grown
    }

    /// A uniformly random delay in `0...ceiling`, then the ceiling doubles.
    public mutating func nextDelay<G: RandomNumberGenerator>(using generator: inout G) -> Duration {
        let ceilingMs = max(1, Int64(ceiling.components.seconds * 1000 + ceiling.components.attoseconds / 1_000_000_000_000_000))
        attempt += 1
        return .milliseconds(Int64.random(in: 0...ceilingMs, using: &generator))
    }

    public mutating func reset() { attempt = 0 }
}
