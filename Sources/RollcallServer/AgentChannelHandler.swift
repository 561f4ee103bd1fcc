import Logging
import NIOCore
import NIOWebSocket
import RollcallCore

/// One agent's WebSocket connection, on its event loop: decodes frames, feeds the presence owner and
/// writes acks. No task per connection and no actor hop per heartbeat; acks written while
/// reading are flushed once per read burst.
final class AgentChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private enum Phase {
        case open
        /// The agent said `bye`; waiting for its close frame.
        case saidBye
        /// We sent a close frame; waiting for the answer or the grace period.
        case closing
        case closed
    }

    private let presence: Presence
    private let request: HandshakeRequest
    private let maxMessageBytes: Int
    private let closeGrace: TimeAmount
    private let logger: Logger
    private var phase = Phase.open
    private var slot: LivenessEngine.Slot = 0
    private var session: Int64 = -1
    /// The session is over as far as the presence owner knows; nothing more is reported.
    private var reported = true
    private var fragments: ByteBuffer?
    private var fragmentOpcode: WebSocketOpcode = .text
    private var pendingFlush = false
    private var scratch: [UInt8] = []
    private var remote = "-"
    /// Heartbeats on this connection, flushed to the metrics counter in batches.
    private var beats = 0
    private var beatsReported = 0
    private var pings = PingSchedule()

    private var flood: TokenBucket
    private var floodRate: Double
    private let slowReaderGrace: TimeAmount
    private var slowReaderCheck: Scheduled<Void>?

    init(presence: Presence, request: HandshakeRequest, configuration: ServerConfiguration, logger: Logger) {
        self.presence = presence
        self.request = request
        self.maxMessageBytes = configuration.maxMessageBytes
        self.closeGrace = .init(configuration.closeGrace)
        self.slowReaderGrace = .init(configuration.limits.slowReaderGrace)
        self.floodRate = configuration.limits.messagesPerSecond
        self.flood = TokenBucket(rate: configuration.limits.messagesPerSecond, burst: configuration.limits.messageBurst)
        self.logger = logger
        scratch.reserveCapacity(96)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        presence.agentSocketOpened()
        if let address = context.channel.remoteAddress, let ip = address.ipAddress, let port = address.port {
            remote = address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let handle = ConnectionHandle(
            close: { code, reason in
                eventLoop.execute {
                    let (handler, context) = loopBound.value
                    handler.serverClose(context: context, code: code, reason: reason)
                }
            },
            loopKey: ObjectIdentifier(eventLoop),
            onLoop: { body in eventLoop.execute(body) },
            pingHere: {
                let (handler, context) = loopBound.value
                handler.pingRound(context: context)
            })
        guard let accepted = presence.accept(request, remoteAddress: remote, handle: handle) else {
            sendClose(context: context, code: .goingAway, reason: "server stopping")
            return
        }
        slot = accepted.slot
        session = accepted.sessionID
        reported = false
        // An agent granted a short interval may beat faster than the default flood limit.
        let granted = 1000 / Double(max(1, accepted.intervalMs))
        if granted * 4 > flood.rate { flood = TokenBucket(rate: granted * 4, burst: granted * 8) }
        floodRate = flood.rate
        let welcome = WireCodec.encode(
            .welcome(
                Welcome(
                    session: String(accepted.sessionID), intervalMs: accepted.intervalMs, timeoutMs: accepted.timeoutMs,
                    serverTimeMs: presence.clock.now())))
        writeText(context: context, welcome)
        context.flush()
        // One ping right away: the RTT is known from the first second, not after a ping round.
        sendPing(context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // RFC 6455 §5.1/§5.2: a client masks every frame, and no extension was negotiated.
        guard frame.maskKey != nil else {
            return violation(context: context, .init(.policyViolation, "unmasked frame: a client must mask every frame", cause: "unmasked"))
        }
        guard !frame.rsv1, !frame.rsv2, !frame.rsv3 else {
            return violation(context: context, .init(.policyViolation, "reserved bits set: no extension was negotiated", cause: "reserved_bits"))
        }
        switch frame.opcode {
        case .text, .binary:
            guard fragments == nil else {
                return violation(context: context, .init(.policyViolation, "new message before the previous one finished", cause: "fragmentation"))
            }
            if frame.fin {
                handleMessage(context: context, opcode: frame.opcode, data: frame.unmaskedData)
            } else {
                fragmentOpcode = frame.opcode
                fragments = frame.unmaskedData
            }
        case .continuation:
            guard var buffer = fragments else {
                return violation(context: context, .init(.policyViolation, "continuation frame without a message", cause: "fragmentation"))
            }
            var data = frame.unmaskedData
            guard buffer.readableBytes + data.readableBytes <= maxMessageBytes else {
                fragments = nil
                return violation(context: context, .init(.messageTooBig, "message exceeds \(maxMessageBytes) bytes", cause: "too_big"))
            }
            buffer.writeBuffer(&data)
            if frame.fin {
                fragments = nil
                handleMessage(context: context, opcode: fragmentOpcode, data: buffer)
            } else {
                fragments = buffer
            }
        case .ping:
            guard phase == .open || phase == .saidBye else { return }
            guard context.channel.isWritable else { return }
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
            pendingFlush = true
        case .pong:
            var data = frame.unmaskedData
            if data.readableBytes == 8, let sent = data.readInteger(as: UInt64.self) {
                let rtt = Double(DispatchTimeNanos.now() &- sent) / 1_000_000
                if rtt >= 0 && rtt < 600_000 { presence.pong(slot: slot, session: session, rttMs: rtt) }
            }
        case .connectionClose:
            receivedClose(context: context, frame: frame)
        default:
            violation(context: context, .init(.policyViolation, "reserved opcode", cause: "bad_opcode"))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if beats != beatsReported {
            presence.counters.heartbeats(beats - beatsReported)
            beatsReported = beats
        }
        if pendingFlush {
            pendingFlush = false
            context.flush()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        presence.agentSocketClosed()
        if !reported {
            reported = true
            presence.disconnect(slot: slot, session: session, kind: .abnormal(closeCode: nil))
        }
        phase = .closed
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The server allows half-closure, so a peer that vanished shows up as input closed.
        if let event = event as? ChannelEvent, event == .inputClosed {
            if !reported {
                reported = true
                presence.disconnect(slot: slot, session: session, kind: .abnormal(closeCode: nil))
            }
            phase = .closed
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error {
        case NIOWebSocketError.invalidFrameLength:
            violation(context: context, .init(.messageTooBig, "frame exceeds \(maxMessageBytes) bytes", cause: "too_big"))
        case is NIOWebSocketError:
            violation(context: context, .init(.policyViolation, "malformed WebSocket frame: \(error)", cause: "bad_frame"))
        default:
            logger.debug("agent connection error", metadata: ["agent": "\(request.agentID)", "error": "\(error)"])
            context.close(promise: nil)
        }
    }

    // MARK: Messages

    private func handleMessage(context: ChannelHandlerContext, opcode: WebSocketOpcode, data: ByteBuffer) {
        guard phase == .open else { return }
        pings.heard()
        guard flood.take() else {
            return violation(
                context: context,
                .init(.policyViolation, "heartbeat flood: more than \(Int(floodRate)) messages per second", cause: "flood"))
        }
        if opcode == .binary {
            do {
                let seq = try data.withUnsafeReadableBytes { bytes throws(ProtocolViolation) in try WireCodec.decodeAgentBinary(bytes) }
                beats &+= 1
                let timed = beats % ServerMetrics.ackSampleEvery == 0 ? NIODeadline.now() : nil
                defer { if let timed { presence.counters.metrics.ackLatency(nanoseconds: (NIODeadline.now() - timed).nanoseconds) } }
                _ = presence.heartbeat(slot: slot, session: session)
                var out = context.channel.allocator.buffer(capacity: WireCodec.binaryFrameLength)
                out.writeInteger(WireCodec.binaryAckTag)
                out.writeInteger(seq)  // big-endian, as the protocol wants
                context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: out)), promise: nil)
                pendingFlush = true
            } catch {
                violation(context: context, error)
            }
            return
        }
        let message: AgentMessage
        do {
            message = try data.withUnsafeReadableBytes { bytes throws(ProtocolViolation) in try WireCodec.decodeAgentText(bytes) }
        } catch {
            return violation(context: context, error)
        }
        switch message {
        case .heartbeat(let beat):
            beats &+= 1
            let timed = beats % ServerMetrics.ackSampleEvery == 0 ? NIODeadline.now() : nil
            defer { if let timed { presence.counters.metrics.ackLatency(nanoseconds: (NIODeadline.now() - timed).nanoseconds) } }
            let now = presence.heartbeat(slot: slot, session: session, sentMs: beat.sentMs)
            if let status = beat.status { presence.status(status, agent: request.agentID) }
            scratch.removeAll(keepingCapacity: true)
            WireCodec.writeAck(seq: beat.seq, serverTimeMs: now, into: &scratch)
            var out = context.channel.allocator.buffer(capacity: scratch.count)
            out.writeBytes(scratch)
            context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: out)), promise: nil)
            pendingFlush = true
        case .hello(let hello):
            presence.hello(hello, agent: request.agentID, slot: slot, session: session)
        case .bye(let reason):
            logger.debug("agent said bye", metadata: ["agent": "\(request.agentID)", "reason": "\(TerminalText.escaped(reason ?? "-"))"])
            report(.goodbye(closeCode: nil))
            phase = .saidBye
            scheduleForcedClose(context: context)
        }
    }

    private func receivedClose(context: ChannelHandlerContext, frame: WebSocketFrame) {
        var data = frame.unmaskedData
        let code = data.readInteger(as: UInt16.self).map(Int.init)
        switch phase {
        case .closing, .closed:
            context.close(promise: nil)
            return
        case .saidBye:
            break
        case .open:
            if code == 1000 || code == 1001 {
                report(.goodbye(closeCode: code))
            } else {
                report(.abnormal(closeCode: code ?? 1005))
            }
        }
        phase = .closing
        var reply = context.channel.allocator.buffer(capacity: 2)
        // Echo the agent's code when one may be sent; never 1005/1006/1015 or a reserved one.
        reply.writeInteger(code.flatMap { CloseCode.echoable(UInt16(truncatingIfNeeded: $0)) } ?? 1000)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    // MARK: Pings and slow readers

    /// This connection's turn in the sweeper's ping round.
    func pingRound(context: ChannelHandlerContext) {
        if pings.roundReached() { sendPing(context: context) }
    }

    /// A ping whose payload is our monotonic send time, so the pong gives the round trip.
    func sendPing(context: ChannelHandlerContext) {
        guard phase == .open, context.channel.isWritable else { return }
        var data = context.channel.allocator.buffer(capacity: 8)
        data.writeInteger(DispatchTimeNanos.now())
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: data)), promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            slowReaderCheck?.cancel()
            slowReaderCheck = nil
        } else if slowReaderCheck == nil {
            // A peer that stops reading its acks is closed, never buffered without bound.
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            slowReaderCheck = context.eventLoop.scheduleTask(in: slowReaderGrace) {
                let (handler, context) = loopBound.value
                guard !context.channel.isWritable else { return }
                handler.violation(context: context, .init(.policyViolation, "slow reader: acks not read", cause: "slow_reader"))
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Closing

    /// The presence owner ended this session (timeout, superseded, server stop…): send the close frame.
    func serverClose(context: ChannelHandlerContext, code: CloseCode, reason: String) {
        reported = true
        guard phase == .open || phase == .saidBye else { return }
        logger.debug("closing agent connection", metadata: ["agent": "\(request.agentID)", "code": "\(code.rawValue)", "reason": "\(TerminalText.escaped(reason))"])
        sendClose(context: context, code: code, reason: reason)
    }

    fileprivate func violation(context: ChannelHandlerContext, _ violation: ProtocolViolation) {
        logger.notice(
            "protocol violation",
            metadata: ["agent": "\(request.agentID)", "remote": "\(remote)", "code": "\(violation.code.rawValue)", "cause": "\(TerminalText.escaped(violation.reason))"])
        presence.counters.violated(violation.cause)
        report(.protocolViolation(violation.code))
        if phase == .open || phase == .saidBye { sendClose(context: context, code: violation.code, reason: violation.reason) }
    }

    private func report(_ kind: DisconnectKind) {
        guard !reported else { return }
        reported = true
        presence.disconnect(slot: slot, session: session, kind: kind)
    }

    private func sendClose(context: ChannelHandlerContext, code: CloseCode, reason: String) {
        phase = .closing
        let text = CloseCode.reasonBytes(reason)
        var data = context.channel.allocator.buffer(capacity: 2 + text.count)
        data.write(webSocketErrorCode: WebSocketErrorCode(codeNumber: Int(code.rawValue)))
        // Control frames carry at most 125 bytes, cut where a character ends.
        data.writeBytes(text)
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)), promise: nil)
        scheduleForcedClose(context: context)
    }

    private func scheduleForcedClose(context: ChannelHandlerContext) {
        let channel = context.channel
        context.eventLoop.scheduleTask(in: closeGrace) { channel.close(promise: nil) }
    }

    private func writeText(context: ChannelHandlerContext, _ text: String) {
        var out = context.channel.allocator.buffer(capacity: text.utf8.count)
        out.writeString(text)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: out)), promise: nil)
    }
}

/// Monotonic nanoseconds for ping payloads.
enum DispatchTimeNanos {
    static func now() -> UInt64 { UInt64(NIODeadline.now().uptimeNanoseconds) }
}


/// Whether a connection's turn in a ping round sends a ping.
///
/// A ping exists to catch a half-open connection and to measure the RTT. An agent heard from
/// since the last round is not half-open (and its deadline catches it if it goes quiet), so it is
/// pinged only every tenth round, for its RTT (every 5 minutes at the default 30 s); a quiet one
/// is pinged every round. Each ping costs both machines a wake-up and a pong: at 20,000 agents
/// pinged every 30 s that would be 660 extra socket reads a second beside 4,000 heartbeats.
struct PingSchedule {
    /// Rounds an agent that keeps talking may skip in a row.
    static let roundsSkippedWhenHeard = 9

    private var heardSinceRound = false
    private var skipped = 0

    mutating func heard() { heardSinceRound = true }

    /// A round reached this connection: `true` when it should be pinged.
    mutating func roundReached() -> Bool {
        defer { heardSinceRound = false }
        if heardSinceRound && skipped < Self.roundsSkippedWhenHeard {
            skipped += 1
            return false
        }
        skipped = 0
        return true
    }
}
