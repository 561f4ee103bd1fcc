import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import RollcallCore
import Synchronization

/// Per-agent tokens: random, shown once, stored only as a SHA-256 hash, compared in constant time.
public enum AgentToken {
    /// A new token: `rc_` + 32 random bytes, base64url.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return "rc_" + Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Hex SHA-256, the form kept in `agents.token_hash`.
    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Equal-length comparison whose time does not depend on where the inputs differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }
}

/// What the gateway knows of registered agents' credentials.
public struct Credential: Sendable, Equatable {
    public var tokenHash: String?
    public var disabled: Bool

    public init(tokenHash: String?, disabled: Bool) {
        self.tokenHash = tokenHash
        self.disabled = disabled
    }
}

/// Limits on what one peer or the whole fleet may ask of the gateway.
public struct GatewayLimits: Sendable {
    /// Concurrent agent connections (beyond: 429).
    public var maxConnections: Int = 100_000
    /// New handshakes per second, server-wide (beyond: 429 with Retry-After).
    public var handshakesPerSecond: Double = 2_000
    public var handshakeBurst: Double = 4_000
    /// Messages per second one agent may send before it is closed (1008 heartbeat flood).
    public var messagesPerSecond: Double = 20
    public var messageBurst: Double = 40
    /// A connection that has not finished its HTTP handshake by then is closed.
    public var handshakeTimeout: Duration = .seconds(10)
    /// A peer that does not read what we send is closed after being unwritable this long.
    public var slowReaderGrace: Duration = .seconds(10)
    /// Unwritten history events beyond which new handshakes are refused (429) until it drains.
    public var maxHistoryBacklog: Int = 200_000

    public init() {}
}

/// A token bucket: `rate` tokens per second up to `burst`.
struct TokenBucket: Sendable {
    var rate: Double
    var burst: Double
    var tokens: Double
    var last: ContinuousClock.Instant

    init(rate: Double, burst: Double, now: ContinuousClock.Instant = .now) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now
    }

    mutating func take(now: ContinuousClock.Instant = .now) -> Bool {
        let elapsed = now - last
        last = now
        tokens = min(burst, tokens + rate * (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18))
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// Decides whether an agent handshake may proceed: the stateless checks of ``HandshakeRequest``,
/// then the server's state (stopping, capacity, rate, backlog) and credentials. One function
/// serves the upgrade path and the router, so both answer alike.
final class Admission: Sendable {
    let gateway: Gateway
    let configuration: ServerConfiguration
    private let bucket: Mutex<TokenBucket>

    init(gateway: Gateway, configuration: ServerConfiguration) {
        self.gateway = gateway
        self.configuration = configuration
        self.bucket = Mutex(TokenBucket(rate: configuration.limits.handshakesPerSecond, burst: configuration.limits.handshakeBurst))
    }

    func admit(uri: String, headers: HTTPHeaders, remote: SocketAddress?) -> Result<HandshakeRequest, Refusal> {
        admit(
            uri: uri, authorization: headers.first(name: "Authorization"),
            subprotocols: headers[canonicalForm: "Sec-WebSocket-Protocol"].joined(separator: ","), remote: remote?.description)
    }

    func admit(uri: String, authorization: String?, subprotocols: String?, remote: String?) -> Result<HandshakeRequest, Refusal> {
        let result = decide(uri: uri, authorization: authorization, subprotocols: subprotocols)
        if case .failure(let refusal) = result {
            gateway.counters.refused(refusal.code)
            gateway.logger.notice(
                "handshake refused",
                metadata: [
                    "remote": "\(remote ?? "-")", "agent": "\(Self.agentHint(uri))", "status": "\(refusal.status)", "cause": "\(refusal.code)",
                ])
        }
        return result
    }

    /// The watch stream's upgrade: only the query and the server's state are checked.
    func admitWatch(uri: String, remote: String?) -> Result<WatchRequest, Refusal> {
        let result: Result<WatchRequest, Refusal> =
            gateway.isStopping
            ? .failure(Refusal(status: 503, code: "stopping", message: "the server is stopping; reconnect shortly", retryAfter: 5))
            : WatchRequest.parse(uri: uri)
        if case .failure(let refusal) = result {
            gateway.counters.refused(refusal.code)
            gateway.logger.notice("watch refused", metadata: ["remote": "\(remote ?? "-")", "status": "\(refusal.status)", "cause": "\(refusal.code)"])
        }
        return result
    }

    private func decide(uri: String, authorization: String?, subprotocols: String?) -> Result<HandshakeRequest, Refusal> {
        let path = QueryString.split(uri: uri).path
        guard path == HandshakeRequest.path else {
            return .failure(
                Refusal(
                    status: 404, code: "not_found",
                    message: "no WebSocket endpoint at \(path.prefix(100)); agents connect to \(HandshakeRequest.path), watchers to \(WatchRequest.path)"))
        }
        if gateway.isStopping {
            return .failure(Refusal(status: 503, code: "stopping", message: "the server is stopping; reconnect shortly", retryAfter: 5))
        }
        let request: HandshakeRequest
        switch HandshakeRequest.parse(uri: uri, authorization: authorization, subprotocols: subprotocols) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let r): request = r
        }
        let limits = configuration.limits
        guard bucket.withLock({ $0.take() }) else {
            return .failure(Refusal(status: 429, code: "too_many_handshakes", message: "too many handshakes per second; retry shortly", retryAfter: 1))
        }
        if gateway.connectionCount >= limits.maxConnections {
            return .failure(
                Refusal(status: 429, code: "too_many_connections", message: "the server holds its maximum of \(limits.maxConnections) agents", retryAfter: 10))
        }
        if gateway.history.depth > limits.maxHistoryBacklog {
            return .failure(Refusal(status: 429, code: "history_backlog", message: "the history writer is catching up; retry shortly", retryAfter: 2))
        }
        if !configuration.openMode {
            if let refusal = checkToken(request) { return .failure(refusal) }
        }
        return .success(request)
    }

    /// 401 for a missing or wrong token; 403 for a disabled agent or another agent's token.
    private func checkToken(_ request: HandshakeRequest) -> Refusal? {
        guard let token = request.token, !token.isEmpty else {
            return Refusal(status: 401, code: "missing_token", message: "send Authorization: Bearer <token> (register the agent with POST /v1/agents)")
        }
        let presented = AgentToken.hash(token)
        let credential = gateway.credential(for: request.agentID)
        if let credential, credential.disabled {
            return Refusal(status: 403, code: "disabled", message: "agent '\(request.agentID)' is disabled")
        }
        if let stored = credential?.tokenHash, AgentToken.constantTimeEquals(stored, presented) { return nil }
        if let owner = gateway.agent(withTokenHash: presented), owner != request.agentID {
            return Refusal(status: 403, code: "token_for_other_id", message: "this token belongs to another agent id")
        }
        return Refusal(status: 401, code: "bad_token", message: "the token is not valid for agent '\(request.agentID)'")
    }

    /// The `id` parameter, for log lines about refused handshakes.
    static func agentHint(_ uri: String) -> String {
        guard let query = QueryString.split(uri: uri).query, let id = query.first(where: { $0.name == "id" })?.value else { return "-" }
        return String(id.prefix(64))
    }
}
