import HTTPTypes
import Hummingbird
import RollcallCore

/// What a request the router has no route for gets: 405 with `Allow` when the path exists but
/// not with that method, otherwise 404; both with the JSON error body of the spec and a hint
/// that says where things are (a plain GET from an agent pointed at the wrong path reads it).
///
/// Added after every route, so it wraps only the router's not-found answer, and built from the
/// router's own list of routes, so the two never disagree.
struct UnroutedAnswer<Context: RequestContext>: RouterMiddleware {
    /// Every path the router serves, a parameter standing for one segment, with its methods.
    let routes: [(pattern: [String], methods: [HTTPRequest.Method])]

    init(routes: [Router<Context>.RouteDescription]) {
        var table: [[String]: [HTTPRequest.Method]] = [:]
        for route in routes {
            let pattern = route.path.components.map { $0.description.hasPrefix("{") ? "{}" : $0.description }
            table[pattern, default: []].append(route.method)
        }
        self.routes = table.map { ($0.key, $0.value) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let path = request.uri.path
            let segments = path.split(separator: "/")
            if let route = routes.first(where: { Self.matches($0.pattern, segments) }), !route.methods.contains(request.method) {
                let allow = route.methods.map(\.rawValue).sorted().joined(separator: ", ")
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

    static func matches(_ pattern: [String], _ segments: [Substring]) -> Bool {
        pattern.count == segments.count && zip(pattern, segments).allSatisfy { $0 == "{}" || $0 == $1 }
    }
}
