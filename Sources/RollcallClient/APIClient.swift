import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL
import RollcallCore
import RollcallTransport

/// A small client for the query and admin API, used by the operator commands and `rollcall top`.
///
/// Requests go through async-http-client, which parses IPv6 literals, sends no SNI to an IP
/// address and checks the certificate's IP entries instead.
public struct APIClient: Sendable {
    public let server: ServerURL
    public let token: String?
    /// How long a request may take.
    public let timeout: TimeAmount
    /// Verifies an https server; the system's trust store when `nil`.
    public let tls: TLSConfiguration?

    public init(server: ServerURL, token: String? = nil, timeout: TimeAmount = .seconds(10), tls: TLSConfiguration? = nil) {
        self.server = server
        self.token = token
        self.timeout = timeout
        self.tls = tls
    }

    /// The client for `--server` and `--ca` as typed; throws a sentence saying what to fix.
    public init(baseURL: String, token: String? = nil, timeout: TimeAmount = .seconds(10), caFile: String? = nil) throws {
        let server = try ServerURL(parsing: baseURL, schemes: [.http, .https])
        self.init(server: server, token: token, timeout: timeout, tls: try caFile.map(Self.trusting))
    }

    /// TLS that trusts the PEM certificates in `caFile` (a private CA).
    public static func trusting(caFile: String) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
        } catch {
            throw Failure(status: nil, code: "bad_ca", message: "the CA file \(caFile) cannot be read as PEM certificates")
        }
        return tls
    }

    public struct Failure: Error, CustomStringConvertible {
        public var status: Int?
        public var code: String?
        public var message: String
        public var description: String { message }
    }

    /// Performs a request; a non-2xx answer becomes a ``Failure`` carrying the server's message.
    public func send(_ method: String, _ path: String, body: JSONValue? = nil) async throws -> JSONValue {
        let (pathPart, query) = Self.split(path)
        let url = server.with(path: server.path + pathPart, query: query)
        var request = HTTPClientRequest(url: url.description)
        request.method = HTTPMethod(rawValue: method)
        request.tlsConfiguration = tls
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.body = .bytes(ByteBuffer(string: body.serialized()))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let response: HTTPClientResponse
        do {
            response = try await commandsHTTPClient.execute(request, timeout: timeout)
        } catch {
            throw Failure(status: nil, code: "unreachable", message: Self.unreachable(server, error))
        }
        let status = Int(response.status.code)
        let bytes: ByteBuffer
        do {
            bytes = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw Failure(
                status: status, code: "bad_answer",
                message: "the answer of \(server) broke off or exceeded 64 MiB (\(TerminalText.escaped(String("\(error)".prefix(80)))))")
        }
        let json = (try? JSONParser.parse(bytes.readableBytesView)) ?? .null
        guard (200..<300).contains(status) else {
            throw Failure(
                status: status, code: json["error"]?.stringValue,
                message: json["message"]?.stringValue.map { "\(status): \($0)" } ?? "the server answered \(status)")
        }
        return json
    }

    public func get(_ path: String) async throws -> JSONValue { try await send("GET", path) }

    static func split(_ path: String) -> (String, String?) {
        guard let mark = path.firstIndex(of: "?") else { return (path, nil) }
        return (String(path[..<mark]), String(path[path.index(after: mark)...]))
    }

    /// One sentence for a request that got no answer, saying what to do.
    static func unreachable(_ server: ServerURL, _ error: any Error) -> String {
        let text = "\(error)"
        let start = "start one with `rollcall serve`, or point --server at yours, e.g. --server http://HOST:7777"
        if text.contains("failedToValidateHostname") {
            return "the certificate of \(server) does not name \(server.host): connect with a name or address the certificate lists"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the certificate of \(server) is not signed by a CA this machine trusts: pass --ca with the CA that signed it"
        }
        if text.contains("connectTimeout") || text.contains("deadlineExceeded") {
            return "no answer from \(server) in time: the host may be down, busy, or behind a firewall; \(start)"
        }
        if text.contains("errno: 111") || text.contains("connectionRefused") || text.contains("Connection refused") {
            return "no Rollcall server answers at \(server) (connection refused); \(start)"
        }
        if text.contains("NIOSSL") || text.contains("BoringSSL") {
            return "TLS with \(server) failed (\(TerminalText.escaped(String(text.prefix(120))))); is it an https server?"
        }
        return "no Rollcall server answers at \(server) (\(TerminalText.escaped(String(text.prefix(120))))); \(start)"
    }
}

/// One HTTP client for the process. Unlike `HTTPClient.shared` it does not retry a failed
/// connection until the deadline: a refused port or an untrusted certificate is reported at once,
/// which is what an operator at a prompt wants.
private let commandsHTTPClient: HTTPClient = {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool.retryConnectionEstablishment = false
    configuration.timeout.connect = .seconds(5)
    // The request's deadline ends when the answer's head arrives: a body that trickles is bounded
    // by this read timeout instead.
    configuration.timeout.read = .seconds(10)
    return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
}()
