import FoundationEssentials
import NIOCore

/// A server address as the operator typed it (`ws://[::1]:7777`, `https://10.0.0.5:7777/`,
/// `wss://monitor.example`), parsed by Foundation's RFC 3986 URL parser rather than by splitting
/// at colons, so IPv6 literals, default ports and paths come out right in every client.
public struct ServerURL: Sendable, Equatable, CustomStringConvertible {
    public enum Scheme: String, Sendable, CaseIterable {
        case ws, wss, http, https

        public var isTLS: Bool { self == .wss || self == .https }
        public var defaultPort: Int { isTLS ? 443 : 80 }
        /// The same transport in the other protocol: `ws` ↔ `http`, `wss` ↔ `https`.
        public var webSocket: Scheme { self == .http ? .ws : self == .https ? .wss : self }
        public var http: Scheme { self == .ws ? .http : self == .wss ? .https : self }
    }

    /// Why a text is not a usable server URL, as a sentence with an example.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public var scheme: Scheme
    /// The host without brackets: `::1`, `127.0.0.1`, `monitor.example`.
    public var host: String
    public var port: Int
    /// The path without a trailing slash; empty for the root.
    public var path: String
    /// The query without `?`, percent-encoded as typed.
    public var query: String?

    public init(scheme: Scheme, host: String, port: Int? = nil, path: String = "", query: String? = nil) {
        self.scheme = scheme
        self.host = host
        self.port = port ?? scheme.defaultPort
        self.path = path
        self.query = query
    }

    /// Parses `text`, accepting only `schemes` (what the command can speak).
    public init(parsing text: String, schemes: [Scheme]) throws(Problem) {
        let example = "\(schemes.first?.rawValue ?? "http")://127.0.0.1:7777"
        let allowed = schemes.map { "\($0.rawValue)://" }.joined(separator: " or ")
        guard text.contains("://") else {
            throw Problem(description: "the server URL must start with \(allowed), e.g. \(example)")
        }
        guard let url = URL(string: text), let rawScheme = url.scheme else {
            throw Problem(description: "\(text.debugDescription) is not a URL; expected e.g. \(example) (IPv6: \(schemes.first?.rawValue ?? "http")://[::1]:7777)")
        }
        guard let scheme = Scheme(rawValue: rawScheme.lowercased()), schemes.contains(scheme) else {
            throw Problem(description: "the server URL must start with \(allowed), e.g. \(example)")
        }
        guard let host = url.host(percentEncoded: false), !host.isEmpty else {
            throw Problem(description: "the server URL has no host, e.g. \(example)")
        }
        if url.user != nil || url.password != nil {
            throw Problem(description: "the server URL must not carry a user or password; pass the token by its option or variable")
        }
        // Foundation gives no port for digits that overflow an Int: read the port's text itself,
        // so `:99999999999999999999` is refused rather than quietly becoming port 80.
        if let portText = Self.portText(text), !(portText.count <= 5 && (1...65535).contains(Int(portText) ?? 0)) {
            throw Problem(description: "the port of \(text.debugDescription) must be between 1 and 65535")
        }
        // A host is a name of letters, digits, dots, hyphens and underscores, or an IP literal:
        // a decoded `%2F` or `%00` must never turn into another host further down.
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        let isName = !host.isEmpty && host.utf8.allSatisfy { Self.hostNameBytes.contains($0) }
        let isScopedIPv6 = host.contains(":") && host.utf8.allSatisfy { Self.scopedIPv6Bytes.contains($0) }
        guard isAddress || isName || isScopedIPv6 else {
            throw Problem(description: "the host of \(text.debugDescription) is not a host name or an IP address")
        }
        if url.fragment != nil {
            throw Problem(description: "the server URL must not have a #fragment")
        }
        var path = url.path(percentEncoded: true)
        while path.hasSuffix("/") { path.removeLast() }
        self.init(scheme: scheme, host: host, port: url.port, path: path, query: url.query(percentEncoded: true))
    }

    private static let hostNameBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_".utf8)
    private static let scopedIPv6Bytes = Set("0123456789abcdefABCDEF:.%abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-".utf8)

    /// The text after the host's colon in the authority, if there is one.
    static func portText(_ text: String) -> Substring? {
        guard let schemeEnd = text.firstRange(of: "://") else { return nil }
        var authority = text[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        if let bracket = authority.lastIndex(of: "]") { authority = authority[authority.index(after: bracket)...] }
        guard let colon = authority.lastIndex(of: ":") else { return nil }
        return authority[authority.index(after: colon)...]
    }

    /// Whether `host` is an IPv4 or IPv6 literal. TLS sends no SNI for one (RFC 6066 forbids it)
    /// and checks the certificate's IP address entries against the peer instead.
    public var hostIsAddress: Bool { (try? SocketAddress(ipAddress: host, port: 0)) != nil }

    /// `host:port` for the `Host` header and for messages, with IPv6 in brackets and the port
    /// left out when it is the scheme's default.
    public var authority: String {
        let bracketed = host.contains(":") ? "[\(host.replacing("%", with: "%25"))]" : host
        return port == scheme.defaultPort ? bracketed : "\(bracketed):\(port)"
    }

    /// Path and query as sent in the request line.
    public var requestTarget: String { (path.isEmpty ? "/" : path) + (query.map { "?" + $0 } ?? "") }

    public var description: String { "\(scheme.rawValue)://\(authority)\(path)" + (query.map { "?" + $0 } ?? "") }

    /// This server with another path and query (and scheme), e.g. the watch stream of an API URL.
    public func with(scheme: Scheme? = nil, path: String, query: String? = nil) -> ServerURL {
        ServerURL(scheme: scheme ?? self.scheme, host: host, port: port, path: path, query: query)
    }
}
