import NIOCore
import RollcallCore

/// A server address as the operator typed it (`ws://[::1]:7777`, `https://10.0.0.5:7777/`,
/// `wss://monitor.example`), parsed by RFC 3986's grammar rather than by splitting at colons, so IPv6 literals, default ports and paths come out right in every client.
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
    ///
    /// The grammar is RFC 3986's `scheme "://" authority path-abempty [ "?" query ]`, narrowed to
    /// what a client can connect to: the host is a name, an IPv4 literal or a bracketed IPv6
    /// literal (with `%25zone`), the port is 1–65535, and there is no userinfo or fragment. The
    /// parser is written out here rather than taken from Foundation because the agent links no
    /// Foundation at all (its footprint is part of every monitored machine's bill); the cases it
    /// decides are pinned in ServerURLTests.
    public init(parsing text: String, schemes: [Scheme]) throws(Problem) {
        let example = "\(schemes.first?.rawValue ?? "http")://127.0.0.1:7777"
        let allowed = schemes.map { "\($0.rawValue)://" }.joined(separator: " or ")
        // The text as typed, quoted and with control characters escaped: it is echoed to terminals.
        let shown = "'\(TerminalText.escaped(text))'"
        let notAURL = Problem(
            description: "\(shown) is not a URL; expected e.g. \(example) (IPv6: \(schemes.first?.rawValue ?? "http")://[::1]:7777)")
        let bytes = Array(text.utf8)
        guard let separator = Self.find(Array("://".utf8), in: bytes) else {
            throw Problem(description: "the server URL must start with \(allowed), e.g. \(example)")
        }
        guard let scheme = Scheme(rawValue: String(decoding: bytes[..<separator], as: UTF8.self).lowercased()), schemes.contains(scheme) else {
            throw Problem(description: "the server URL must start with \(allowed), e.g. \(example)")
        }
        var rest = bytes[(separator + 3)...]
        let authorityEnd = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]
        if authority.contains(UInt8(ascii: "@")) {
            throw Problem(description: "the server URL must not carry a user or password; pass the token by its option or variable")
        }
        // Host and the port's text, IPv6 literals taken out of their brackets.
        var host: String
        var portText: ArraySlice<UInt8>?
        if authority.first == UInt8(ascii: "[") {
            guard let close = authority.firstIndex(of: UInt8(ascii: "]")) else { throw notAURL }
            // A zone id is written `%25eth0` in a URL (RFC 6874) and means `%eth0`.
            host = Self.decodingZone(authority[(authority.startIndex + 1)..<close])
            let after = authority[(close + 1)...]
            if !after.isEmpty {
                guard after.first == UInt8(ascii: ":") else { throw notAURL }
                portText = after.dropFirst()
            }
            // An IPv6 address, optionally with a zone of letters, digits and `._~-` (RFC 6874).
            let parts = host.split(separator: "%", maxSplits: 1, omittingEmptySubsequences: false)
            let zoneIsValid = parts.count == 1 || (!parts[1].isEmpty && parts[1].utf8.allSatisfy { Self.zoneBytes.contains($0) })
            guard parts[0].utf8.contains(UInt8(ascii: ":")), (try? SocketAddress(ipAddress: String(parts[0]), port: 0)) != nil, zoneIsValid else {
                throw Problem(description: "the host of \(shown) is not a host name or an IP address")
            }
        } else {
            let colon = authority.lastIndex(of: UInt8(ascii: ":"))
            host = String(decoding: authority[..<(colon ?? authority.endIndex)], as: UTF8.self)
            portText = colon.map { authority[($0 + 1)...] }
            if host.isEmpty { throw Problem(description: "the server URL has no host, e.g. \(example)") }
            // A host is a name of letters, digits, dots, hyphens and underscores, or an IPv4
            // literal: a `%2F` or `%00` must never turn into another host further down.
            guard host.utf8.allSatisfy({ Self.hostNameBytes.contains($0) }) else {
                throw Problem(description: "the host of \(shown) is not a host name or an IP address")
            }
            // Digits and dots only is meant as an IPv4 address, and must be one: `999.1.1.1` or
            // `2130706433` would otherwise go to DNS or to glibc's legacy number forms.
            if host.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                (try? SocketAddress(ipAddress: host, port: 0)) == nil
            {
                throw Problem(description: "the host of \(shown) is not a valid IPv4 address")
            }
        }
        if host.isEmpty { throw Problem(description: "the server URL has no host, e.g. \(example)") }
        var port: Int?
        if let portText {
            // Digits only, read without arithmetic that could overflow: `:99999999999999999999`
            // is refused, not wrapped or quietly turned into the default.
            guard portText.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { throw notAURL }
            guard (1...5).contains(portText.count), let value = Int(String(decoding: portText, as: UTF8.self)), (1...65535).contains(value) else {
                throw Problem(description: "the port of \(shown) must be between 1 and 65535")
            }
            port = value
        }
        if rest.contains(UInt8(ascii: "#")) {
            throw Problem(description: "the server URL must not have a #fragment")
        }
        let queryStart = rest.firstIndex(of: UInt8(ascii: "?"))
        let pathBytes = rest[..<(queryStart ?? rest.endIndex)]
        let queryBytes = queryStart.map { rest[($0 + 1)...] }
        guard pathBytes.allSatisfy({ Self.pathBytes.contains($0) }), queryBytes?.allSatisfy({ Self.queryBytes.contains($0) }) ?? true,
            Self.percentEscapesAreWellFormed(rest)
        else { throw notAURL }
        var path = String(decoding: pathBytes, as: UTF8.self)
        while path.hasSuffix("/") { path.removeLast() }
        self.init(scheme: scheme, host: host, port: port, path: path, query: queryBytes.map { String(decoding: $0, as: UTF8.self) })
    }

    private static let hostNameBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_".utf8)
    private static let zoneBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-".utf8)
    /// RFC 3986 `pchar` and `/`: unreserved, sub-delims, `:`, `@` and percent escapes.
    private static let pathBytes = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/".utf8)
    private static let queryBytes = pathBytes.union("?".utf8)

    /// `fe80::1%25eth0` → `fe80::1%eth0` (RFC 6874).
    static func decodingZone(_ bytes: ArraySlice<UInt8>) -> String {
        var out: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            out.append(bytes[index])
            let isEscapedPercent =
                bytes[index] == UInt8(ascii: "%") && index + 2 < bytes.endIndex && bytes[index + 1] == UInt8(ascii: "2") && bytes[index + 2] == UInt8(ascii: "5")
            index += isEscapedPercent ? 3 : 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `fe80::1%eth0` → `fe80::1%25eth0`, for the `Host` header and messages.
    static func encodingZone(_ host: String) -> String {
        var out: [UInt8] = []
        for byte in host.utf8 {
            out.append(byte)
            if byte == UInt8(ascii: "%") { out += [UInt8(ascii: "2"), UInt8(ascii: "5")] }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }

    /// Every `%` is followed by two hex digits.
    private static func percentEscapesAreWellFormed(_ bytes: ArraySlice<UInt8>) -> Bool {
        let hex = Set("0123456789abcdefABCDEF".utf8)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if bytes[index] == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex,
                    hex.contains(bytes[index + 1]), hex.contains(bytes[index + 2])
                else { return false }
                index += 3
            } else {
                index += 1
            }
        }
        return true
    }

    /// Whether `host` is an IPv4 or IPv6 literal. TLS sends no SNI for one (RFC 6066 forbids it)
    /// and checks the certificate's IP address entries against the peer instead.
    public var hostIsAddress: Bool { (try? SocketAddress(ipAddress: host, port: 0)) != nil }

    /// `host:port` for the `Host` header and for messages, with IPv6 in brackets and the port
    /// left out when it is the scheme's default.
    public var authority: String {
        let bracketed = host.utf8.contains(UInt8(ascii: ":")) ? "[\(Self.encodingZone(host))]" : host
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
