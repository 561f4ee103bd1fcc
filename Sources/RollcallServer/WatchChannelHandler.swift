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

    /// Parses the query; a bad `after`, or one beyond `newest` (the last committed id), is a 400.
    public static func parse(uri: String, newest: Int64) -> Result<WatchRequest, Refusal> {
        guard let query = QueryString.split(uri: uri).query else {
            return .failure(.badRequest("bad_parameter", "the query string has a malformed percent escape"))
        }
        var request = WatchRequest()
        for (name, value) in query where name == "after" {
            guard let after = Int64(value), after >= 0 else {
                return .failure(.badRequest("bad_parameter", "after must be a transition id (a non-negative integer)"))
            }
            guard after <= newest else {
                return .failure(.badRequest("bad_parameter", "after=\(after) is beyond the newest transition id, \(newest)"))
            }
            request.after = after
        }
        return .success(request)
    }
}

/// One watcher of the transition stream, on its event loop.
///
/// Without `after` it first gets a snapshot of every agent's committed state with the cursor it
/// is valid at; with `after` it pulls every transition after that id, page by page, from the
/// hub's ring or (for older ids) the history, only while its socket is writable, then follows
/// the live batches. Every id it is sent is durable (the hub only carries committed ones), in
/// order, with no gap and no repeat.
///
/// Memory is bounded whatever the peer does: pulling holds one page; live events wait in a
/// buffer of at most `maxBuffered` (shared with every other watcher: they are the hub's
/// buffers); a watcher past that, or unwritable for `slowReaderGrace`, is closed with 4100 and
/// the cursor to resume from; pongs are only written to a socket that is writable.
final class WatchChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    static let lagging: UInt16 = 4100
    static let pageSize = 256
    /// Pages written per event-loop turn while catching up: the agents sharing the loop get
    /// their turn between them.
    static let pagesPerTurn = 4
    /// A watcher we close is gone after this, whether or not it answers (or reads) the close.
    static let closeGrace: TimeAmount = .seconds(2)

    private enum Phase {
        case starting
        /// The snapshot is being built; live batches wait in the buffer.
        case snapshot
        /// Catching up from the ring or the history; live batches are ignored (pulled later).
        case pulling
        case live
        case closed
    }

    let presence: Presence
    let hub: TransitionHub
    let store: any HistoryStore
    let request: WatchRequest
    let maxBuffered: Int
    let slowReaderGrace: TimeAmount
    let logger: Logger
    private var phase = Phase.starting
    private var listenerID: Int?
    private var loopKey: ObjectIdentifier?
    private var buffer = Deque<PublishedTransition>()
    /// The newest id written to the socket (or covered by the snapshot).
    private var lastSent: Int64 = 0
    private var fetching = false
    private var slowReaderCheck: Scheduled<Void>?

    init(
        presence: Presence, hub: TransitionHub, store: any HistoryStore, request: WatchRequest, maxBuffered: Int, slowReaderGrace: Duration,
        logger: Logger
    ) {
        self.presence = presence
        self.hub = hub
        self.store = store
        self.request = request
        self.maxBuffered = maxBuffered
        self.slowReaderGrace = .init(slowReaderGrace)
        self.logger = logger
    }

    private var counted = false

    func handlerAdded(context: ChannelHandlerContext) {
        presence.counters.watchSocketOpened()
        counted = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let key = ObjectIdentifier(eventLoop)
        loopKey = key
        let join = hub.join(loop: key, execute: { eventLoop.execute($0) }, snapshot: request.after == nil) { batch in
            let (handler, context) = loopBound.value
            handler.live(batch, context: context)
        }
        listenerID = join.listenerID
        guard let agents = join.agents else {
            lastSent = request.after ?? join.cursor
            phase = .pulling
            pump(context: context)
            return
        }
        // A snapshot of a large fleet is megabytes of JSON: build it off the event loop so the
        // agents sharing this loop are never kept waiting for their acks.
        phase = .snapshot
        lastSent = join.cursor
        let (presence, cursor) = (presence, join.cursor)
        DatabaseThreads.shared.catchUp.runIfActive(eventLoop: eventLoop) {
            Self.snapshotJSON(agents, presence: presence, cursor: cursor)
        }.whenComplete { result in
            let (handler, context) = loopBound.value
            guard handler.phase == .snapshot else { return }
            switch result {
            case .success(let text):
                handler.send(context: context, text)
                handler.phase = .live
                handler.drainBuffer(context: context)
            case .failure:
                handler.closeLagging(context: context, why: "snapshot unavailable")
            }
        }
    }

    // MARK: Catching up

    /// Pulls pages while the socket takes them, a few per event-loop turn; one read of the file
    /// in flight at most.
    private func pump(context: ChannelHandlerContext) {
        var wrote = false
        var pages = 0
        defer { if wrote { context.flush() } }
        while phase == .pulling, !fetching, context.channel.isWritable {
            if pages == Self.pagesPerTurn || !hub.mayCatchUp() {
                // Yield the loop; or, out of the server-wide catch-up budget, try again after a
                // random 20–100 ms, so a thousand waiting watchers do not all wake every few ms.
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let wait: TimeAmount = pages == Self.pagesPerTurn ? .zero : .milliseconds(Int64.random(in: 20...100))
                context.eventLoop.scheduleTask(in: wait) {
                    let (handler, context) = loopBound.value
                    handler.pump(context: context)
                }
                return
            }
            pages += 1
            switch hub.page(after: lastSent, limit: Self.pageSize) {
            case .transitions(let items, let caughtUp):
                for p in items where p.id > lastSent {
                    write(p, context: context)
                    wrote = true
                }
                if caughtUp { phase = .live }
            case .older(let firstInRing):
                fetching = true
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                let (store, after, hub) = (store, lastSent, hub)
                // Read and encoded on the catch-up thread: the event loop only writes.
                DatabaseThreads.shared.catchUp.runIfActive(eventLoop: context.eventLoop) {
                    try store.transitions(agent: nil, after: after, limit: Self.pageSize).map(PublishedTransition.init)
                }.whenComplete { result in
                    let (handler, context) = loopBound.value
                    handler.fetching = false
                    guard handler.phase == .pulling else { return }
                    switch result {
                    case .success(let rows):
                        if rows.isEmpty {
                            // Nothing durable between here and the ring (ids set aside or never
                            // committed): continue from the ring.
                            handler.lastSent = max(handler.lastSent, (firstInRing ?? (hub.lastID + 1)) - 1)
                        }
                        for p in rows where p.id > handler.lastSent {
                            handler.write(p, context: context)
                        }
                        context.flush()
                        handler.pump(context: context)
                    case .failure(let error):
                        handler.logger.error("watch replay failed", metadata: ["error": "\(error)", "after": "\(handler.lastSent)"])
                        handler.closeLagging(context: context, why: "history unavailable")
                    }
                }
                return
            }
        }
    }

    // MARK: Live

    private func live(_ batch: ArraySlice<PublishedTransition>, context: ChannelHandlerContext) {
        switch phase {
        case .starting, .pulling, .closed:
            return
        case .snapshot:
            for p in batch where p.id > lastSent { buffer.append(p) }
            if buffer.count > maxBuffered {
                // Bounded even while the snapshot is built: fall back to pulling afterwards.
                buffer.removeAll()
                closeLagging(context: context, why: "lagging")
            }
        case .live:
            if buffer.isEmpty, context.channel.isWritable {
                for p in batch where p.id > lastSent { write(p, context: context) }
                context.flush()
                return
            }
            for p in batch where p.id > lastSent { buffer.append(p) }
            if buffer.count > maxBuffered { closeLagging(context: context, why: "lagging") }
        }
    }

    private func drainBuffer(context: ChannelHandlerContext) {
        while context.channel.isWritable, let p = buffer.popFirst() {
            if p.id > lastSent { write(p, context: context) }
        }
        context.flush()
    }

    private func write(_ p: PublishedTransition, context: ChannelHandlerContext) {
        lastSent = p.id
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: p.message)), promise: nil)
    }

    private func send(context: ChannelHandlerContext, _ text: String) {
        var out = context.channel.allocator.buffer(capacity: text.utf8.count)
        out.writeString(text)
        context.write(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .text, data: out)), promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            slowReaderCheck?.cancel()
            slowReaderCheck = nil
            switch phase {
            case .pulling: pump(context: context)
            case .live: drainBuffer(context: context)
            default: break
            }
        } else if slowReaderCheck == nil, phase != .closed {
            // A watcher that stops reading is closed with its cursor, never buffered without end.
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            slowReaderCheck = context.eventLoop.scheduleTask(in: slowReaderGrace) {
                let (handler, context) = loopBound.value
                guard !context.channel.isWritable else { return }
                handler.closeLagging(context: context, why: "lagging")
            }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Closing

    private func leave() {
        if let id = listenerID, let key = loopKey { hub.leave(loop: key, listenerID: id) }
        listenerID = nil
        slowReaderCheck?.cancel()
        slowReaderCheck = nil
    }

    private func closeLagging(context: ChannelHandlerContext, why: String) {
        guard phase != .closed else { return }
        phase = .closed
        leave()
        logger.notice("watcher closed", metadata: ["why": "\(why)", "resume_after": "\(lastSent)", "buffered": "\(buffer.count)"])
        presence.counters.violated("slow_watcher")
        buffer.removeAll()
        sendClose(context: context, code: Self.lagging, reason: "\(why): resume with after=\(lastSent)")
    }

    /// The server is stopping: close 1001 with the cursor to resume from.
    func serverStopping(context: ChannelHandlerContext) {
        guard phase != .closed else { return }
        phase = .closed
        leave()
        buffer.removeAll()
        sendClose(context: context, code: 1001, reason: "server stopping: resume with after=\(lastSent)")
    }

    private func sendClose(context: ChannelHandlerContext, code: UInt16, reason: String) {
        let text = CloseCode.reasonBytes(reason)
        var data = context.channel.allocator.buffer(capacity: 2 + text.count)
        data.writeInteger(code)
        data.writeBytes(text)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data))).whenComplete { _ in
            channel.close(promise: nil)
        }
        // A peer that does not read never lets that write complete: the socket goes anyway.
        context.eventLoop.scheduleTask(in: Self.closeGrace) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            // Only to a socket that takes it: a peer that pings and never reads gets no pongs
            // queued for it (RFC 6455 lets a pong answer only the latest ping).
            guard phase != .closed, context.channel.isWritable else { return }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            guard phase != .closed else { return context.close(promise: nil) }
            phase = .closed
            leave()
            buffer.removeAll()
            // Echo the peer's code when it is one that may be sent; never 1005/1006/1015.
            var received = frame.unmaskedData
            let code = received.readInteger(as: UInt16.self).flatMap { CloseCode.echoable($0) } ?? 1000
            sendClose(context: context, code: code, reason: "")
        default:
            break  // watchers only listen
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        leave()
        if counted {
            counted = false
            presence.counters.watchSocketClosed()
        }
        buffer.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: JSON

    static func snapshotJSON(_ agents: [AgentID: TransitionHub.Committed], presence: Presence, cursor: Int64) -> String {
        let items: [JSONValue] = agents.sorted { $0.key.rawValue < $1.key.rawValue }.map { id, committed in
            let live = presence.status(of: id)
            return .object([
                ("id", .string(id.rawValue)), ("state", .string(committed.state.rawValue)), ("since", .time(committed.since)),
                ("last_seen", .time(live?.lastSignOfLife)), ("rtt_ms", live?.rttMs.map { .number(($0 * 1000).rounded() / 1000) } ?? .null),
            ])
        }
        return JSONValue.object([("type", .string("snapshot")), ("cursor", .integer(cursor)), ("agents", .array(items))]).serialized()
    }
}
