import HTTPTypes
import Hummingbird
import RollcallCore

/// What a request the router has no route for gets: 405 with `Allow` when the path exists but
/// not with that method, otherwise 404; both with the JSON error body of the spec and a hint
/// that says where things are (a plain GET from an agent pointed at the wrong path reads it).
struct UnroutedAnswer<Context: RequestContext>: RouterMiddleware {
    /// Every path the API serves, `*` standing for one segment, with its methods.
    static var routes: [(pattern: [Substring], methods: [HTTPRequest.Method])] {
        [
            ("/metrics", [.get]), ("/healthz", [.get]), ("/v1/watch", [.get]), ("/v1/agent", [.get]), ("/v1/summary", [.get]),
            ("/v1/events", [.get]), ("/v1/agents", [.get, .post]), ("/v1/agents/*", [.get, .delete]), ("/v1/agents/*/kick", [.post]),
            ("/v1/agents/*/uptime", [.get]), ("/v1/agents/*/transitions", [.get]), ("/v1/agents/*/sessions", [.get]),
        ].map { (path: String, methods: [HTTPRequest.Method]) in (path.split(separator: "/"), methods) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let path = request.uri.path
            let segments = path.split(separator: "/")
            if let route = Self.routes.first(where: { Self.matches($0.pattern, segments) }), !route.methods.contains(request.method) {
                let allow = route.methods.map(\.rawValue).joined(separator: ", ")
                var headers: HTTPFields = [.contentType: "application/json", .allow: allow]
                let body = Refusal(status: 405, code: "method_not_allowed", message: "\(path) answers \(allow)").body
                headers[.contentLength] = String(body.utf8.count)
                return Response(status: .methodNotAllowed, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
            }
            throw APIError(
                status: 404, code: "not_found",
                message: "no endpoint at \(TerminalText.escaped(String(path.prefix(100)))); agents connect to \(HandshakeRequest.path), "
                    + "watchers to \(WatchRequest.path), and the API is under /v1 (docs/openapi.yaml)")
        }
    }

    static func matches(_ pattern: [Substring], _ segments: [Substring]) -> Bool {
        pattern.count == segments.count && zip(pattern, segments).allSatisfy { $0 == "*" || $0 == $1 }
    }
}
