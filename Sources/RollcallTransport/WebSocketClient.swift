import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// A WebSocket message as the application sees it: frames reassembled, control frames handled.
public enum WebSocketMessage: Sendable {
    case text(ByteBuffer)
    case binary(ByteBuffer)
}

/// The close frame the server sent, if it sent one before the connection ended.
public struct WebSocketClose: Sendable, Equatable {
    public var code: UInt16?
    public var reason: String?
}

/// The server answered the upgrade request with something other than 101.
public struct WebSocketUpgradeRefused: Error, Sendable {
    public var status: Int
    /// `Retry-After` in seconds, when the server sent one.
    public var retryAfterSeconds: Int?
    /// The start of the body (at most 16 KiB): Rollcall answers refusals with its JSON error body.
    public var body: [UInt8]
}

/// A small WebSocket client on SwiftNIO, for the agent and `rollcall top`.
///
/// It exists because the clients must reach servers by IPv6 literal (`ws://[::1]:7777`) and by
/// IP over TLS, where no SNI may be sent and the certificate's IP entries are checked instead;
/// and because a refused upgrade's status and JSON body tell the operator what to fix, so they are
/// returned rather than discarded.
public enum WebSocketClient {
    /// Connects to `url`, upgrades, and runs `body` with the incoming messages and a writer.
    /// Returns the server's close frame, if any, once `body` returns and the connection is closed.
    /// Throws ``WebSocketUpgradeRefused`` when the server refuses the upgrade.
    ///
    /// Rollcall's server speaks first (`welcome`, the watch snapshot): a server that has not
    /// answered the upgrade and sent its first message `firstMessageWithin` after the connection
    /// was made is dropped, so a peer that accepts and says nothing cannot hold a client forever.
    ///
    /// With `keepalive`, a connection on which nothing arrived for that long is pinged, and one on
    /// which nothing arrived for three times that long is closed and ``WebSocketServerSilent`` is
    /// thrown: a server that vanished without a FIN (a half-open connection) is noticed in
    /// seconds, not after TCP's retransmissions give up a quarter of an hour later.
    public static func connect(
        to url: ServerURL,
        headers extraHeaders: [(String, String)] = [],
        tls: TLSConfiguration? = nil,
        maxMessageBytes: Int = 1 << 14,
        connectTimeout: TimeAmount = .seconds(10),
        firstMessageWithin: TimeAmount = .seconds(10),
        keepalive: TimeAmount? = .seconds(15),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (WebSocketInbound, WebSocketOutbound) async throws -> Void
    ) async throws -> WebSocketClose? {
        let keepalive = keepalive.flatMap { $0 > .zero ? $0 : nil }  // zero or less: off
        var tls = tls ?? .makeClientConfiguration()
        // After the closing handshake there is nothing left to protect: do not wait the default
        // 5 s for a close_notify the server may never send.
        tls.shutdownTimeout = .milliseconds(500)
        let sslContext = try url.scheme.isTLS ? NIOSSLContext(configuration: tls) : nil
        var headers = HTTPHeaders([("Host", url.authority), ("Content-Length", "0")])
        headers.add(contentsOf: extraHeaders)
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: url.requestTarget, headers: headers)
        let closeBox = CloseBox()
        let initialize: @Sendable (any Channel) -> EventLoopFuture<EventLoopFuture<UpgradeResult>> = { channel in
                channel.eventLoop.makeCompletedFuture {
                    let deadline = channel.eventLoop.scheduleTask(in: firstMessageWithin) { channel.close(promise: nil) }
                    if let sslContext {
                        // No SNI for an IP literal; NIOSSL then verifies the certificate's IP
                        // entries against the address it connected to.
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: sslContext, serverHostname: url.hostIsAddress ? nil : url.host))
                    }
                    let upgrader = NIOTypedWebSocketClientUpgrader<UpgradeResult>(
                        maxFrameSize: maxMessageBytes,
                        enableAutomaticErrorHandling: false,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandlers([
                                    // Fragments of at least 1 KiB, at most 256 of them: a server cannot
                                    // pin thousands of tiny receive buffers.
                                    NIOWebSocketFrameAggregator(
                                        minNonFinalFragmentSize: 1024, maxAccumulatedFrameCount: 256, maxAccumulatedFrameSize: maxMessageBytes),
                                    ClientFrameHandler(closeBox: closeBox, keepalive: keepalive, onFirstMessage: { deadline.cancel() }),
                                ])
                                return .upgraded(try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel))
                            }
                        })
                    let configuration = NIOTypedHTTPClientUpgradeConfiguration<UpgradeResult>(
                        upgradeRequestHead: head, upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                let collector = RefusalCollector(promise: channel.eventLoop.makePromise())
                                try channel.pipeline.syncOperations.addHandler(collector)
                                return .refused(collector.promise.futureResult)
                            }
                        })
                    var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: configuration)
                    // The server sends `welcome` right behind its 101, often in the same segment:
                    // those bytes must reach the WebSocket decoder, not be dropped with the HTTP one.
                    pipeline.leftOverBytesStrategy = .forwardBytes
                    let result = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
                    // A 101 that does not check out (wrong accept key, no Upgrade header) fails the
                    // upgrade without closing the socket: close it, or every retry leaks one.
                    result.whenFailure { _ in channel.close(promise: nil) }
                    return result
                }
            }
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        // An IP literal is connected to as it is: the resolver would run getaddrinfo on a
        // libdispatch queue, and so start a thread, for an address that needs no lookup.
        let upgrade: EventLoopFuture<UpgradeResult>
        if let address = try? SocketAddress(ipAddress: url.host, port: url.port) {
            upgrade = try await bootstrap.connect(to: address, channelInitializer: initialize)
        } else {
            upgrade = try await bootstrap.connect(host: url.host, port: url.port, channelInitializer: initialize)
        }
        switch try await upgrade.get() {
        case .refused(let answer):
            throw try await answer.get()
        case .upgraded(let channel):
            try await channel.executeThenClose { inbound, outbound in
                try await body(WebSocketInbound(frames: inbound, closeBox: closeBox), WebSocketOutbound(writer: outbound))
            }
            // The server's close frame, when there is one, says more than our own verdict.
            if closeBox.value == nil, let silence = closeBox.silentForMs { throw WebSocketServerSilent(milliseconds: silence) }
            return closeBox.value
        }
    }

    enum UpgradeResult: Sendable {
        case upgraded(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>)
        case refused(EventLoopFuture<WebSocketUpgradeRefused>)
    }
}

