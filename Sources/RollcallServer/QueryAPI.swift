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
    static func int(_ v: Int64?) -> JSONValue { v.map { .number(Double($0)) } ?? .null }
    static func str(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }
    /// Parses stored JSON text, or `null`.
    static func stored(_ text: String?) -> JSONValue {
        guard let text, let v = try? JSONParser.parse(text) else { return .null }
        return v
    }
}

/// The query API routes (spec §6).
struct QueryAPI: Sendable {
    let gateway: Gateway
    let store: any HistoryStore
    let admission: Admission

    func register(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in
            jsonResponse(.object([("status", .string(gateway.isStopping ? "stopping" : "ok"))]))
        }
        // Reached only when the request was not upgraded: a refusal or a plain GET.
        router.get("/v1/agent") { request, _ -> Response in
            let uri = request.uri.description
            switch admission.admit(uri: uri, authorization: request.headers[.authorization], subprotocols: request.headers[.secWebSocketProtocol]) {
            case .failure(let refusal):
                gateway.logger.notice("handshake refused", metadata: ["uri": "\(uri.prefix(200))", "status": "\(refusal.status)", "cause": "\(refusal.code)"])
                throw APIError(refusal)
            case .success:
                throw APIError(status: 426, code: "upgrade_required", message: "GET /v1/agent is a WebSocket endpoint; send the upgrade headers")
            }
        }
        router.get("/v1/agents") { request, _ -> Response in
            try self.listAgents(request)
        }
        router.get("/v1/agents/{id}") { request, context -> Response in
            let id = try context.parameters.require("id")
            return try self.agentDetail(id)
        }
    }

    func listAgents(_ request: Request) throws -> Response {
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
            case "after", "cursor": query.after = value
            case "limit":
                guard let limit = Int(value), (1...1000).contains(limit) else {
                    throw APIError(status: 400, code: "bad_parameter", message: "limit must be an integer from 1 to 1000")
                }
                query.limit = limit
            default: continue
            }
        }
        let rows = try store.agents(query)
        let items = rows.map { agentSummary($0) }
        let next: JSONValue = rows.count == query.limit ? .string(rows.last!.id) : .null
        return jsonResponse(.object([("agents", .array(items)), ("next_cursor", next)]))
    }

    func agentDetail(_ id: String) throws -> Response {
        guard let row = try store.agent(id) else {
            throw APIError(status: 404, code: "not_found", message: "no agent with id '\(id.prefix(128))'")
        }
        var members = members(of: row)
        let live = AgentID(id).flatMap { gateway.status(of: $0) }
        members.append(("first_seen", .time(row.firstSeen)))
        members.append(("hostname", .str(row.hostname)))
        members.append(("agent_version", .str(row.agentVersion)))
        members.append(("metadata", .stored(row.metadata)))
        members.append(("status", .stored(row.status)))
        members.append(("interval_ms", .int(live?.intervalMs ?? row.intervalMs)))
        members.append(("timeout_ms", .int(live?.timeoutMs ?? row.timeoutMs)))
        if let live, let session = live.sessionID {
            let stored = try store.sessions(agent: id, before: session + 1, limit: 1).first
            members.append(
                ("session",
                 .object([
                    ("id", .string(String(session))), ("started_at", .time(stored?.startedAt)),
                    ("remote_addr", .str(stored?.remoteAddress)), ("boot_id", .str(stored?.bootID)),
                    ("heartbeats", .int(live.heartbeats)),
                 ])))
        } else {
            members.append(("session", .null))
        }
        let now = gateway.clock.now()
        var suspicion: [(String, JSONValue)] = [("detector", .string("fixed_timeout"))]
        if let live {
            suspicion.append(("silent_ms", .int(max(0, now - live.lastSeen))))
            suspicion.append(("suspect_at", .time(live.suspectAt)))
        }
        members.append(("suspicion", .object(suspicion)))
        members.append(("offline_at", .time(live?.offlineAt)))
        return jsonResponse(.object(members))
    }

    func agentSummary(_ row: StoredAgent) -> JSONValue { .object(members(of: row)) }

    /// The fields every agent listing carries; live engine state wins over the stored row.
    func members(of row: StoredAgent) -> [(String, JSONValue)] {
        let live = AgentID(row.id).flatMap { gateway.status(of: $0) }
        let state = live?.state ?? row.state
        return [
            ("id", .string(row.id)),
            ("state", .string(state.rawValue)),
            ("since", .time(live?.state != nil ? live!.since : row.stateSince)),
            ("last_seen", .time(max(live?.lastSeen ?? 0, row.lastSeen ?? 0) == 0 ? nil : max(live?.lastSeen ?? 0, row.lastSeen ?? 0))),
            ("labels", .stored(row.labels)),
            ("rtt_ms", .null),
        ]
    }
}
