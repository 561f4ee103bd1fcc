import Foundation
import HTTPTypes
import Logging
import Hummingbird
import NIOCore
import RollcallCore
import RollcallStore

/// An API error with the JSON body of spec §3.1: `{"error":"<code>","message":"<sentence>"}`.
struct APIError: HTTPResponseError {
    let refusal: Refusal

    init(_ refusal: Refusal) { self.refusal = refusal }
    init(status: Int, code: String, message: String, retryAfter: Int? = nil) {
        self.refusal = Refusal(status: status, code: code, message: message, retryAfter: retryAfter)
    }

    var status: HTTPResponse.Status { .init(code: refusal.status) }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retry = refusal.retryAfter { headers[.retryAfter] = String(retry) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: refusal.body)))
    }
}

/// JSON responses built from ``JSONValue`` so field names are exactly the documented ones.
func jsonResponse(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: value.serialized())))
}

extension JSONValue {
    static func time(_ ms: Millis?) -> JSONValue { ms.map { .string(Timestamp.rfc3339($0)) } ?? .null }
    static func int(_ v: Int64?) -> JSONValue { v.map { .integer($0) } ?? .null }
    static func str(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }
    /// Parses stored JSON text, or `null`.
    static func stored(_ text: String?) -> JSONValue {
        guard let text, let v = try? JSONParser.parse(text) else { return .null }
        return v
    }
}

/// The query API routes (spec §6).
///
/// Live answers (state, since, last seen, the open session) come from ``Presence``; the past
/// comes from the history, read on the database's own threads (``DatabaseThreads``) so no query
/// runs on the threads that time agents.
struct QueryAPI: Sendable {
    let presence: Presence
    let hub: TransitionHub
    let store: any HistoryStore
    let admission: Admission
    let configuration: ServerConfiguration