/// The incoming messages; ends when the server closes or the connection drops.
public struct WebSocketInbound: AsyncSequence, Sendable {
    public typealias Element = WebSocketMessage
    let frames: NIOAsyncChannelInboundStream<WebSocketFrame>
    let closeBox: CloseBox

    public struct AsyncIterator: AsyncIteratorProtocol {
        var frames: NIOAsyncChannelInboundStream<WebSocketFrame>.AsyncIterator

        public mutating func next() async throws -> WebSocketMessage? {
            while let frame = try await frames.next() {
                switch frame.opcode {
                case .text: return .text(frame.unmaskedData)
                case .binary: return .binary(frame.unmaskedData)
                case .connectionClose: return nil
                default: continue
                }
            }
            return nil
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(frames: frames.makeAsyncIterator()) }
}

/// Sends messages; every frame is masked by ``ClientFrameHandler``.
public struct WebSocketOutbound: Sendable {
    let writer: NIOAsyncChannelOutboundWriter<WebSocketFrame>

    public func send(text: String) async throws {
        try await writer.write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)))
    }

    public func send(text bytes: some Sequence<UInt8>) async throws {
        try await writer.write(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: bytes)))
    }

    public func send(binary bytes: some Sequence<UInt8>) async throws {
        try await writer.write(WebSocketFrame(fin: true, opcode: .binary, data: ByteBuffer(bytes: bytes)))
    }

    /// Starts the closing handshake; the connection ends when the server answers (or after 5 s).
    public func close(code: UInt16 = 1000, reason: String = "") async throws {
        var data = ByteBuffer()
        data.writeInteger(code)
        // At most 123 bytes of reason, cut where a character ends.
        var cut = ""
        for character in reason {
            guard cut.utf8.count + character.utf8.count <= 123 else { break }
            cut.append(character)
        }
        data.writeString(cut)
        try await writer.write(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))
    }
}

/// Nothing came from the server for `milliseconds`, pings included: the connection was dropped.
public struct WebSocketServerSilent: Error, Sendable, CustomStringConvertible {
    public var milliseconds: Int64
    public var description: String {
        "the server sent nothing for \(milliseconds / 1000).\(milliseconds % 1000 / 100) s, not even a pong"
    }
}

/// How the connection ended, as the channel saw it: set on the event loop, read after it closed.
final class CloseBox: Sendable {
    private let box = NIOLockedValueBox<(close: WebSocketClose?, silentForMs: Int64?)>((nil, nil))
    /// The server's close frame.
    var value: WebSocketClose? {
        get { box.withLockedValue { $0.close } }
        set { box.withLockedValue { $0.close = newValue } }
    }
    /// Milliseconds of silence after which the client dropped the connection.
    var silentForMs: Int64? {
        get { box.withLockedValue { $0.silentForMs } }
        set { box.withLockedValue { $0.silentForMs = newValue } }
    }
}
