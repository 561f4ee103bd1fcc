import NIOCore
import NIOWebSocket
import RollcallCore

/// One simulated agent on its event loop: waits for `welcome`, then beats on a repeated task
/// (steady) or keeps `window` beats in flight (flood), timing every ack.
final class LoadConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let configuration: LoadConfiguration
    let stats: LoadStats
    let onClosed: @Sendable (_ code: Int?, _ expected: Bool) -> Void
    private var seq: UInt64 = 0
    /// Frame masks from a per-connection xorshift generator: `WebSocketMaskingKey.random()` asks the
    /// kernel for entropy on every frame, a cost a load generator should not add to the box it
    /// measures (the server cannot tell the difference).
    private var maskState = UInt64.random(in: 1...UInt64.max)
    /// Send times of beats in flight, by seq (small: one per interval, or `window` in flood).
    private var inFlight: [UInt64: NIODeadline] = [:]
    private var beatTask: RepeatedTask?
    private var nextDue: NIODeadline = .now()
    private var welcomed = false
    private var closeCode: Int?
    /// Set when this side chose to leave, so the close is not counted as unexpected.
    var leaving = false

    init(configuration: LoadConfiguration, stats: LoadStats, onClosed: @escaping @Sendable (Int?, Bool) -> Void) {
        self.configuration = configuration
        self.stats = stats
        self.onClosed = onClosed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        // Beat at the requested interval from the start: NIO's client upgrader may deliver the
        // welcome, sent right behind the 101, before this handler exists.
        start(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let bytes = frame.unmaskedData
            if !welcomed, bytes.readableBytesView.starts(with: #"{"type":"welcome""#.utf8) {
                welcomed = true
                stats.update { $0.welcomed += 1 }
                return
            }
            if let seq = Self.ackSeq(bytes) { acked(seq, context: context) }
        case .binary:
            if let seq = frame.unmaskedData.withUnsafeReadableBytes({ WireCodec.decodeBinaryAck($0) }) { acked(seq, context: context) }
        case .connectionClose:
            var data = frame.unmaskedData
            closeCode = data.readInteger(as: UInt16.self).map(Int.init)
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.write(webSocketErrorCode: .normalClosure)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: reply)))
                .whenComplete { _ in channel.close(promise: nil) }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)), promise: nil)
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        beatTask?.cancel()
        onClosed(closeCode, leaving)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func start(context: ChannelHandlerContext) {
        if configuration.flood {
            // After the upgrade has settled: writes made while the HTTP handlers leave are lost.
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(5)) {
                let (handler, context) = loopBound.value
                for _ in 0..<handler.configuration.window { handler.send(context: context) }
                context.flush()
            }
            return
        }
        let interval = TimeAmount.milliseconds(configuration.intervalMs)
        let first = TimeAmount.milliseconds(Int64.random(in: 0...max(1, configuration.intervalMs)))
        nextDue = .now() + first
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        beatTask = context.eventLoop.scheduleRepeatedTask(initialDelay: first, delay: interval) { _ in
            let (handler, context) = loopBound.value
            let now = NIODeadline.now()
            if now - handler.nextDue > .milliseconds(50) { handler.stats.update { $0.lateBeats += 1 } }
            handler.nextDue = now + interval
            handler.send(context: context)
            context.flush()
        }
    }

    private func nextMask() -> WebSocketMaskingKey {
        maskState ^= maskState << 13
        maskState ^= maskState >> 7
        maskState ^= maskState << 17
        let m = UInt32(truncatingIfNeeded: maskState)
        return WebSocketMaskingKey([UInt8(truncatingIfNeeded: m), UInt8(truncatingIfNeeded: m >> 8), UInt8(truncatingIfNeeded: m >> 16), UInt8(truncatingIfNeeded: m >> 24)])!
    }

    private func send(context: ChannelHandlerContext) {
        seq += 1
        inFlight[seq] = .now()
        if inFlight.count > 64 { inFlight = inFlight.filter { $0.key > seq - 64 } }
        var buffer: ByteBuffer
        if configuration.binary {
            buffer = context.channel.allocator.buffer(capacity: 9)
            buffer.writeBytes(WireCodec.encodeBinaryHeartbeat(seq: seq))
        } else {
            buffer = context.channel.allocator.buffer(capacity: 40)
            buffer.writeString(#"{"type":"heartbeat","seq":"#)
            buffer.writeString(String(seq))
            buffer.writeString("}")
        }
        stats.update { $0.sent += 1 }
        context.write(
            wrapOutboundOut(WebSocketFrame(fin: true, opcode: configuration.binary ? .binary : .text, maskKey: nextMask(), data: buffer)),
            promise: nil)
    }

    private func acked(_ seq: UInt64, context: ChannelHandlerContext) {
        guard let sent = inFlight.removeValue(forKey: seq) else { return }
        let micros = UInt64(max(0, (NIODeadline.now() - sent).nanoseconds / 1000))
        stats.recordAck(rttMicros: micros)
        if configuration.flood {
            send(context: context)
            context.flush()
        }
    }

    /// Stops beating but keeps the connection open: the server must time it out.
    func fallSilent() {
        leaving = true  // the 4000 that follows is expected
        beatTask?.cancel()
    }

    /// Leaves: `abrupt` closes TCP without a close frame (a vanished machine); otherwise bye + 1000.
    func leave(context: ChannelHandlerContext, abrupt: Bool) {
        leaving = true
        beatTask?.cancel()
        if abrupt {
            context.close(promise: nil)
            return
        }
        var bye = context.channel.allocator.buffer(capacity: 32)
        bye.writeString(#"{"type":"bye","reason":"load"}"#)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: bye)), promise: nil)
        var close = context.channel.allocator.buffer(capacity: 2)
        close.write(webSocketErrorCode: .normalClosure)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: close)), promise: nil)
    }

    /// Finds `"seq":N` in an ack without a JSON parser.
    static func ackSeq(_ buffer: ByteBuffer) -> UInt64? {
        buffer.withUnsafeReadableBytes { bytes -> UInt64? in
            let key = Array(#""seq":"#.utf8)
            guard bytes.count > key.count else { return nil }
            var i = 0
            while i + key.count < bytes.count {
                if bytes[i] == key[0] && (0..<key.count).allSatisfy({ bytes[i + $0] == key[$0] }) {
                    var j = i + key.count
                    var v: UInt64 = 0
                    while j < bytes.count, bytes[j] >= 48, bytes[j] <= 57 {
                        v = v * 10 + UInt64(bytes[j] - 48)
                        j += 1
                    }
                    return v
                }
                i += 1
            }
            return nil
        }
    }
}

extension WebSocketMaskingKey {
    static func random() -> WebSocketMaskingKey {
        WebSocketMaskingKey((0..<4).map { _ in UInt8.random(in: .min ... .max) })!
    }
}
