import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOSSL
import NIOWebSocket
import RollcallCore
import RollcallDashboard

/// Follows `/v1/watch` for the dashboard: a snapshot first, then every transition; when the
/// connection drops it reconnects with `after=` the last transition it delivered, so nothing is
/// lost or repeated across the gap.
public struct WatchFeed: Sendable {
    public enum Event: Sendable {
        case status(ConnectionStatus)
        case watch(Messages.Watch)
    }

    let baseURL: String
    let logger: Logger

    /// `baseURL` is the server's HTTP address, e.g. `http://127.0.0.1:7777`.
    public init(baseURL: String, logger: Logger) {
        self.baseURL = baseURL
        self.logger = logger
    }

    /// The WebSocket URL for `http(s)://…`.
    public static func watchURL(base: String, after: Int64?) -> String {
        var url = base
        // The scheme is case-insensitive, as `--server` is checked.
        let lower = url.lowercased()
        if lower.hasPrefix("https://") { url = "wss://" + url.dropFirst(8) } else if lower.hasPrefix("http://") { url = "ws://" + url.dropFirst(7) }
        while url.hasSuffix("/") { url.removeLast() }
        return url + "/v1/watch" + (after.map { "?after=\($0)" } ?? "")
    }

    /// Runs until cancelled.
    public func run(emit: @escaping @Sendable (Event) -> Void) async {
        let cursor = Cursor()
        var attempt = 0
        while !Task.isCancelled {
            let url = Self.watchURL(base: baseURL, after: cursor.value)
            var reason = "connection closed"
            cursor.live = false
            do {
                let tls = url.hasPrefix("wss://") ? TLSConfiguration.makeClientConfiguration() : nil
                let close = try await WebSocketClient.connect(
                    url: url, configuration: .init(maxFrameSize: 1 << 26, closeTimeout: .seconds(1)), tlsConfiguration: tls, logger: logger
                ) { inbound, _, _ in
                    for try await message in inbound.messages(maxSize: 1 << 26) {
                        guard case .text(let text) = message, let value = try? JSONParser.parse(Array(text.utf8)),
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
                    reason = "closed \(UInt16(webSocketErrorCode: close.closeCode))" + (close.reason.map { ": \($0)" } ?? "")
                    // A lagging watcher may come straight back: the cursor covers the gap.
                    if close.closeCode == .unknown(4100) {
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
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return String(text.prefix(60))
    }

    /// The resume point, shared between the handler closure and the retry loop of one feed.
    final class Cursor: @unchecked Sendable {
        // Touched only by the feed's one task, in sequence; the class is a box for the closure.
        var value: Int64?
        var live = false
    }
}
