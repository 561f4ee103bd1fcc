import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The client side of RFC 6455 below the application: masks every outgoing frame, answers pings,
/// completes the closing handshake in either direction, and closes a connection whose peer does
/// not answer a close within 5 s.
final class ClientFrameHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias InboundOut = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let closeBox: CloseBox
    private var onFirstMessage: (() -> Void)?
    private var sentClose = false
    private var closeTimer: Scheduled<Void>?
    private let keepalive: TimeAmount?
    private var keepaliveTask: RepeatedTask?
    private var silence = Silence()

    init(closeBox: CloseBox, keepalive: TimeAmount?, onFirstMessage: @escaping () -> Void) {
        self.closeBox = closeBox
        self.keepalive = keepalive
        self.onFirstMessage = onFirstMessage
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let keepalive else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        keepaliveTask = context.eventLoop.scheduleRepeatedTask(initialDelay: keepalive, delay: keepalive) { _ in
            let (handler, context) = loopBound.value
            handler.keepaliveTick(context: context, period: keepalive)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        keepaliveTask?.cancel()
    }

    private func keepaliveTick(context: ChannelHandlerContext, period: TimeAmount) {
        switch silence.tick() {
        case .fine:
            break
        case .ping:
            guard !sentClose, context.channel.isWritable else { return }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, maskKey: .random(), data: ByteBuffer())), promise: nil)
        case .dead(let periods):
            // A closing handshake under way has its own 5 s timer; its outcome is the close.
            guard !sentClose else { return }
            closeBox.silentForMs = Int64(periods) * period.nanoseconds / 1_000_000
            keepaliveTask?.cancel()
            context.close(promise: nil)
        }
    }

    /// The code to answer a server's close with: its own when that may be sent on the wire
    /// (RFC 6455 §7.4), else 1000.
    static func echo(_ code: UInt16?) -> UInt16 {
        guard let code else { return 1000 }
        switch code {
        case 1000...1003, 1007...1011, 3000...4999: return code
        default: return 1000
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        silence.heard()
        switch frame.opcode {
        case .ping:
            // Unwritable: the server is not reading; answering would only queue pongs in memory
            // (RFC 6455 lets a client answer just the latest ping).
            guard !sentClose, context.channel.isWritable else { return }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)), promise: nil)
        case .pong:
            break
        case .connectionClose:
            var payload = frame.unmaskedData
            let code = payload.readInteger(as: UInt16.self)
            let reason = payload.readString(length: payload.readableBytes)
            if closeBox.value == nil { closeBox.value = WebSocketClose(code: code, reason: reason.flatMap { $0.isEmpty ? nil : $0 }) }
            context.fireChannelRead(data)
            let channel = context.channel
            if sentClose {
                channel.close(promise: nil)
            } else {
                // Echo the code (RFC 6455 §5.5.1), then close: the server closes its side too.
                sentClose = true
                var echo = context.channel.allocator.buffer(capacity: 2)
                echo.writeInteger(Self.echo(code))
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: echo)))
                    .whenComplete { _ in channel.close(promise: nil) }
            }
        case .text, .binary:
            if let first = onFirstMessage {
                onFirstMessage = nil
                first()
            }
            context.fireChannelRead(data)
        default:
            // A reserved opcode: the stream cannot be trusted any further.
            context.close(promise: nil)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var frame = unwrapOutboundIn(data)
        frame.maskKey = .random()
        if sentClose && frame.opcode != .connectionClose {
            // Nothing may follow a close frame (RFC 6455 §5.5.1).
            promise?.succeed()
            return
        }
        if frame.opcode == .connectionClose {
            guard !sentClose else {
                promise?.succeed()
                return
            }
            sentClose = true
            let channel = context.channel
            closeTimer = context.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
        }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Bytes arrived, even if they are only part of a large message still in transit.
        silence.heard()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeTimer?.cancel()
        keepaliveTask?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A frame too large or malformed: 1009/1002 would be courteous, but the stream is no
        // longer in sync; drop the connection and let the caller reconnect.
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}

/// Keepalive periods without a frame from the server: after one, ping; after three, give up.
struct Silence {
    enum Verdict: Equatable {
        case fine
        case ping
        case dead(periods: Int)
    }

    static let deadAfter = 3
    private var heardThisPeriod = false
    private var quietPeriods = 0

    mutating func heard() { heardThisPeriod = true }

    /// One keepalive period ended.
    mutating func tick() -> Verdict {
        defer { heardThisPeriod = false }
        if heardThisPeriod {
            quietPeriods = 0
            return .fine
        }
        quietPeriods += 1
        return quietPeriods >= Self.deadAfter ? .dead(periods: quietPeriods) : .ping
    }
}

/// Reads a refused upgrade's answer: status, `Retry-After`, and the start of the body.
final class RefusalCollector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart

    let promise: EventLoopPromise<WebSocketUpgradeRefused>
    private var answer = WebSocketUpgradeRefused(status: 0, body: [])
    private var answered = false

    init(promise: EventLoopPromise<WebSocketUpgradeRefused>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            answer.status = Int(head.status.code)
            answer.retryAfterSeconds = head.headers.first(name: "Retry-After").flatMap { Int($0) }
        case .body(let chunk):
            let room = 16_384 - answer.body.count
            if room > 0 { answer.body += chunk.readableBytesView.prefix(room) }
        case .end:
            finish()
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish()
        context.close(promise: nil)
    }

    private func finish() {
        guard !answered else { return }
        answered = true
        promise.succeed(answer)
    }
}
