import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import RollcallCore

/// A WebSocket client for tests: send exactly what a test wants, read what comes back, and see
/// the close code the server sent.
public final class TestWebSocket: Sendable {
    public struct Closed: Sendable, Equatable {
        public var code: Int?
        public var reason: String?
    }

    private let outbound = Mutex2<WebSocketOutboundWriter?>(nil)
    private let inbox = Mutex2<[WebSocketMessage]>([])
    private let changed = AsyncBroadcast()
    private let result = Mutex2<Result<Closed, any Error>?>(nil)

    /// Connects to `url` and waits until the upgrade is done (or failed).
    public static func connect(_ url: String, headers: HTTPFields = [:]) async throws -> TestWebSocket {
        let socket = TestWebSocket()
        let logger = Logger(label: "test.ws", factory: { _ in SwiftLogNoOpLogHandler() })
        Task {
            do {
                let close = try await WebSocketClient.connect(
                    url: url, configuration: .init(maxFrameSize: 1 << 20, additionalHeaders: headers, closeTimeout: .seconds(2)), logger: logger
                ) { inbound, outbound, _ in
                    socket.outbound.withLock { $0 = outbound }
                    socket.changed.fire()
                    var iterator = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                    while let message = try await iterator.next() {
                        socket.inbox.withLock { $0.append(message) }
                        socket.changed.fire()
                    }
                }
                let closed = Closed(code: close.map { Int(UInt16(webSocketErrorCode: $0.closeCode)) }, reason: close?.reason)
                socket.result.withLock { $0 = .success(closed) }
            } catch {
                socket.result.withLock { $0 = .failure(error) }
            }
            socket.changed.fire()
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let seen = socket.changed.generation
            guard socket.outbound.withLock({ $0 == nil }) else { break }
            if let result = socket.result.withLock({ $0 }) {
                if case .failure(let error) = result { throw error }
                return socket
            }
            guard ContinuousClock.now < deadline else { throw TestTimeout(what: "WebSocket upgrade") }
            await socket.changed.wait(since: seen, until: deadline)
        }
        return socket
    }

    public func send(text: String) async throws {
        guard let writer = outbound.withLock({ $0 }) else { throw TestTimeout(what: "open socket") }
        try await writer.write(.text(text))
    }

    public func send(binary bytes: [UInt8]) async throws {
        guard let writer = outbound.withLock({ $0 }) else { throw TestTimeout(what: "open socket") }
        try await writer.write(.binary(ByteBuffer(bytes: bytes)))
    }

    public func close(code: WebSocketErrorCode = .normalClosure, reason: String? = nil) async throws {
        guard let writer = outbound.withLock({ $0 }) else { return }
        try await writer.close(code, reason: reason)
    }

    /// The next message the server sent, waiting up to `limit`.
    public func next(within limit: Duration = .seconds(5)) async throws -> WebSocketMessage {
        let deadline = ContinuousClock.now + limit
        while true {
            let seen = changed.generation
            if let message = inbox.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { return message }
            if result.withLock({ $0 != nil }) { throw TestTimeout(what: "a message (connection closed)") }
            guard ContinuousClock.now < deadline else { throw TestTimeout(what: "a message") }
            await changed.wait(since: seen, until: deadline)
        }
    }

    /// The next text message, decoded.
    public func nextServerMessage(within limit: Duration = .seconds(5)) async throws -> ServerMessage {
        switch try await next(within: limit) {
        case .text(let text): return try WireCodec.decodeServerText(Array(text.utf8))
        case .binary: throw TestTimeout(what: "a text message (got binary)")
        }
    }

    /// Waits for the connection to end and returns the close code the server sent.
    public func closed(within limit: Duration = .seconds(10)) async throws -> Closed {
        let deadline = ContinuousClock.now + limit
        while true {
            let seen = changed.generation
            if let result = result.withLock({ $0 }) { return try result.get() }
            guard ContinuousClock.now < deadline else { throw TestTimeout(what: "the connection to close") }
            await changed.wait(since: seen, until: deadline)
        }
    }
}
