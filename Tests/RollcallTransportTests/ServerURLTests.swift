import RollcallTransport
import Testing

@Suite struct ServerURLTests {
    func parse(_ text: String, _ schemes: [ServerURL.Scheme] = [.ws, .wss]) throws(ServerURL.Problem) -> ServerURL {
        try ServerURL(parsing: text, schemes: schemes)
    }

    @Test func takesAnIPv6LiteralOutOfItsBracketsAndPutsThemBackForTheHostHeader() throws {
        let url = try parse("ws://[::1]:7850")
        #expect(url.host == "::1")
        #expect(url.port == 7850)
        #expect(url.hostIsAddress)
        #expect(url.authority == "[::1]:7850")
        #expect(url.requestTarget == "/")
        #expect(url.description == "ws://[::1]:7850")
    }

    @Test func fillsInTheSchemesDefaultPortAndLeavesItOutOfTheAuthority() throws {
        let url = try parse("wss://monitor.example/")
        #expect(url.port == 443)
        #expect(url.authority == "monitor.example")
        #expect(!url.hostIsAddress)
        #expect(try parse("http://10.0.0.5", [.http]).port == 80)
        #expect(try parse("https://10.0.0.5:7777", [.https]).authority == "10.0.0.5:7777")
    }

    @Test func keepsThePathWithoutTrailingSlashesAndTheQueryAsTyped() throws {
        let url = try parse("ws://127.0.0.1:7777/base//?x=1")
        #expect(url.path == "/base")
        #expect(url.query == "x=1")
        #expect(url.requestTarget == "/base?x=1")
    }

    @Test func readsTheSchemeWhateverItsCase() throws {
        #expect(try parse("HTTP://127.0.0.1:7777", [.http]).scheme == .http)
        #expect(try parse("WsS://127.0.0.1", [.wss]).scheme == .wss)
    }

    @Test(arguments: [
        ("127.0.0.1:7777", "must start with ws:// or wss://"),
        ("http://127.0.0.1:7777", "must start with ws:// or wss://"),
        ("ws://", "has no host"),
        ("ws://:7777", "has no host"),
        ("ws://[::1", "is not a URL"),
        ("ws://127.0.0.1:0", "between 1 and 65535"),
        ("ws://127.0.0.1:70000", "between 1 and 65535"),
        ("ws://user:pw@127.0.0.1:7777", "must not carry a user or password"),
        ("ws://127.0.0.1:7777/#x", "#fragment"),
        ("ws://127.0.0.1:77a", "is not a URL"),
        ("ws://10.0.0.5:99999999999999999999", "between 1 and 65535"),
        ("ws://10.0.0.5:", "between 1 and 65535"),
        ("ws://evil.example%2F.good.example:7777", "not a host name or an IP address"),
        ("ws://evil%00.example", "not a host name or an IP address"),
        ("ws://[1:2]:7777", "not a host name or an IP address"),
        ("ws://[:::::]", "not a host name or an IP address"),
        ("ws://[abc:xyz]", "not a host name or an IP address"),
        ("ws://[::1%25]", "not a host name or an IP address"),
        ("ws://[::1%25%0a]", "not a host name or an IP address"),
        ("ws://999.1.1.1", "not a valid IPv4 address"),
        ("ws://2130706433", "not a valid IPv4 address"),
        ("ws://1.2.3.4.5", "not a valid IPv4 address"),
        ("ws://h/\u{1B}[2J", "is not a URL"),
    ])
    func refusesWhatNoClientCanConnectToWithASentence(text: String, says: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(says), "\(text): \(error.description)")
        }
    }

    @Test func takesAScopedIPv6LiteralAndWritesItsZoneBackEscaped() throws {
        let url = try parse("ws://[fe80::1%25eth0]:7777")
        #expect(url.host == "fe80::1%eth0")
        #expect(url.authority == "[fe80::1%25eth0]:7777")
        #expect(try parse("ws://[::FFFF:127.0.0.1]").host == "::FFFF:127.0.0.1")
    }

    @Test func neverEchoesControlCharactersOfWhatWasTyped() {
        do {
            _ = try parse("ws://h\u{1B}]0;x\u{07}:7777")
            Issue.record("accepted")
        } catch {
            #expect(!error.description.contains("\u{1B}") && !error.description.contains("\u{07}"))
        }
    }

    @Test func mapsBetweenWebSocketAndHTTPSchemesKeepingTLS() {
        #expect(ServerURL.Scheme.https.webSocket == .wss)
        #expect(ServerURL.Scheme.http.webSocket == .ws)
        #expect(ServerURL.Scheme.wss.http == .https)
        #expect(ServerURL.Scheme.ws.webSocket == .ws)
    }
}
