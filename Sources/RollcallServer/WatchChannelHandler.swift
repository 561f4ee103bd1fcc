import DequeModule
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket
import RollcallCore
import RollcallStore

/// A `/v1/watch?after=ID` request.
public struct WatchRequest: Sendable, Equatable {
    /// Resume after this transition id; `nil` asks for a snapshot first.
    public var after: Int64?

    public static let path = "/v1/watch"

    /// Parses the query; a bad `after` is a 400.
    public static func parse(uri: String) -> Result<WatchRequest, Refusal> {
        guard let query = QueryString.split(uri: uri).query else {
            return .failure(.badRequest("bad_parameter", "the query string has a malformed percent escape"))
        }
        var request = WatchRequest()
        for (name, value) in query where name == "after" {
            guard let after = Int64(value), after >= 0 else {
                return .failure(.badRequest("bad_parameter", "after must be a transition id (a non-negative integer)"))
            }
            request.after = after
        }
        return .success(request)
    }
}

/// One watcher of the live transition stream, on its event loop.
///
/// Without `after` it first gets a snapshot of every agent with the cursor it is valid at; with
/// `after` it gets every transition after that id, from memory or the history file, then the
/// live ones, in id order with no gap and no repeat. A watcher that stops reading is never
/// buffered without bound: past `maxBuffered` unsent events it is closed with 4100 and a reason
/// that names the cursor to resume from.
final class WatchChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    static let lagging: UInt16 = 4100

    let gateway: Gateway
    let store: any HistoryStore
    let request: WatchRequest
    let maxBuffered: Int
    let logger: Logger
    private var listenerID: Int?
    /// Events waiting: during the replay, or while the socket is not writable.
    private var buffer = Deque<Transition>()
    private var replaying = true
    private var lastSent: Int64 = 0
    private var closed = false

    init(gateway: Gateway, store: any HistoryStore, request: WatchRequest, maxBuffered: Int, logger: Logger) {
        self.gateway = gateway
        self.store = store
        self.request = request
        self.maxBuffered = maxBuffered
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let start = gateway.beginWatch(after: request.after, snapshot: request.after == nil) { transition in
            eventLoop.execute {
                let (handler, context) = loopBound.value
                handler.live(transition, context: context)
            }
        }
        listenerID = start.listenerID
        if let snapshot = start.snapshot {
            // A snapshot of a large fleet is megabytes of JSON: build it off the event loop so
            // the agents sharing this loop are never kept waiting for their acks.
            lastSent = start.cursor
            let cursor = start.cursor
            NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
                Self.snapshotJSON(snapshot, cursor: cursor)
            }.whenComplete { result in
                let (handler, context) = loopBound.value
                if case .success(let text) = result { handler.send(context: context, text) }
                handler.finishReplay(backlog: [], context: context)
            }
            return
        }
        let after = request.after ?? start.cursor
        lastSent = after
        // Older than the in-memory ring: replay from the history file first, off the event loop.
        let firstInMemory = start.backlog.first?.id ?? (start.cursor + 1)
        guard after + 1 < firstInMemory else {
            finishReplay(backlog: start.backlog, context: context)
            return
        }
        let store = self.store
        let backlog = start.backlog
        NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) {
            try Self.replay(store: store, after: after, before: firstInMemory)
        }.whenComplete { result in
            let (handler, context) = loopBound.value
            let rows = (try? result.get()) ?? []
            for row in rows { handler.send(context: context, Self.json(row)) }
            if let last = rows.last { handler.lastSent = max(handler.lastSent, last.id) }
            handler.finishReplay(backlog: backlog, context: context)
        }
    }

    /// The history file's transitions with `after` < id < `before`, oldest first.
    static func replay(store: any HistoryStore, after: Int64, before: Int64) throws -> [StoredTransition] {
        var rows: [StoredTransition] = []
        var cursor = after
        while cursor + 1 < before {
            let page = try store.transitions(agent: nil, after: cursor, limit: 1000)
            guard let last = page.last else { break }
            rows += page.filter { $0.id < before }
            cursor = last.id
            if page.count < 1000 { break }
        }
        return rows
    }

    private func finishReplay(backlog: [Transition], context: ChannelHandlerContext) {
        for t in backlog where t.id > lastSent { write(t, context: context) }
        replaying = false
        let waiting = buffer
        buffer.removeAll()
        for t in waiting where t.id > lastSent { deliver(t, context: context) }
        context.flush()
    }

    private func live(_ t: Transition, context: ChannelHandlerContext) {
        guard !closed else { return }
        if replaying || !context.channel.isWritable || !buffer.isEmpty {
            buffer.append(t)
            if buffer.count > maxBuffered { lag(context: context) }
            return
        }
        deliver(t, context: context)
        context.flush()
    }

    private func deliver(_ t: Transition, context: ChannelHandlerContext) {
        guard t.id > lastSent else { return }
        write(t, context: context)
    }

    private func write(_ t: Transition, context: ChannelHandlerContext) {
        lastSent = t.id
        var out = context.channel.allocator.buffer(capacity: 200)
        out.writeString(Self.json(t))
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: out)), promise: nil)
    }

    private func send(context: ChannelHandlerContext, _ text: String) {
        var out = context.channel.allocator.buffer(capacity: text.utf8.count)
        out.writeString(text)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: out)), promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, !replaying {
            while context.channel.isWritable, let t = buffer.popFirst() { deliver(t, context: context) }
            context.flush()
        }
        context.fireChannelWritabilityChanged()
    }

    private func lag(context: ChannelHandlerContext) {
        closed = true
        if let id = listenerID { gateway.hub.removeListener(id) }
        logger.notice("watcher too slow; closing", metadata: ["resume_after": "\(lastSent)", "buffered": "\(buffer.count)"])
        gateway.counters.violated("slow_watcher")
        buffer.removeAll()
        var data = context.channel.allocator.buffer(capacity: 64)
        data.writeInteger(Self.lagging)
        data.writeString("lagging: resume with after=\(lastSent)")
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// The server is stopping: close 1001 with the cursor to resume from.
    func serverStopping(context: ChannelHandlerContext) {
        guard !closed else { return }
        closed = true
        if let id = listenerID { gateway.hub.removeListener(id) }
        var data = context.channel.allocator.buffer(capacity: 64)
        data.writeInteger(UInt16(1001))
        data.writeString("server stopping: resume with after=\(lastSent)")
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            closed = true
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.write(webSocketErrorCode: .normalClosure)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: reply))).whenComplete { _ in
                channel.close(promise: nil)
            }
        default:
            break  // watchers only listen
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        if let id = listenerID { gateway.hub.removeListener(id) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: JSON

    static func json(_ t: Transition) -> String {
        JSONValue.object([
            ("type", .string("transition")), ("id", .int(t.id)), ("agent_id", .string(t.agentID.rawValue)), ("from", .str(t.from?.rawValue)),
            ("to", .string(t.to.rawValue)), ("reason", .string(t.reason.rawValue)), ("effective_at", .time(t.effectiveAt)),
            ("detected_at", .time(t.detectedAt)), ("session_id", .int(t.sessionID)),
        ]).serialized()
    }

    static func json(_ t: StoredTransition) -> String {
        JSONValue.object([
            ("type", .string("transition")), ("id", .int(t.id)), ("agent_id", .string(t.agentID)), ("from", .str(t.from)), ("to", .string(t.to)),
            ("reason", .string(t.reason)), ("effective_at", .time(t.effectiveAt)), ("detected_at", .time(t.detectedAt)),
            ("session_id", .int(t.sessionID)),
        ]).serialized()
    }

    static func snapshotJSON(_ agents: [LivenessEngine.AgentStatus], cursor: Int64) -> String {
        let items: [JSONValue] = agents.compactMap { a in
            guard let state = a.state else { return nil }
            return .object([
                ("id", .string(a.id.rawValue)), ("state", .string(state.rawValue)), ("since", .time(a.since)),
                ("last_seen", .time(a.lastSignOfLife)), ("rtt_ms", a.rttMs.map { .number(($0 * 1000).rounded() / 1000) } ?? .null),
            ])
        }
        return JSONValue.object([("type", .string("snapshot")), ("cursor", .int(cursor)), ("agents", .array(items))]).serialized()
    }
}
