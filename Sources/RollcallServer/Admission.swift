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

/// What admission knows of registered agents' credentials.
public struct Credential: Sendable, Equatable {
    public var tokenHash: String?
    public var disabled: Bool

    public init(tokenHash: String?, disabled: Bool) {
        self.tokenHash = tokenHash
        self.disabled = disabled
    }
}

/// Limits on what one peer or the whole fleet may ask of the server.
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
    /// Handshakes that fail (bad id, parameter or token) per second from one source address,
    /// beyond which that source gets 429; they never spend the agents' budget.
    public var failedHandshakesPerSecondPerSource: Double = 20
    /// Open watch streams (beyond: 429 before the upgrade).
    public var maxWatchers: Int = 1_000
    /// New watch streams per second, server-wide.
    public var watchHandshakesPerSecond: Double = 100

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
        refill(now: now)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Whether a token is there, without taking it.
    mutating func peek(now: ContinuousClock.Instant = .now) -> Bool {
        refill(now: now)
        return tokens >= 1
    }

    private mutating func refill(now: ContinuousClock.Instant) {
        let elapsed = now - last
        last = now
        tokens = min(burst, tokens + rate * elapsed.seconds)
    }
}

/// The registered agents' credentials: one map from id to token hash, one back from hash to id.
struct Credentials {
    var byAgent: [AgentID: Credential] = [:]
    var owners: [String: AgentID] = [:]

    mutating func set(_ credential: Credential?, for id: AgentID) {
        if let old = byAgent[id]?.tokenHash { owners.removeValue(forKey: old) }
        byAgent[id] = credential
        if let hash = credential?.tokenHash { owners[hash] = id }
    }
}

/// Per-source budgets for handshakes that fail authentication, so a stranger's junk never spends
/// the budget registered agents need. Bounded: past `capacity` sources the oldest half is
/// forgotten (a forgotten source starts with a full bucket, which is at worst generous).
struct FailureBudgets {
    var buckets: [String: TokenBucket] = [:]
    let rate: Double
    let burst: Double
    let capacity: Int

    mutating func take(source: String, now: ContinuousClock.Instant = .now) -> Bool {
        if buckets[source] == nil, buckets.count >= capacity {
            let oldest = buckets.sorted { $0.value.last < $1.value.last }.prefix(capacity / 2).map(\.key)
            for key in oldest { buckets.removeValue(forKey: key) }
        }
        return buckets[source, default: TokenBucket(rate: rate, burst: burst, now: now)].take(now: now)
    }
}

/// Decides whether a handshake may proceed: the stateless checks of ``HandshakeRequest``, the
/// server's state (stopping, capacity, backlog), credentials, then the rate. One function serves
/// the upgrade path and the router, so both answer alike.
///
/// It owns the credentials (registrations and removals update them here) and the handshake
/// budgets: the server-wide bucket is charged only by handshakes that authenticate, failures are
/// charged per source address, and a plain GET (an agent asking why its upgrade was refused)
/// checks the bucket without spending from it.
final class Admission: Sendable {
    let presence: Presence
    let hub: TransitionHub
    let configuration: ServerConfiguration
    private let bucket: Mutex<TokenBucket>
    private let failures: Mutex<FailureBudgets>
    private let watchBucket: Mutex<TokenBucket>
    private let credentials = Mutex(Credentials())

    /// With several nodes: the newest transition id another node announced. This node's hub
    /// trails the shared log by a round or so, and a watcher resuming here from an id it saw on
    /// another node must be told to retry, not that the id does not exist.
    let announcedNewest: @Sendable () -> Int64

    init(presence: Presence, hub: TransitionHub, configuration: ServerConfiguration, announcedNewest: @escaping @Sendable () -> Int64 = { 0 }) {
        self.presence = presence
        self.hub = hub
        self.configuration = configuration
        self.announcedNewest = announcedNewest
        let limits = configuration.limits
        self.bucket = Mutex(TokenBucket(rate: limits.handshakesPerSecond, burst: limits.handshakeBurst))
        self.failures = Mutex(FailureBudgets(rate: limits.failedHandshakesPerSecondPerSource, burst: limits.failedHandshakesPerSecondPerSource * 5, capacity: 10_000))
        self.watchBucket = Mutex(TokenBucket(rate: limits.watchHandshakesPerSecond, burst: limits.watchHandshakesPerSecond * 2))
    }

    // MARK: Credentials

    /// Replaces what is known of an agent's credentials (registration, removal, start).
    func setCredential(_ credential: Credential?, for id: AgentID) {
        credentials.withLock { $0.set(credential, for: id) }
    }

    func credential(for id: AgentID) -> Credential? { credentials.withLock { $0.byAgent[id] } }

    func agent(withTokenHash hash: String) -> AgentID? { credentials.withLock { $0.owners[hash] } }

    // MARK: Agents

    /// `spend` is false for a plain GET of the agent path: it answers what an upgrade would get
    /// now, without using up a handshake.
    func admit(uri: String, headers: HTTPHeaders, remote: SocketAddress?) -> Result<HandshakeRequest, Refusal> {
        admit(
            uri: uri, authorization: headers.first(name: "Authorization"),
            subprotocols: headers[canonicalForm: "Sec-WebSocket-Protocol"].joined(separator: ","), remote: remote?.ipAddress ?? remote?.description)
    }

    func admit(uri: String, authorization: String?, subprotocols: String?, remote: String?, spend: Bool = true) -> Result<HandshakeRequest, Refusal> {
        let result = decide(uri: uri, authorization: authorization, subprotocols: subprotocols, source: remote ?? "-", spend: spend)
        if case .failure(let refusal) = result {
            presence.counters.refused(refusal.code)
            presence.logger.notice(
                "handshake refused",
                metadata: [
                    "remote": "\(remote ?? "-")", "agent": "\(Self.agentHint(uri))", "status": "\(refusal.status)", "cause": "\(refusal.code)",
                ])
        }
        return result
    }

