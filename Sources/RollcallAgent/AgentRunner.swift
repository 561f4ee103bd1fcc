import Logging
import NIOCore
import NIOSSL
import RollcallCore
import RollcallTransport
import Synchronization

/// How one connection of an agent ended.
public enum AgentSessionOutcome: Sendable, Equatable {
    /// We said goodbye (shutdown or cancellation).
    case saidGoodbye
    /// The server closed the connection with this code and reason.
    case closedByServer(code: Int?, reason: String?)
    /// The connection could not be made or broke.
    case failed(String)
    /// The server refused the handshake with this answer.
    case refused(HandshakeRefusal)
    /// A TLS setting that retrying cannot heal (an unreadable CA file, a certificate the CA does
    /// not vouch for or that names another host): the agent says so and exits.
    case misconfigured(String)
}

/// Observations an embedding program (the demo, tests) may want.
public struct AgentEvents: Sendable {
    public var onWelcome: @Sendable (Welcome) -> Void = { _ in }
    public var onAck: @Sendable (_ seq: UInt64, _ rttMs: Double) -> Void = { _, _ in }
    /// Return `false` to skip sending beat `seq` (simulated stalls in the demo and tests).
    public var shouldBeat: @Sendable (_ seq: UInt64) -> Bool = { _ in true }

    public init() {}
}

/// The agent's connection loop: connect, beat at the granted interval, reconnect with backoff,
/// say `bye` on graceful shutdown.
public struct AgentRunner: Sendable {
    public let configuration: AgentConfiguration
    public let logger: Logger
    public var events: AgentEvents
    /// Triggered, the runner says `bye`, closes with 1000 and returns.
    public let shutdown: AgentShutdown

    public init(configuration: AgentConfiguration, logger: Logger, events: AgentEvents = .init(), shutdown: AgentShutdown = AgentShutdown()) {
        self.configuration = configuration
        self.logger = logger
        self.events = events
        self.shutdown = shutdown
    }

