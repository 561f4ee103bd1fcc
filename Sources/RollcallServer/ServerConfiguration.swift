import RollcallCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything `rollcall serve` can be told; the defaults are what an operator gets with no flags.
public struct ServerConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    /// 0 asks the system for a free port (tests).
    public var port: Int = 7777
    public var databasePath: String = "./rollcall.db"
    /// Any agent id may connect without a token. Only on loopback unless `allowOpenBeyondLoopback`.
    /// Off when an admin token is configured (unless `--open` says otherwise).
    public var openMode: Bool = true
    /// Bearer token for admin operations (`ROLLCALL_ADMIN_TOKEN` or `--admin-token-file`).
    public var adminToken: String?
    public var limits = GatewayLimits()
    /// Unsent events a watcher may fall behind by before it is closed (4100, with its cursor).
    public var maxWatcherBuffer: Int = 20_000
    /// The kernel's send buffer of a watch socket (`SO_SNDBUF`), bounding what a watcher that
    /// does not read costs in kernel memory and in frames written for nothing.
    public var watcherSendBuffer: Int = 128 * 1024
    /// Pages of 256 transitions that all watchers catching up may be sent per second together
    /// (bursts of a tenth of that): replaying history is paced so it never crowds the agents
    /// off the event loops, however many watchers replay at once.
    public var catchUpPagesPerSecond: Double = 200
    /// Recent transitions kept in memory for watchers that resume.
    public var transitionRing: Int = 100_000
    /// PEM certificate chain and private key: with both, the port serves `wss://` and `https://`.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    /// Each agent connection is pinged about this often (never more often than its timeout), to
    /// measure RTT and find dead TCP paths.
    public var pingInterval: Duration = .seconds(30)
    public var allowOpenBeyondLoopback: Bool = false
    public var liveness = LivenessConfiguration()
    /// Largest agent message accepted; larger ones close the connection with 1009.
    public var maxMessageBytes: Int = 4096
    /// How often the deadline sweep runs; bounds detection latency.
    public var sweepInterval: Duration = .milliseconds(10)
    /// Longest a history event waits in memory before its transaction.
    public var flushInterval: Duration = .milliseconds(50)
    /// How often the run's alive mark is written (what a crash repair dates the outage from).
    public var checkpointInterval: Duration = .seconds(2)
    /// Several nodes on PostgreSQL: how long a node's lease lasts without renewal (renewed every
    /// third of it). A node silent for longer is taken over by another.
    public var leaseMs: Int64 = 10_000
    /// How often open sessions' heartbeat counts, `last_seen` and RTT are written. Every open
    /// session changes between two of these, so at 19,900 agents each costs ≈ 60 ms of the
    /// writer's CPU: 10 s keeps that near 6 ms a second. The API reads these live, not from here.
    public var countersInterval: Duration = .seconds(10)
    /// How long a closing connection may take to answer our close frame.
    public var closeGrace: Duration = .seconds(2)
    /// History older than this is pruned (`--retain 90d`); `nil` keeps everything.
    public var retainMs: Int64?
    /// How often pruning runs when `retainMs` is set.
    public var pruneInterval: Duration = .seconds(3600)

    public init() {}

    /// Whether `host` only accepts connections from this machine: every address it resolves to
    /// is a loopback address (127.0.0.0/8 or ::1). A name is resolved, never judged by its
    /// spelling (`127.example.com` is not loopback); a name that does not resolve is not.
    public var isLoopbackOnly: Bool { Self.resolvesToLoopbackOnly(host) }

    public static func resolvesToLoopbackOnly(_ host: String) -> Bool {
        let name = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return false }
        defer { freeaddrinfo(first) }
        var any = false
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor?.pointee {
            defer { cursor = info.ai_next }
            guard let address = info.ai_addr else { continue }
            switch Int32(info.ai_family) {
            case AF_INET:
                let ip = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt32(bigEndian: $0.pointee.sin_addr.s_addr) }
                guard ip >> 24 == 127 else { return false }
            case AF_INET6:
                let bytes = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { p in
                    withUnsafeBytes(of: p.pointee.sin6_addr) { Array($0) }
                }
                guard bytes == Array(repeating: 0, count: 15) + [1] else { return false }
            default:
                return false
            }
            any = true
        }
        return any
    }

    /// A sentence describing why this configuration must not start, if it must not.
    public func validationError() -> String? {
        if openMode && !isLoopbackOnly && !allowOpenBeyondLoopback {
            return "refusing to listen on \(host) in open mode (any agent id, no token): "
                + "set ROLLCALL_ADMIN_TOKEN to require tokens, or pass --allow-open-remote to accept anyone"
        }
        if (tlsCertificatePath == nil) != (tlsKeyPath == nil) {
            return "--tls-cert and --tls-key go together: give both PEM files, or neither"
        }
        // Below interval × slack an agent would be timed out before it could be suspect.
        if Double(liveness.defaultTimeoutMs) < Double(liveness.defaultIntervalMs) * liveness.slack {
            return "--timeout-ms (\(liveness.defaultTimeoutMs)) must be at least \(liveness.slack) × --interval-ms (\(liveness.defaultIntervalMs)), "
                + "e.g. --timeout-ms \(liveness.defaultIntervalMs * 3) (three intervals)"
        }
        return nil
    }
}