    func register(on router: Router<BasicRequestContext>) {
        defer { router.add(middleware: UnroutedAnswer(routes: router.routes)) }
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: presence.counters.metrics.render(presence: presence, watchers: presence.counters.openWatchSockets))))
        }
        router.get("/healthz") { _, _ in
            jsonResponse(.object([("status", .string(presence.isStopping ? "stopping" : "ok"))]))
        }
        // Reached only when the request was not upgraded: a refusal or a plain GET.
        router.get("/v1/watch") { request, _ -> Response in
            if case .failure(let refusal) = admission.admitWatch(uri: request.uri.description, remote: nil, spend: false) { throw APIError(refusal) }
            throw APIError(status: 426, code: "upgrade_required", message: "GET /v1/watch is a WebSocket endpoint; send the upgrade headers")
        }
        router.get("/v1/agent") { request, _ -> Response in
            let uri = request.uri.description
            // Asking is free: an agent learning why its upgrade was refused spends no handshake.
            switch admission.admit(
                uri: uri, authorization: request.headers[.authorization], subprotocols: request.headers[.secWebSocketProtocol], remote: nil, spend: false)
            {
            case .failure(let refusal):
                throw APIError(refusal)
            case .success:
                throw APIError(status: 426, code: "upgrade_required", message: "GET /v1/agent is a WebSocket endpoint; send the upgrade headers")
            }
        }
        router.get("/v1/summary") { _, _ -> Response in
            let counts = presence.countsByState()
            let snapshot = presence.counters.snapshot
            return jsonResponse(
                .object([
                    ("agents", .object(PresenceState.allCases.map { ($0.rawValue, .int(Int64(counts[$0] ?? 0))) })),
                    ("total", .int(Int64(counts.values.reduce(0, +)))),
                    ("connections", .int(Int64(presence.connectionCount))),
                    ("heartbeats_per_second", .number((presence.counters.heartbeatsPerSecond * 10).rounded() / 10)),
                    ("heartbeats_total", .int(Int64(presence.counters.totalHeartbeats))),
                    ("watchers", .int(Int64(presence.counters.openWatchSockets))),
                    ("last_transition_id", .int(hub.lastID)),
                    ("refusals", .object(snapshot.refusals.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })),
                    ("violations", .object(snapshot.violations.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) })),
                    ("server_time", .time(presence.clock.now())),
                ]))
        }
        router.get("/v1/events") { request, _ -> Response in
            let after = try self.intParameter(request, "after", in: 0...Int64.max, default: 0)
            let limit = try self.intParameter(request, "limit", in: 1...10_000, default: 1000)
            let rows = try await read { store in try store.transitions(agent: nil, after: after, limit: Int(limit)) }
            let next = rows.last?.id ?? after
            return jsonResponse(.object([("events", .array(rows.map(\.json))), ("next_cursor", .int(next))]))
        }
        router.get("/v1/agents") { request, _ -> Response in
            try await self.listAgents(request)
        }
        router.get("/v1/agents/{id}") { request, context -> Response in
            let id = try context.parameters.require("id")
            return try await self.agentDetail(id)
        }
        router.post("/v1/agents") { request, context -> Response in
            try await self.register(request, context)
        }
        router.delete("/v1/agents/{id}") { request, context -> Response in
            try await self.remove(try context.parameters.require("id"), request, context)
        }
        router.post("/v1/agents/{id}/kick") { request, context -> Response in
            try await self.kick(try context.parameters.require("id"), request, context)
        }
        router.get("/v1/agents/{id}/uptime") { request, context -> Response in
            let id = try context.parameters.require("id")
            return try await self.uptime(id, request: request)
        }
        router.get("/v1/agents/{id}/transitions") { request, context -> Response in
            let id = try context.parameters.require("id")
            return try await self.agentTransitions(id, request: request)
        }
        router.get("/v1/agents/{id}/sessions") { request, context -> Response in
            let id = try context.parameters.require("id")
            return try await self.agentSessions(id, request: request)
        }
    }

    // MARK: Admin

    /// Admin operations need the admin token; without one configured, only loopback clients in
    /// open mode may use them.
    ///
    /// A browser sends `Origin` with every cross-site request; one whose origin is not this
    /// server is refused, so a web page cannot drive the admin API of an open-mode server on
    /// the operator's machine.
    func requireAdmin(_ request: Request, _ context: BasicRequestContext) throws {
        if let origin = request.headers[.origin], !Self.isSameOrigin(origin, host: request.head.authority) {
            presence.counters.refused("cross_origin")
            throw APIError(status: 403, code: "cross_origin", message: "admin operations are not accepted from another site's page (Origin \(TerminalText.escaped(String(origin.prefix(100)))))")
        }
        if let admin = configuration.adminToken {
            let presented = request.headers[.authorization].flatMap { header -> String? in
                let parts = header.split(separator: " ", maxSplits: 1)
                return parts.count == 2 && parts[0].lowercased() == "bearer" ? String(parts[1]) : nil
            }
            guard let presented, AgentToken.constantTimeEquals(AgentToken.hash(presented), AgentToken.hash(admin)) else {
                presence.counters.refused("admin_unauthorized")
                throw APIError(status: 401, code: "unauthorized", message: "admin operations need Authorization: Bearer <admin token>")
            }
            return
        }
        guard configuration.openMode, configuration.isLoopbackOnly else {
            throw APIError(status: 403, code: "forbidden", message: "set ROLLCALL_ADMIN_TOKEN on the server to allow admin operations")
        }
        // Without a token, the request must also name this machine: a page that rebinds its own
        // name to 127.0.0.1 sends its own name as Host (and a matching Origin).
        guard Self.namesLoopback(request.head.authority) else {
            presence.counters.refused("foreign_host")
            throw APIError(
                status: 403, code: "forbidden",
                message: "without an admin token, admin operations must be addressed to 127.0.0.1, [::1] or localhost")
        }
    }

    /// Whether an authority (`host[:port]`) names this machine literally: `localhost`, `::1` or
    /// an address in 127.0.0.0/8. Never resolved: the point is what the client asked for.
    static func namesLoopback(_ authority: String?) -> Bool {
        guard let authority else { return false }
        let host: Substring
        if authority.hasPrefix("["), let end = authority.firstIndex(of: "]") {
            host = authority[authority.index(after: authority.startIndex)..<end]
        } else {
            host = authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        }
        if host.lowercased() == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { UInt8($0) != nil } && octets.first == "127"
    }

    /// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to.
    static func isSameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, let schemeEnd = origin.range(of: "://") else { return false }
        return origin[schemeEnd.upperBound...].lowercased() == host.lowercased()
    }

    /// Runs a history read on the database's threads.
    func read<T: Sendable>(_ body: @escaping @Sendable (any HistoryStore) throws -> T) async throws -> T {
        let store = self.store
        do {
            return try await DatabaseThreads.shared.read { try body(store) }
        } catch let unavailable as HistoryUnavailable {
            presence.logger.warning("history read failed", metadata: ["cause": "\(unavailable)"])
            presence.counters.metrics.historyReadFailed()
            throw APIError(
                status: 503, code: "history_unavailable", message: "the history database does not answer; the live state is still served by /v1/summary and /v1/watch",
                retryAfter: 5)
        }
    }

    /// Runs a history write (registration, revocation) on the writer's thread.
    func write<T: Sendable>(_ body: @escaping @Sendable (any HistoryStore) throws -> T) async throws -> T {
        let store = self.store
        return try await DatabaseThreads.shared.write { try body(store) }
    }

    func register(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try requireAdmin(request, context)
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: 16 * 1024)
        } catch {
            throw APIError(status: 413, code: "too_large", message: "the registration body must be at most 16 KiB")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(body.readableBytesView)
        } catch {
            throw APIError(status: 400, code: "bad_body", message: "the body must be JSON like {\"id\":\"web-01\",\"labels\":{\"env\":\"prod\"}}")
        }
        guard let rawID = json["id"]?.stringValue else {
            throw APIError(status: 400, code: "missing_id", message: "the body needs an \"id\"")
        }
        if let problem = AgentID.validationError(rawID) { throw APIError(status: 400, code: "bad_id", message: problem) }
        var labels: [String: String] = [:]
        if case .object(let members)? = json["labels"] {
            for (k, v) in members {
                guard let s = v.stringValue else {
                    throw APIError(status: 400, code: "bad_parameter", message: "label '\(TerminalText.escaped(String(k.prefix(64))))' must be a string")
                }
                labels[k] = s
            }
        }
        let token = AgentToken.generate()
        let hash = AgentToken.hash(token)
        let now = presence.clock.now()
        let fixedLabels = labels
        guard try await write({ try $0.register(agent: rawID, tokenHash: hash, labels: fixedLabels, now: now) }) else {
            throw APIError(status: 409, code: "exists", message: "agent '\(rawID)' is already registered; DELETE /v1/agents/\(rawID) first to issue a new token")
        }
        let id = AgentID(rawID)!
        admission.setCredential(Credential(tokenHash: hash, disabled: false), for: id)
        // Known (offline) before it first connects, in the summary, the listing and snapshots.
        if presence.registered(id, owned: !store.isShared) { hub.seed(id, state: .offline, since: now) }
        try await tellNodes(.credentials(id))
        presence.logger.info("agent registered", metadata: ["agent": "\(rawID)"])
        return jsonResponse(
            .object([("id", .string(rawID)), ("token", .string(token)), ("labels", .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))]),
            status: .created)
    }

    func remove(_ id: String, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try requireAdmin(request, context)
        _ = try await requireAgent(id)
        try await write { try $0.revoke(agent: id) }
        let agent = AgentID(id)!
        admission.setCredential(Credential(tokenHash: nil, disabled: true), for: agent)
        let wasConnected = try await endAnywhere(agent, removed: true)
        presence.logger.info("agent removed", metadata: ["agent": "\(id)", "connected": "\(wasConnected)"])
        return jsonResponse(.object([("id", .string(id)), ("removed", .bool(true)), ("was_connected", .bool(wasConnected))]))
    }

    func kick(_ id: String, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        try requireAdmin(request, context)
        _ = try await requireAgent(id)
        let wasConnected = try await endAnywhere(AgentID(id)!, removed: false)
        presence.logger.info("agent kicked", metadata: ["agent": "\(id)", "connected": "\(wasConnected)"])
        return jsonResponse(.object([("id", .string(id)), ("kicked", .bool(true)), ("was_connected", .bool(wasConnected))]))
    }

    /// Ends an agent's presence here, or, when another node owns it, on that node (told through
    /// the database). Returns whether it was connected (to any node).
    func endAnywhere(_ agent: AgentID, removed: Bool) async throws -> Bool {
        if !store.isShared || presence.owns(agent) {
            let wasConnected = presence.end(agent, removed: removed)
            // Told to every node all the same: another may have taken the agent a moment ago.
            if store.isShared { try await tellNodes(removed ? .remove(agent) : .kick(agent)) }
            return wasConnected
        }
        let open = try await read { try $0.sessions(agent: agent.rawValue, before: nil, limit: 1).first.map { $0.endedAt == nil } ?? false }
        try await tellNodes(removed ? .remove(agent) : .kick(agent))
        return open
    }

    /// Tells the other nodes (several nodes only).
    func tellNodes(_ command: NodeCommand) async throws {
        guard store.isShared else { return }
        try await read { try $0.tellNodes(command) }
    }

    /// The agent's row, or, for an agent the server knows live but whose row the writer has not
    /// committed yet (it was welcomed a moment ago), the row as it will be: an agent is visible
    /// as soon as its `welcome` is sent (spec §6).
    func requireAgent(_ id: String) async throws -> StoredAgent {
        if let row = try await read({ try $0.agent(id) }) { return row }
        if let agentID = AgentID(id), let live = presence.status(of: agentID), let state = live.state {
            return StoredAgent(
                id: id, state: state, stateSince: live.since, firstSeen: live.since, lastSeen: live.lastSignOfLife, labels: "{}",
                hostname: nil, agentVersion: nil, metadata: nil, status: nil, intervalMs: live.intervalMs, timeoutMs: live.timeoutMs,
                tokenHash: nil, disabled: false, lastBootID: nil)
        }
        throw APIError(status: 404, code: "not_found", message: "no agent with id '\(TerminalText.escaped(String(id.prefix(128))))'")
    }

    /// An integer query parameter within `range`, or `fallback` when absent.
    func intParameter(_ request: Request, _ name: String, in range: ClosedRange<Int64>, default fallback: Int64) throws -> Int64 {
        guard let raw = request.uri.queryParameters[Substring(name)] else { return fallback }
        guard let v = Int64(raw), range.contains(v) else {
            throw APIError(status: 400, code: "bad_parameter", message: "\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return v
    }

    /// The `window` parameter as text and milliseconds; `nil` when absent and there is no default.
    ///
    /// 1 to 999,999 of a unit (`ms`, `s`, `m`, `h`, `d`, `w`), as the OpenAPI document's pattern
    /// says; a window reaching before the history (or the epoch) covers all of it.
    func windowParameter(_ request: Request, default defaultWindow: String?) throws -> (text: String, ms: Int64)? {
        guard let window = request.uri.queryParameters["window"].map(String.init) ?? defaultWindow else { return nil }
        let digits = window.prefix { $0.isASCII && $0.isNumber }
        guard (1...6).contains(digits.count), !digits.hasPrefix("0"), let windowMs = DurationText.parseMillis(window), windowMs > 0 else {
            throw APIError(status: 400, code: "bad_parameter", message: "window must be a duration such as 24h, 7d or 30d (1 to 999999 of ms, s, m, h, d or w)")
        }
        return (window, windowMs)
    }

    /// The start of a window ending now, never before the epoch.
    func windowStart(_ windowMs: Int64) -> Millis { max(0, presence.clock.now() - windowMs) }

    func uptime(_ id: String, request: Request) async throws -> Response {
        _ = try await requireAgent(id)
        let (window, windowMs) = try windowParameter(request, default: "24h")!
        let now = presence.clock.now()
        let from = max(0, now - windowMs)
        let (u, days) = try await read { store in
            (
                try store.uptime(agent: id, from: from, to: now, now: now),
                try store.uptimeDaily(agent: id, fromDay: Timestamp.day(from), now: now)
            )
        }
        return jsonResponse(
            .object([
                ("id", .string(id)), ("window", .string(window)), ("from", .time(from)), ("to", .time(now)),
                ("online_ms", .int(u.onlineMs)), ("suspect_ms", .int(u.suspectMs)), ("offline_ms", .int(u.offlineMs)),
                ("unknown_ms", .int(u.unknownMs)), ("uptime_ratio", u.ratio.map { .number($0) } ?? .null),
                ("days", .array(days.map { d in
                    .object([
                        ("day", .string(d.day)), ("online_ms", .int(d.uptime.onlineMs)), ("suspect_ms", .int(d.uptime.suspectMs)),
                        ("offline_ms", .int(d.uptime.offlineMs)), ("unknown_ms", .int(d.uptime.unknownMs)),
                        ("uptime_ratio", d.ratio.map { .number($0) } ?? .null),
                    ])
                })),
            ]))
    }

    func agentTransitions(_ id: String, request: Request) async throws -> Response {
        _ = try await requireAgent(id)
        let after = try intParameter(request, "after", in: 0...Int64.max, default: 0)
        let limit = try intParameter(request, "limit", in: 1...1000, default: 100)
        let before = request.uri.queryParameters["before"] == nil ? nil : try intParameter(request, "before", in: 1...Int64.max, default: Int64.max)
        let window = try windowParameter(request, default: nil)
        let from = window.map { windowStart($0.ms) }
        let rows = try await read { store in
            if from != nil || before != nil {
                return try store.transitions(agent: id, after: after, before: before, effectiveFrom: from ?? Int64.min, limit: Int(limit))
            }
            return try store.transitions(agent: id, after: after, limit: Int(limit))
        }
        let next: JSONValue = rows.count == Int(limit) ? .int(rows.last!.id) : .null
        return jsonResponse(.object([("transitions", .array(rows.map(\.json))), ("next_cursor", next)]))
    }

    func agentSessions(_ id: String, request: Request) async throws -> Response {
        _ = try await requireAgent(id)
        let before = try intParameter(request, "before", in: 1...Int64.max, default: Int64.max)
        let limit = try intParameter(request, "limit", in: 1...1000, default: 50)
        var rows = try await read { try $0.sessions(agent: id, before: before, limit: Int(limit)) }
        // The open session is live before its row is committed: show it from presence.
        if let agentID = AgentID(id), let open = presence.unwrittenSession(of: agentID), open.id < before, !rows.contains(where: { $0.id == open.id }),
            rows.first.map({ $0.id < open.id }) ?? true
        {
            let live = presence.status(of: agentID)
            rows.insert(
                StoredSession(
                    id: open.id, agentID: id, startedAt: open.startedAt, endedAt: nil, endReason: nil, closeCode: nil,
                    remoteAddress: open.remoteAddress, bootID: open.bootID, heartbeats: live?.heartbeats ?? 0,
                    lastSeen: live?.lastSignOfLife, intervalMs: open.intervalMs, timeoutMs: open.timeoutMs, agentRestarted: open.agentRestarted,
                    rttMs: live?.rttMs),
                at: 0)
            if rows.count > Int(limit) { rows.removeLast() }
        }
        let next: JSONValue = rows.count == Int(limit) ? .int(rows.last!.id) : .null
        let items: [JSONValue] = rows.map { s in
            .object([
                ("id", .int(s.id)), ("started_at", .time(s.startedAt)), ("ended_at", .time(s.endedAt)),
                ("duration_ms", .int(s.endedAt.map { $0 - s.startedAt })), ("end_reason", .str(s.endReason)),
                ("close_code", s.closeCode.map { .integer(Int64($0)) } ?? .null), ("remote_addr", .str(s.remoteAddress)),
                ("boot_id", .str(s.bootID)), ("heartbeats", .int(s.heartbeats)), ("last_seen", .time(s.lastSeen)),
                ("interval_ms", .int(s.intervalMs)), ("timeout_ms", .int(s.timeoutMs)),
                ("agent_restarted", s.agentRestarted.map { .bool($0) } ?? .null),
                ("rtt_ms", s.rttMs.map { .number(($0 * 1000).rounded() / 1000) } ?? .null),
            ])
        }
        return jsonResponse(.object([("sessions", .array(items)), ("next_cursor", next)]))
    }

    func listAgents(_ request: Request) async throws -> Response {
        var query = AgentQuery()
        for (name, value) in request.uri.queryParameters {
            let value = String(value)
            switch name {
            case "state":
                guard let state = PresenceState(rawValue: value) else {
                    throw APIError(status: 400, code: "bad_parameter", message: "state must be one of online, suspect, offline, unknown")
                }
                query.state = state
            case "label":
                guard let eq = value.firstIndex(of: "="), eq != value.startIndex else {
                    throw APIError(status: 400, code: "bad_parameter", message: "label must look like key=value")
                }
                query.labels.append((String(value[..<eq]), String(value[value.index(after: eq)...])))
            case "q": query.idPrefix = value
            case "window": continue  // read below
            case "after", "cursor": query.after = value
            case "limit":
                guard let limit = Int(value), (1...1000).contains(limit) else {
                    throw APIError(status: 400, code: "bad_parameter", message: "limit must be an integer from 1 to 1000")
                }
                query.limit = limit
            default: continue
            }
        }
        let window = try windowParameter(request, default: nil)
        let now = presence.clock.now()
        let fixedQuery = query
        // With a window, each agent also carries its uptime and flaps over it: one query per page.
        let (rows, stats) = try await read { store -> ([StoredAgent], [String: FleetStats]) in
            let rows = try store.agents(fixedQuery)
            guard let window, let first = rows.first, let last = rows.last else { return (rows, [:]) }
            return (rows, try store.fleetStats(first: first.id, last: last.id, from: max(0, now - window.ms), now: now))
        }
        var items = rows.map { members(of: $0) }
        if window != nil {
            for i in items.indices {
                let s = stats[rows[i].id] ?? FleetStats()
                items[i].append(("uptime_ratio", s.uptime.ratio.map { .number(($0 * 1_000_000).rounded() / 1_000_000) } ?? .null))
                items[i].append(("flaps", .int(Int64(s.flaps))))
            }
        }
        let next: JSONValue = rows.count == query.limit ? .string(rows.last!.id) : .null
        return jsonResponse(.object([("agents", .array(items.map { .object($0) })), ("next_cursor", next)]))
    }

    func agentDetail(_ id: String) async throws -> Response {
        let row = try await requireAgent(id)
        var members = members(of: row)
        let agentID = AgentID(id)
        let live = agentID.flatMap { presence.status(of: $0) }
        members.append(("first_seen", .time(row.firstSeen)))
        members.append(("hostname", .str(row.hostname)))
        members.append(("agent_version", .str(row.agentVersion)))
        members.append(("metadata", .stored(row.metadata)))
        // The latest status the agent sent, even before the writer's next checkpoint.
        members.append(("status", agentID.flatMap { presence.outbox.pendingStatus(of: $0) } ?? .stored(row.status)))
        members.append(("interval_ms", .int(live?.intervalMs ?? row.intervalMs)))
        members.append(("timeout_ms", .int(live?.timeoutMs ?? row.timeoutMs)))
        if let live, let session = live.sessionID {
            // From the history, or, just after the welcome, from the session not yet written.
            let written = try await read { try $0.sessions(agent: id, before: session + 1, limit: 1).first }.flatMap { $0.id == session ? $0 : nil }
            let unwritten = agentID.flatMap { presence.unwrittenSession(of: $0) }
            members.append(
                ("session",
                 .object([
                    ("id", .int(session)), ("started_at", .time(written?.startedAt ?? unwritten?.startedAt)),
                    ("remote_addr", .str(written?.remoteAddress ?? unwritten?.remoteAddress)),
                    ("boot_id", .str(written?.bootID ?? unwritten?.bootID)),
                    ("heartbeats", .int(live.heartbeats)),
                 ])))
        } else {
            members.append(("session", .null))
        }
        let now = presence.clock.now()
        var suspicion: [(String, JSONValue)] = []
        let liveness = presence.livenessConfiguration
        if let live {
            let silent = max(0, now - live.lastSeen)
            if case .phiAccrual(let threshold) = liveness.detector, let estimate = live.estimate, estimate.isReady {
                let floor = liveness.minStddevMs(intervalMs: live.intervalMs)
                let phi = estimate.phi(elapsedMs: Double(silent), minStddevMs: floor)
                suspicion.append(("detector", .string("phi_accrual")))
                // Past what a double can say the suspicion is certain: null, never a string.
                suspicion.append(("phi", phi.isFinite ? .number((phi * 1000).rounded() / 1000) : .null))
                suspicion.append(("threshold", .number(threshold)))
                suspicion.append(("mean_interval_ms", .number(estimate.meanMs.rounded())))
                suspicion.append(("stddev_ms", .number(estimate.stddevMs(floor: floor).rounded())))
            } else {
                suspicion.append(("detector", .string("fixed")))
                suspicion.append(("slack", .number(liveness.slack)))
            }
            suspicion.append(("silent_ms", .int(silent)))
            suspicion.append(("suspect_at", .time(live.suspectAt)))
        }
        members.append(("suspicion", .object(suspicion)))
        members.append(("offline_at", .time(live?.offlineAt)))
        members.append(("skew_ms", live?.skewMs.map { .number($0.rounded()) } ?? .null))
        return jsonResponse(.object(members))
    }

    func agentSummary(_ row: StoredAgent) -> JSONValue { .object(members(of: row)) }

    /// The fields every agent listing carries; live engine state wins over the stored row.
    func members(of row: StoredAgent) -> [(String, JSONValue)] {
        let live = AgentID(row.id).flatMap { presence.status(of: $0) }
        let state = live?.state ?? row.state
        return [
            ("id", .string(row.id)),
            ("state", .string(state.rawValue)),
            ("since", .time(live?.state != nil ? live!.since : row.stateSince)),
            ("last_seen", .time(max(live?.lastSignOfLife ?? 0, row.lastSeen ?? 0) == 0 ? nil : max(live?.lastSignOfLife ?? 0, row.lastSeen ?? 0))),
            ("labels", .stored(row.labels)),
            ("rtt_ms", live?.rttMs.map { .number(($0 * 1000).rounded() / 1000) } ?? .null),
        ]
    }
}
