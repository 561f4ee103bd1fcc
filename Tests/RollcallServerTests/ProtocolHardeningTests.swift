import Foundation
import HummingbirdWSClient
import NIOCore
import NIOWebSocket
import RollcallCore
import RollcallServer
import RollcallTesting
import Testing

/// Every refusal before the upgrade and every close code after it, against the real server.
@Suite(.timeLimit(.minutes(1))) struct ProtocolHardeningTests {
    static let admin = "admin-secret"

    func withTokenServer<T: Sendable>(_ configure: @escaping @Sendable (inout ServerConfiguration) -> Void = { _ in }, _ body: @Sendable (LiveServer) async throws -> T) async throws -> T {
        try await LiveServer.with(configure: { c in
            c.adminToken = Self.admin
            c.openMode = false
            configure(&c)
        }, body)
    }

    func register(_ server: LiveServer, _ id: String) async throws -> String {
        let body = #"{"id":"\#(id)","labels":{"env":"test"}}"#
        let response = try await rawHTTP(
            port: server.port,
            "POST /v1/agents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \(Self.admin)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        #expect(response.status == 201)
        return try #require(try JSONParser.parse(response.body)["token"]?.stringValue)
    }

    func upgrade(_ server: LiveServer, _ query: String, token: String? = nil) async throws -> RawWebSocket {
        try await RawWebSocket.connect(port: server.port, path: "/v1/agent?\(query)", headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:])
    }

    @Test func tokensAreCheckedBeforeTheUpgrade() async throws {
        try await withTokenServer { server in
            let token = try await register(server, "sec-1")
            let other = try await register(server, "sec-2")
            #expect(try await upgrade(server, "id=sec-1").status == 401)
            #expect(try await upgrade(server, "id=sec-1", token: "rc_wrong").status == 401)
            #expect(try await upgrade(server, "id=sec-1", token: other).status == 403, "another agent's token")
            let refused = try await httpGET(port: server.port, "/v1/agent?id=sec-1", headers: ["Authorization": "Bearer rc_wrong"])
            #expect(refused.status == 401)
            #expect(try JSONParser.parse(refused.body)["error"]?.stringValue == "bad_token")
            let ok = try await upgrade(server, "id=sec-1", token: token)
            #expect(ok.status == 101)
            #expect(try await ok.next()?.text.contains("welcome") == true)
            try await ok.sendText(#"{"type":"heartbeat","seq":1}"#)
            #expect(try await ok.next()?.text.contains(#""seq":1"#) == true)
        }
    }

    @Test func adminOperationsNeedTheAdminTokenAndRegisterOnce() async throws {
        try await withTokenServer { server in
            let body = #"{"id":"adm-1"}"#
            let anonymous = try await rawHTTP(
                port: server.port, "POST /v1/agents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(anonymous.status == 401)
            _ = try await register(server, "adm-1")
            let again = try await rawHTTP(
                port: server.port,
                "POST /v1/agents HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \(Self.admin)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            #expect(again.status == 409)
            let stored = try sqlite3(server.databasePath, "SELECT length(token_hash) FROM agents WHERE id = 'adm-1'")
            #expect(stored == ["64"], "only the SHA-256 hash is stored")
        }
    }

    @Test func kickClosesWith4002AndRemoveWith4003AndRevokesTheToken() async throws {
        try await withTokenServer { server in
            let token = try await register(server, "op-1")
            let ws = try await upgrade(server, "id=op-1", token: token)
            _ = try await ws.next()
            let kick = try await rawHTTP(port: server.port, "POST /v1/agents/op-1/kick HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \(Self.admin)\r\nContent-Length: 0\r\n\r\n")
            #expect(kick.status == 200)
            #expect(try await ws.closeFrame()?.closeCode == 4002)
            try await server.transitions.waitFor(agent: "op-1", to: .offline, reason: .kicked)

            let back = try await upgrade(server, "id=op-1", token: token)
            _ = try await back.next()
            let remove = try await rawHTTP(port: server.port, "DELETE /v1/agents/op-1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \(Self.admin)\r\n\r\n")
            #expect(remove.status == 200)
            #expect(try await back.closeFrame()?.closeCode == 4003)
            try await server.transitions.waitFor(agent: "op-1", to: .offline, reason: .removed)
            #expect(try await upgrade(server, "id=op-1", token: token).status == 403, "a removed agent is disabled")
            let missing = try await rawHTTP(port: server.port, "POST /v1/agents/nobody/kick HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \(Self.admin)\r\nContent-Length: 0\r\n\r\n")
            #expect(missing.status == 404)
        }
    }

    @Test func tooManyConnectionsIs429WithRetryAfter() async throws {
        try await LiveServer.with(configure: { $0.limits.maxConnections = 1 }) { server in
            let first = try await upgrade(server, "id=cap-1")
            #expect(first.status == 101)
            let second = try await httpGET(
                port: server.port, "/v1/agent?id=cap-2",
                headers: ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="])
            #expect(second.status == 429)
            #expect(second.header("retry-after") != nil)
            #expect(try JSONParser.parse(second.body)["error"]?.stringValue == "too_many_connections")
        }
    }

    @Test func tooManyHandshakesIs429() async throws {
        try await LiveServer.with(configure: { $0.limits.handshakesPerSecond = 0.001; $0.limits.handshakeBurst = 1 }) { server in
            #expect(try await upgrade(server, "id=rate-1").status == 101)
            let refused = try await upgrade(server, "id=rate-2")
            #expect(refused.status == 429)
        }
    }

    @Test func aStoppingServerAnswers503WithRetryAfter() async throws {
        try await LiveServer.with { server in
            server.presence.stop()
            let refused = try await httpGET(port: server.port, "/v1/agent?id=late-1")
            #expect(refused.status == 503)
            #expect(refused.header("retry-after") == "5")
        }
    }

    /// A bad frame and the close code it earns; shown by name in the test output.
    struct BadFrame: Sendable, CustomTestStringConvertible {
        var name: String
        var payload: [UInt8]
        var opcode: UInt8
        var code: Int
        var testDescription: String { "\(name) → \(code)" }
    }

    @Test(arguments: [
        BadFrame(name: "truncated JSON", payload: Array(#"{"type":"heartbeat","seq":1"#.utf8), opcode: 0x1, code: 1007),
        BadFrame(name: "invalid UTF-8", payload: [0x7B, 0xC3, 0x28, 0x7D], opcode: 0x1, code: 1007),
        BadFrame(name: "unknown type", payload: Array(#"{"type":"teleport"}"#.utf8), opcode: 0x1, code: 1008),
        BadFrame(name: "heartbeat without seq", payload: Array(#"{"type":"heartbeat"}"#.utf8), opcode: 0x1, code: 1008),
        BadFrame(name: "2-byte binary", payload: [0x01, 0x02], opcode: 0x2, code: 1008),
        BadFrame(name: "5,000-byte text", payload: Array(repeating: 0x20, count: 5000), opcode: 0x1, code: 1009),
    ])
    func badFramesCloseWithTheSpecCode(frame: BadFrame) async throws {
        let (payload, opcode, code) = (frame.payload, frame.opcode, frame.code)
        try await LiveServer.with { server in
            let ws = try await upgrade(server, "id=bad-frame")
            _ = try await ws.next()
            try? await ws.send(opcode: opcode, payload: payload)
            let close = try #require(try await ws.closeFrame())
            #expect(close.closeCode == code)
            #expect(!close.closeReason.isEmpty, "the reason names the cause")
            let suspect = try await server.transitions.waitFor(agent: "bad-frame", to: .suspect)
            #expect(suspect.reason == .disconnected)
        }
    }

    @Test func aHeartbeatFloodIsClosedWith1008() async throws {
        try await LiveServer.with { server in
            let ws = try await upgrade(server, "id=flood-1")
            _ = try await ws.next()
            var burst: [UInt8] = []
            for seq in 1...200 { burst += RawWebSocket.encode(opcode: 0x2, payload: WireCodec.encodeBinaryHeartbeat(seq: UInt64(seq))) }
            try? await ws.sendRaw(burst)
            let close = try #require(try await ws.closeFrame())
            #expect(close.closeCode == 1008)
            #expect(close.closeReason.contains("flood"))
            #expect(server.presence.counters.snapshot.violations["flood"] == 1)
        }
    }

    @Test func theServerOffersTheSubprotocolWhenAsked() async throws {
        try await LiveServer.with { server in
            let asked = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=sub-1", headers: ["Sec-WebSocket-Protocol": "chat, rollcall.v1"])
            #expect(asked.status == 101)
            #expect(asked.responseHead.lowercased().contains("sec-websocket-protocol: rollcall.v1"))
            let plain = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=sub-2")
            #expect(plain.status == 101)
            #expect(!plain.responseHead.lowercased().contains("sec-websocket-protocol"))
        }
    }

    @Test func openModeRefusesToListenBeyondLoopbackUnlessToldSo() {
        var configuration = ServerConfiguration()
        configuration.host = "0.0.0.0"
        #expect(configuration.validationError()?.contains("--allow-open-remote") == true)
        configuration.allowOpenBeyondLoopback = true
        #expect(configuration.validationError() == nil)
        configuration.allowOpenBeyondLoopback = false
        configuration.openMode = false
        configuration.adminToken = "x"
        #expect(configuration.validationError() == nil)
    }
}
