import Logging
import NIOCore
import NIOSSL
import RollcallCore
import RollcallDashboard
import RollcallTransport

/// Follows `/v1/watch` for the dashboard: a snapshot first, then every transition; when the
/// connection drops it reconnects with `after=` the last transition it delivered, so nothing is
/// lost or repeated across the gap.
public struct WatchFeed: Sendable {
    public enum Event: Sendable {
        case status(ConnectionStatus)
        case watch(Messages.Watch)
    }

    let server: ServerURL
    let tls: TLSConfiguration?
    let logger: Logger

    /// `server` is the server's HTTP address, e.g. `http://127.0.0.1:7777` or `https://[::1]:7777`;
    /// `tls` verifies an https server (the system's trust store when `nil`).
    public init(server: ServerURL, tls: TLSConfiguration? = nil, logger: Logger) {
        self.server = server
        self.tls = tls
        self.logger = logger
    }

    /// The WebSocket URL of the watch stream for an `http(s)://…` server.
    public static func watchURL(server: ServerURL, after: Int64?) -> ServerURL {
        server.with(scheme: server.scheme.webSocket, path: server.path + "/v1/watch", query: after.map { "after=\($0)" })
    }

    /// Runs until cancelled.
    public func run(emit: @escaping @Sendable (Event) -> Void) async {
        let cursor = Cursor()
        var attempt = 0
        while !Task.isCancelled {
            let url = Self.watchURL(server: server, after: cursor.value)
            var reason = "connection closed"
            cursor.live = false
            do {
                // The snapshot of a 20,000-agent fleet is about 4 MB; 32 MiB leaves room, and bounds
                // what a hostile server can make the dashboard hold.
                let close = try await WebSocketClient.connect(to: url, tls: tls, maxMessageBytes: 32 << 20) { inbound, _ in
                    for try await message in inbound {
                        guard case .text(let text) = message, let value = try? JSONParser.parse(text.readableBytesView),
                            let event = Messages.watch(value)
                        else { continue }
                        if !cursor.live {
                            cursor.live = true
                            emit(.status(.live))
                        }
                        switch event {
                        case .snapshot(_, let c): cursor.value = c
                        case .transition(let t): cursor.value = t.id
                        }
                        emit(.watch(event))
                    }
                }
                if let close {
                    reason = "closed \(close.code.map(String.init) ?? "-")" + (close.reason.map { ": \(TerminalText.escaped($0))" } ?? "")
                    // A lagging watcher may come straight back: the cursor covers the gap. Only when
                    // this connection delivered something, so a server that answers every attempt
                    // with 4100 gets the usual backoff, not a tight loop.
                    if close.code == 4100 && cursor.live {
                        emit(.status(.reconnecting(attempt: 1, error: "lagging; resuming")))
                        continue
                    }
                }
            } catch {
                reason = Self.describe(error)
            }
            if Task.isCancelled { return }
            attempt = cursor.live ? 1 : attempt + 1
            emit(.status(.reconnecting(attempt: attempt, error: reason)))
            // 0.25 s, 0.5 s, 1 s, 2 s, then every 3 s.
            let delay = min(3000, 250 << min(attempt - 1, 4))
            try? await Task.sleep(for: .milliseconds(delay))
        }
    }

    static func describe(_ error: any Error) -> String {
        if let refused = error as? WebSocketUpgradeRefused {
            let json = try? JSONParser.parse(refused.body)
            return "refused \(refused.status)" + (json?["message"]?.stringValue.map { ": " + TerminalText.escaped($0) } ?? "")
        }
        if let silent = error as? WebSocketServerSilent { return "no answer: \(silent)" }
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("errno: 111") { return "connection refused" }
        if text.contains("failedToValidateHostname") { return "the certificate does not name this host or address" }
        if text.contains("CERTIFICATE_VERIFY_FAILED") { return "the certificate is not signed by a trusted CA (pass --ca)" }
        return TerminalText.escaped(String(text.prefix(60)))
    }

    /// The resume point, shared between the handler closure and the retry loop of one feed.
    final class Cursor: @unchecked Sendable {
        // Touched only by the feed's one task, in sequence; the class is a box for the closure.
        var value: Int64?
        var live = false
    }
}