    /// Runs until graceful shutdown or cancellation, reconnecting as needed. Throws ``AgentStop``
    /// when retrying cannot help: a refused or revoked token, a refused id.
    public func run() async throws {
        var backoff = Backoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)
        var rng = SystemRandomNumberGenerator()
        var unreachableSince: ContinuousClock.Instant?
        while !Task.isCancelled && !shutdown.isTriggered {
            var welcomed = false
            let outcome = await runOnce(onWelcome: {
                backoff.reset()
                welcomed = true
            })
            if welcomed { unreachableSince = nil }
            if Task.isCancelled || shutdown.isTriggered || outcome == .saidGoodbye { return }
            var floor: Duration = .zero
            switch outcome {
            case .closedByServer(let code, let reason):
                logger.warning("server closed the connection", metadata: ["code": "\(code.map(String.init) ?? "-")", "reason": "\(reason ?? "")"])
                if code == Int(CloseCode.removed.rawValue) {
                    throw AgentStop(exitCode: 77, message: "the server removed this agent or revoked its token (close 4003): \(reason ?? "")")
                }
                if code == Int(CloseCode.superseded.rawValue) {
                    logger.error("another connection with id \(configuration.agentID) took over; is a second agent using this id?")
                    floor = configuration.maxBackoff
                }
            case .refused(let refusal):
                let text =
                    "the server refused the handshake (\(refusal.status)\(refusal.code.map { " " + $0 } ?? "")): "
                    + TerminalText.escaped(refusal.message ?? "no reason given")
                switch refusal.status {
                case 401, 403: throw AgentStop(exitCode: 77, message: text)
                case 400, 404: throw AgentStop(exitCode: 78, message: text)
                default:
                    logger.warning("handshake refused", metadata: ["status": "\(refusal.status)", "cause": "\(refusal.code ?? "-")"])
                    // Honour Retry-After, but never wait longer than the backoff's own ceiling: a
                    // server cannot park its agents for a year, nor overflow the arithmetic.
                    floor = .seconds(min(Int64(max(0, refusal.retryAfterSeconds ?? 0)), configuration.maxBackoff.components.seconds))
                }
            case .failed(let why):
                logger.warning("connection failed", metadata: ["server": "\(configuration.serverURL)", "error": "\(why)"])
                if !welcomed {
                    let since = unreachableSince ?? .now
                    unreachableSince = since
                    if let limit = configuration.giveUpAfter, ContinuousClock.now - since >= limit {
                        throw AgentStop(exitCode: 69, message: "cannot reach the server at \(configuration.serverURL) for \(limit): \(why)")
                    }
                }
            case .misconfigured(let why):
                throw AgentStop(exitCode: 78, message: why)
            case .saidGoodbye:
                return
            }
            // Full jitter, but never sooner than the server asked.
            let jittered = backoff.nextDelay(using: &rng)
            let delay = floor > .zero ? floor + jittered / 4 : jittered
            logger.info("reconnecting", metadata: ["in_ms": "\(Int((delay / .milliseconds(1)).rounded()))"])
            await shutdown.pause(delay)
        }
    }

    /// One connection, from handshake to close. With `leaveAfter`, the agent says `bye` and
    /// closes with 1000 after that long, as it does on graceful shutdown.
    public func runOnce(leaveAfter: Duration? = nil, onWelcome: () -> Void = {}) async -> AgentSessionOutcome {
        var headers = [("Sec-WebSocket-Protocol", HandshakeRequest.subprotocol)]
        if let token = configuration.token { headers.append(("Authorization", "Bearer \(token)")) }
        let welcomed = Flag()
        let saidBye = Flag()
        let configuration = self.configuration
        let events = self.events
        let logger = self.logger
        let shutdown = self.shutdown
        do {
            let target = try configuration.handshakeTarget()
            let tls = target.scheme.isTLS ? try tlsConfiguration() : nil
            // At most a day, in whole milliseconds: no arithmetic on a configured value can trap.
            let keepaliveMs = min(max(configuration.keepalive.components.seconds, 0), 86_400) * 1000
                + configuration.keepalive.components.attoseconds / 1_000_000_000_000_000
            let keepalive: TimeAmount? = keepaliveMs > 0 ? .milliseconds(keepaliveMs) : nil
            let close = try await WebSocketClient.connect(to: target, headers: headers, tls: tls, maxMessageBytes: 1 << 14, keepalive: keepalive) {
                inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                // The server closed before its welcome (e.g. 4003): the close code says why.
                guard let firstMessage = try await iterator.next() else { return }
                guard case .text(let first) = firstMessage,
                    case .welcome(let offered) = try WireCodec.decodeServerText(Array(first.readableBytesView))
                else {
                    throw AgentError.noWelcome
                }
                // A broken server's zero or negative interval must not turn the beat loop into a flood.
                var checked = offered
                checked.intervalMs = min(max(offered.intervalMs, 10), 86_400_000)
                let welcome = checked
                welcomed.set()
                events.onWelcome(welcome)
                logger.info(
                    "connected", metadata: ["session": "\(TerminalText.escaped(String(welcome.session.prefix(40))))", "interval_ms": "\(welcome.intervalMs)", "timeout_ms": "\(welcome.timeoutMs)"])
                let hello = Hello(hostname: configuration.hostname, agentVersion: configuration.agentVersion, labels: configuration.labels)
                try await outbound.send(text: WireCodec.encode(.hello(hello)))
                let sentAt = PendingBeats()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await Self.beat(welcome: welcome, configuration: configuration, events: events, outbound: outbound, sentAt: sentAt)
                    }
                    group.addTask {
                        // Say goodbye on SIGTERM/SIGINT (or the embedding program's shutdown), or
                        // when the caller asked to leave after a while.
                        if let leaveAfter {
                            try await withThrowingTaskGroup(of: Void.self) { race in
                                race.addTask { try await shutdown.wait() }
                                race.addTask { try await EventLoopSleep.for(leaveAfter) }
                                try await race.next()
                                race.cancelAll()
                            }
                        } else {
                            try await shutdown.wait()
                        }
                        saidBye.set()
                        try await outbound.send(text: WireCodec.encode(.bye(reason: "shutdown")))
                        try await outbound.close(code: 1000, reason: "bye")
                    }
                    // Read acks in this task; the connection closing ends the loop.
                    while let message = try await iterator.next() {
                        let seq: UInt64?
                        switch message {
                        case .binary(let buffer): seq = WireCodec.decodeBinaryAck(buffer.readableBytesView)
                        case .text(let text):
                            if case .ack(let s, _)? = try? WireCodec.decodeServerText(Array(text.readableBytesView)) { seq = s } else { seq = nil }
                        }
                        if let seq, let sent = sentAt.take(seq) {
                            let rtt = ContinuousClock.now - sent
                            events.onAck(seq, Double(rtt.components.attoseconds) / 1e15 + Double(rtt.components.seconds) * 1000)
                        }
                    }
                    group.cancelAll()
                }
            }
            if welcomed.isSet { onWelcome() }
            if saidBye.isSet { return .saidGoodbye }
            if !welcomed.isSet && close == nil { return .failed("the server closed the connection before its welcome") }
            // Server-sent text is escaped here, once: it goes to logs and to the terminal.
            return .closedByServer(code: close?.code.map(Int.init), reason: close?.reason.map { TerminalText.escaped(String($0.prefix(123))) })
        } catch let refused as WebSocketUpgradeRefused {
            let json = try? JSONParser.parse(refused.body)
            let text = { (key: String) in json?[key]?.stringValue.map { TerminalText.escaped(String($0.prefix(300))) } }
            return .refused(
                HandshakeRefusal(status: refused.status, code: text("error"), message: text("message"), retryAfterSeconds: refused.retryAfterSeconds))
        } catch let silent as WebSocketServerSilent {
            if saidBye.isSet { return .saidGoodbye }
            if welcomed.isSet { onWelcome() }
            return .failed("the server at \(configuration.serverURL) stopped answering (\(silent)); reconnecting")
        } catch let problem as ServerURL.Problem {
            return .misconfigured(problem.description)
        } catch {
            if saidBye.isSet { return .saidGoodbye }
            if welcomed.isSet { onWelcome() }
            if let why = Self.misconfiguration(error, configuration: configuration) { return .misconfigured(why) }
            return .failed(Self.describe(error, server: configuration.serverURL))
        }
    }

    /// A sentence for the TLS failures that no retry can heal, or `nil`.
    static func misconfiguration(_ error: any Error, configuration: AgentConfiguration) -> String? {
        let text = "\(error)"
        let server = configuration.serverURL
        if text.has("CERTIFICATE_VERIFY_FAILED") || text.has("certificate verify failed") {
            let ca = configuration.caFile.map { "the CA in \(TerminalText.escaped($0))" } ?? "the system's trusted CAs"
            return "the certificate of \(server) is not signed by \(ca): pass --ca with the CA that signed it (\(TerminalText.escaped(String(text.prefix(120)))))"
        }
        if text.has("failedToValidateHostname") || (text.lowercased().has("hostname") && text.lowercased().has("mismatch")) {
            return "the certificate of \(server) does not name that host or address: connect with a name or IP the certificate lists"
        }
        if let ca = configuration.caFile, text.has("NIOSSL") && (text.has("failedToLoadCertificate") || text.has("errno") || text.has("fileNotFound")) {
            return "the --ca file \(TerminalText.escaped(ca)) cannot be read as PEM certificates"
        }
        return nil
    }

    /// One sentence for a connection that failed, instead of the transport's error dump.
    static func describe(_ error: any Error, server: String) -> String {
        let text = "\(error)"
        if text.has("errno: 111") || text.has("Connection refused") || text.has("connectionRefused") {
            return "nothing accepts connections at \(server) (connection refused): is the server running, and is the port right?"
        }
        if text.has("connectTimeout") || text.has("timeout") || text.has("Timeout") {
            return "no answer from \(server) in time: the host may be down or a firewall drops the packets"
        }
        if text.has("DNS") || text.has("resolve") || text.has("NXDOMAIN") || text.has("errno: -2") {
            return "cannot resolve the host of \(server)"
        }
        if text.has("errno: 113") || text.has("errno: 101") {
            return "no route to \(server)"
        }
        if error is AgentError { return "the server at \(server) did not open with a welcome: is it a Rollcall server?" }
        if text.has("upgraderDeniedUpgrade") || text.has("invalidUpgradeResponse") || text.has("inappropriateOperationForState") {
            return "the server at \(server) answered the WebSocket upgrade wrongly: is it a Rollcall server, or a proxy in the way?"
        }
        if text.has("ioOnClosedChannel") || text.has("alreadyClosed") || text.has("eof") || text.has("EOF") {
            return "the connection to \(server) closed during the handshake"
        }
        if text.has("NIOSSL") || text.has("BoringSSL") || text.has("handshakeFailed") {
            return "TLS with \(server) failed: \(TerminalText.escaped(String(text.prefix(160))))"
        }
        return TerminalText.escaped(String(text.prefix(200)))
    }

    /// System trust store, or the `--ca` bundle.
    func tlsConfiguration() throws -> TLSConfiguration {
        var c = TLSConfiguration.makeClientConfiguration()
        if let ca = configuration.caFile { c.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca)) }
        return c
    }

    static func beat(
        welcome: Welcome, configuration: AgentConfiguration, events: AgentEvents, outbound: WebSocketOutbound,
        sentAt: PendingBeats
    ) async throws {
        let interval = Duration.milliseconds(welcome.intervalMs)
        // The first beat comes after a random fraction of the interval, so a fleet spreads out.
        var next = ContinuousClock.now + .milliseconds(Int64.random(in: 0...max(1, welcome.intervalMs)))
        var seq: UInt64 = 0
        while !Task.isCancelled {
            try await EventLoopSleep.until(next)
            let now = ContinuousClock.now
            let late = now - next
            seq += 1
            next += interval
            if next < now { next = now + interval }  // after a long stall, do not burst
            guard events.shouldBeat(seq) else { continue }
            sentAt.record(seq, at: now)
            if configuration.binary {
                try await outbound.send(binary: WireCodec.encodeBinaryHeartbeat(seq: seq))
            } else {
                let lateMs = late.components.seconds * 1000 + late.components.attoseconds / 1_000_000_000_000_000
                var beat = Heartbeat(seq: seq, sentMs: wallClockMs(), lateMs: lateMs)
                beat.status = configuration.statusFile.flatMap(readStatus)
                try await outbound.send(text: WireCodec.encode(.heartbeat(beat)))
            }
        }
    }
}