    private func decide(uri: String, authorization: String?, subprotocols: String?, source: String, spend: Bool) -> Result<HandshakeRequest, Refusal> {
        let path = QueryString.split(uri: uri).path
        guard path == HandshakeRequest.path else {
            return .failure(
                Refusal(
                    status: 404, code: "not_found",
                    message: "no WebSocket endpoint at \(TerminalText.escaped(String(path.prefix(100)))); agents connect to \(HandshakeRequest.path), watchers to \(WatchRequest.path)"))
        }
        if presence.isStopping {
            return .failure(Refusal(status: 503, code: "stopping", message: "the server is stopping; reconnect shortly", retryAfter: 5))
        }
        let request: HandshakeRequest
        switch HandshakeRequest.parse(uri: uri, authorization: authorization, subprotocols: subprotocols) {
        case .failure(let refusal): return .failure(chargeFailure(refusal, source: source, spend: spend))
        case .success(let r): request = r
        }
        if !configuration.openMode, let refusal = checkToken(request) {
            return .failure(chargeFailure(refusal, source: source, spend: spend))
        }
        let limits = configuration.limits
        if presence.connectionCount >= limits.maxConnections {
            return .failure(
                Refusal(status: 429, code: "too_many_connections", message: "the server holds its maximum of \(limits.maxConnections) agents", retryAfter: 10))
        }
        if presence.outbox.depth > limits.maxHistoryBacklog {
            // 503, not 429: nothing the agent did; the monitor's own database is behind or away.
            return .failure(
                Refusal(
                    status: 503, code: "history_backlog",
                    message: "the history database is behind; agents already connected are still timed; retry shortly", retryAfter: 5))
        }
        let allowed = bucket.withLock { spend ? $0.take() : $0.peek() }
        guard allowed else {
            return .failure(Refusal(status: 429, code: "too_many_handshakes", message: "too many handshakes per second; retry shortly", retryAfter: 1))
        }
        return .success(request)
    }

    /// A refused request spends its source's failure budget; past it the answer is 429, so a
    /// client that keeps failing is slowed without slowing anyone else.
    private func chargeFailure(_ refusal: Refusal, source: String, spend: Bool) -> Refusal {
        guard spend else { return refusal }
        if failures.withLock({ $0.take(source: source) }) { return refusal }
        return Refusal(status: 429, code: "too_many_failures", message: "too many refused handshakes from \(source); retry later", retryAfter: 5)
    }

    /// 401 for a missing or wrong token; 403 for a disabled agent or another agent's token.
    private func checkToken(_ request: HandshakeRequest) -> Refusal? {
        guard let token = request.token, !token.isEmpty else {
            return Refusal(status: 401, code: "missing_token", message: "send Authorization: Bearer <token> (register the agent with POST /v1/agents)")
        }
        let presented = AgentToken.hash(token)
        let credential = credential(for: request.agentID)
        if let credential, credential.disabled {
            return Refusal(status: 403, code: "disabled", message: "agent '\(request.agentID)' is disabled")
        }
        if let stored = credential?.tokenHash, AgentToken.constantTimeEquals(stored, presented) { return nil }
        if let owner = agent(withTokenHash: presented), owner != request.agentID {
            return Refusal(status: 403, code: "token_for_other_id", message: "this token belongs to another agent id")
        }
        return Refusal(status: 401, code: "bad_token", message: "the token is not valid for agent '\(request.agentID)'")
    }

    // MARK: Watchers

    /// The watch stream's upgrade: the query, the server's state, and the watcher limits.
    func admitWatch(uri: String, remote: String?, spend: Bool = true) -> Result<WatchRequest, Refusal> {
        let result: Result<WatchRequest, Refusal>
        if presence.isStopping {
            result = .failure(Refusal(status: 503, code: "stopping", message: "the server is stopping; reconnect shortly", retryAfter: 5))
        } else {
            let newest = hub.lastID
            switch WatchRequest.parse(uri: uri, newest: max(newest, announcedNewest())) {
            case .failure(let refusal): result = .failure(chargeFailure(refusal, source: remote ?? "-", spend: spend))
            case .success(let request) where (request.after ?? 0) > newest:
                result = .failure(
                    Refusal(
                        status: 503, code: "catching_up", message: "this node has not yet read transition \(request.after ?? 0) from the shared history; retry shortly",
                        retryAfter: 1))
            case .success(let request):
                let max = configuration.limits.maxWatchers
                if presence.counters.openWatchSockets >= max {
                    result = .failure(Refusal(status: 429, code: "too_many_watchers", message: "the server holds its maximum of \(max) watchers", retryAfter: 10))
                } else if !watchBucket.withLock({ spend ? $0.take() : $0.peek() }) {
                    result = .failure(Refusal(status: 429, code: "too_many_handshakes", message: "too many watch handshakes per second; retry shortly", retryAfter: 1))
                } else {
                    result = .success(request)
                }
            }
        }
        if case .failure(let refusal) = result {
            presence.counters.refused(refusal.code)
            presence.logger.notice("watch refused", metadata: ["remote": "\(remote ?? "-")", "status": "\(refusal.status)", "cause": "\(refusal.code)"])
        }
        return result
    }

    /// The `id` parameter, for log lines about refused handshakes: escaped, since it is whatever
    /// the client sent (a percent-encoded newline must not start a forged log line).
    static func agentHint(_ uri: String) -> String {
        guard let query = QueryString.split(uri: uri).query, let id = query.first(where: { $0.name == "id" })?.value else { return "-" }
        return TerminalText.escaped(String(id.prefix(64)))
    }
}
