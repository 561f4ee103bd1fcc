import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
import RollcallCore
import RollcallStore
import ServiceLifecycle

/// Rollcall's HTTP/1 channel: WebSocket upgrades for agents are handled on the event loop by
/// ``AgentChannelHandler``; every other request, and every refused upgrade, goes to the ordinary
/// router, so a refusal is a real HTTP answer with its status, JSON body and `Retry-After`.
///
/// Modelled on hummingbird-websocket's `HTTP1WebSocketUpgradeChannel`, which answers refused
/// upgrades with a bare 400.
struct RollcallChannel: ServerChildChannel, HTTPChannelHandler {
    enum UpgradeResult: Sendable {
        case agent(any Channel)
        case watch(any Channel)
        case notUpgraded(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// An upgrade was asked for and refused. NIO's upgrade handler consumes the request, so
        /// the refusal is answered here, from the same validation the router uses.
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, Refusal)
    }

    struct Value: ServerChildChannelValue {
        let upgradeResult: EventLoopFuture<UpgradeResult>
        let channel: any Channel
    }

    /// What an accepted upgrade becomes.
    enum UpgradeTarget: Sendable {
        case agent(HandshakeRequest)
        case watch(WatchRequest)
    }

    let responder: HTTPChannelHandler.Responder
    let presence: Presence
    let hub: TransitionHub
    let store: any HistoryStore
    let configuration: ServerConfiguration
    let admission: Admission

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let presence = self.presence
            let hub = self.hub
            let store = self.store
            let configuration = self.configuration
            let admission = self.admission
            // The admission decision for an upgrade request, made once, kept for the answer.
            let attempted = NIOLoopBoundBox<Result<UpgradeTarget, Refusal>?>(nil, eventLoop: channel.eventLoop)
            let recorder = UpgradeHeadRecorder()
            let recorderRef = NIOLoopBound(recorder, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<UpgradeResult>(
                maxFrameSize: configuration.maxMessageBytes,
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    let decision: Result<UpgradeTarget, Refusal>
                    if QueryString.split(uri: head.uri).path == WatchRequest.path {
                        decision = admission.admitWatch(uri: head.uri, remote: channel.remoteAddress?.ipAddress).map { .watch($0) }
                    } else {
                        decision = admission.admit(uri: head.uri, headers: head.headers, remote: channel.remoteAddress).map { .agent($0) }
                    }
                    attempted.value = decision
                    var headers = HTTPHeaders()
                    switch decision {
                    case .failure: return channel.eventLoop.makeSucceededFuture(nil)
                    case .success(.agent(let request)):
                        if request.wantsSubprotocol { headers.add(name: "Sec-WebSocket-Protocol", value: HandshakeRequest.subprotocol) }
                    case .success(.watch): break
                    }
                    return channel.eventLoop.makeSucceededFuture(headers)
                },
                upgradePipelineHandler: { channel, head in
                    channel.eventLoop.makeCompletedFuture {
                        // Its work ended with the request head: no hop through it for every frame.
                        channel.pipeline.syncOperations.removeHandler(recorderRef.value, promise: nil)
                        switch attempted.value {
                        case .success(.agent(let request))?:
                            let handler = AgentChannelHandler(presence: presence, request: request, configuration: configuration, logger: logger)
                            try channel.pipeline.syncOperations.addHandler(handler)
                        case .success(.watch(let request))?:
                            // A watcher that does not read holds at most this much in the kernel.
                            try channel.syncOptions?.setOption(ChannelOptions.socketOption(.so_sndbuf), value: configuration.watcherSendBuffer)
                            let handler = WatchChannelHandler(
                                presence: presence, hub: hub, store: store, request: request, maxBuffered: configuration.maxWatcherBuffer,
                                slowReaderGrace: configuration.limits.slowReaderGrace, logger: logger)
                            try channel.pipeline.syncOperations.addHandler(handler)
                            return UpgradeResult.watch(channel)
                        default:
                            throw ChannelError.inputClosed
                        }
                        return UpgradeResult.agent(channel)
                    }
                }
            )
            let serverUpgradeConfiguration = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: .seconds(60), logger: logger))
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        if let decision = attempted.value {
                            switch decision {
                            case .failure(let refusal): return UpgradeResult.refused(asyncChannel, refusal)
                            case .success: return UpgradeResult.refused(asyncChannel, .badRequest("bad_upgrade", "the WebSocket upgrade failed"))
                            }
                        }
                        if recorderRef.value.sawUpgrade {
                            // NIO rejected the upgrade headers before asking us.
                            return UpgradeResult.refused(
                                asyncChannel,
                                .badRequest("bad_upgrade", "a WebSocket upgrade needs Connection: Upgrade, Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key"))
                        }
                        return UpgradeResult.notUpgraded(asyncChannel)
                    }
                }
            )
            var pipeline = NIOUpgradableHTTPServerPipelineConfiguration<UpgradeResult>(upgradeConfiguration: serverUpgradeConfiguration)
            pipeline.enablePipelining = false
            // A request NIO cannot parse (a raw control byte, an oversized head) is answered 400
            // and closed instead of left to the handshake timeout.
            pipeline.enableErrorHandling = true
            pipeline.enableResponseHeaderValidation = false
            let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: pipeline)
            // A peer that opens a connection and never finishes its request is not kept.
            let handshakeTimeout = configuration.limits.handshakeTimeout
            let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(handshakeTimeout)) {
                presence.counters.refused("handshake_timeout")
                presence.logger.notice("handshake timed out", metadata: ["remote": "\(channel.remoteAddress?.description ?? "-")"])
                channel.close(promise: nil)
            }
            negotiated.whenComplete { _ in timeout.cancel() }
            let upgradeHandler = try channel.pipeline.syncOperations.handler(type: NIOTypedHTTPServerUpgradeHandler<UpgradeResult>.self)
            try channel.pipeline.syncOperations.addHandler(recorder, position: .before(upgradeHandler))
            return Value(upgradeResult: negotiated, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgradeResult.get() {
            case .notUpgraded(let http):
                // The server's ChannelShouldQuiesceEvent reaches HTTPConnectionStateHandler only if
                // it was in the pipeline; it is added when the first request arrives, so a
                // connection accepted just before the stop lost the event and stayed keep-alive
                // (a client polling it held the server's graceful stop forever). Quiesce it again
                // from here: after the buffered first request has passed the state handler, so
                // that request is answered, then the connection is closed.
                await withGracefulShutdownHandler {
                    await handleHTTP(asyncChannel: http, logger: logger)
                } onGracefulShutdown: {
                    let channel = http.channel
                    channel.eventLoop.execute { channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent()) }
                }
            case .refused(let http, let refusal):
                presence.logger.notice(
                    "handshake refused",
                    metadata: ["remote": "\(value.channel.remoteAddress?.description ?? "-")", "status": "\(refusal.status)", "cause": "\(refusal.code)", "message": "\(TerminalText.escaped(refusal.message))"])
                await Self.write(refusal, to: http)
            case .watch(let channel):
                // Watchers are told the server is going away (1001) so the server can stop.
                await withGracefulShutdownHandler {
                    try? await channel.closeFuture.get()
                } onGracefulShutdown: {
                    channel.eventLoop.execute {
                        guard let handler = try? channel.pipeline.syncOperations.handler(type: WatchChannelHandler.self),
                            let context = try? channel.pipeline.syncOperations.context(handlerType: WatchChannelHandler.self)
                        else { return channel.close(promise: nil) }
                        handler.serverStopping(context: context)
                    }
                }
            case .agent:
                // The handler lives on the event loop and needs no task: returning here saves a
                // suspended task per agent. On shutdown the presence stop service closes every agent
                // (1001) and waits for the sockets to close.
                return
            }
        } catch {
            logger.debug("connection ended before it was set up", metadata: ["error": "\(error)"])
        }
    }
}

/// Notes whether the first request asked for an upgrade; NIO's upgrade handler swallows such a
/// request when it declines, and we still owe the client an answer.
final class UpgradeHeadRecorder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    private(set) var sawUpgrade = false
    private var seenFirst = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !seenFirst, case .head(let head) = unwrapInboundIn(data) {
            seenFirst = true
            sawUpgrade = head.headers.contains(name: "upgrade")
        }
        context.fireChannelRead(data)
    }
}

extension RollcallChannel {
    /// Answers a refused upgrade: status, JSON body, `Retry-After` when given, then close.
    static func write(_ refusal: Refusal, to http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>) async {
        var headers: HTTPFields = [.contentType: "application/json", .connection: "close"]
        if let retry = refusal.retryAfter { headers[.retryAfter] = String(retry) }
        let body = ByteBuffer(string: refusal.body)
        headers[.contentLength] = String(body.readableBytes)
        try? await http.executeThenClose { _, outbound in
            try await outbound.write(.head(HTTPResponse(status: .init(code: refusal.status), headerFields: headers)))
            try await outbound.write(.body(body))
            try await outbound.write(.end(nil))
        }
    }
}