/// The status file's JSON object, when it holds one of at most 1 KiB.
func readStatus(_ path: String) -> JSONValue? {
    guard let data = readSmallFile(path, limit: WireCodec.maxStatusBytes),
        let value = try? JSONParser.parse(data), case .object = value
    else { return nil }
    return value
}

/// A flag set once, read from any task.
final class Flag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// Send times of beats not yet acked, for RTT.
final class PendingBeats: Sendable {
    private let sent = Mutex([UInt64: ContinuousClock.Instant]())

    func record(_ seq: UInt64, at instant: ContinuousClock.Instant) {
        sent.withLock { pending in
            if pending.count > 64 { pending.removeAll() }  // a server that never acks must not grow this
            pending[seq] = instant
        }
    }

    func take(_ seq: UInt64) -> ContinuousClock.Instant? { sent.withLock { $0.removeValue(forKey: seq) } }
}

enum AgentError: Error {
    case noWelcome
}

extension String {
    /// Whether `needle` occurs in this text, byte for byte. (`contains(_:)` on strings lives in
    /// _StringProcessing, the regex library: a megabyte of the agent for a substring test.)
    func has(_ needle: String) -> Bool {
        let haystack = Array(utf8), pattern = Array(needle.utf8)
        guard !pattern.isEmpty else { return true }
        guard haystack.count >= pattern.count else { return false }
        return (0...(haystack.count - pattern.count)).contains { haystack[$0..<($0 + pattern.count)].elementsEqual(pattern) }
    }
}
