import Foundation
import HummingbirdWSClient
import NIOCore
import NIOWebSocket
import RollcallCore
@testable import RollcallServer
import RollcallTesting
import Testing

/// The real server on a loopback port with a real SQLite file and real WebSocket clients.
@Suite(.timeLimit(.minutes(1))) struct AgentGatewayTests {
    @Test func anAgentIsWelcomedAndEveryHeartbeatIsAckedInTextAndBinary() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=web-01&boot=b1")
            guard case .welcome(let welcome) = try await ws.nextServerMessage() else { Issue.record("no welcome"); return }
            #expect(welcome.intervalMs == 10_000)
            #expect(welcome.timeoutMs == 30_000)
            #expect(!welcome.session.isEmpty)
            try await server.transitions.waitFor(agent: "web-01", to: .online, reason: .connected)

            try await ws.send(text: #"{"type":"heartbeat","seq":1,"sent_ms":1764000000000}"#)
            guard case .ack(let seq, let time) = try await ws.nextServerMessage() else { Issue.record("no ack"); return }
            #expect(seq == 1)
            #expect(time > 1_700_000_000_000)

            try await ws.send(binary: WireCodec.encodeBinaryHeartbeat(seq: 2))
            guard case .binary(let ack) = try await ws.next() else { Issue.record("no binary ack"); return }
            #expect(WireCodec.decodeBinaryAck(ack.readableBytesView) == 2)

            try await ws.send(text: #"{"type":"heartbeat","seq":3}"#)
            guard case .ack(3, _) = try await ws.nextServerMessage() else { Issue.record("no ack for 3"); return }
            try await ws.close()
            _ = try await ws.closed()
        }
    }

    @Test func aSilentAgentIsRecordedOfflineByTimeoutAndClosedWith4000() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=quiet-1&interval_ms=200")
            _ = try await ws.nextServerMessage()
            let offline = try await server.transitions.waitFor(agent: "quiet-1", to: .offline)
            #expect(offline.reason == .timeout)
            let suspect = try #require(server.transitions.of("quiet-1").first { $0.to == .suspect })
            #expect(suspect.reason == .missedHeartbeat)
            let connected = try #require(server.transitions.of("quiet-1").first)
            #expect(offline.effectiveAt == connected.effectiveAt + 600, "effective exactly at the deadline")
            #expect(offline.detectedAt >= offline.effectiveAt)
            let closed = try await ws.closed()
            #expect(closed.code == 4000)
            #expect(closed.reason?.contains("timeout") == true)
        }
    }

    @Test func anAgentThatSaysByeIsRecordedOfflineGoodbye() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=polite-1")
            _ = try await ws.nextServerMessage()
            try await ws.send(text: #"{"type":"bye","reason":"shutdown"}"#)
            try await ws.close(code: .normalClosure)
            let offline = try await server.transitions.waitFor(agent: "polite-1", to: .offline)
            #expect(offline.reason == .goodbye)
            #expect(try await ws.closed().code == 1000)
            try await waitForRows(server.databasePath, "SELECT end_reason || ':' || close_code FROM sessions WHERE agent_id = 'polite-1'", ["goodbye:1000"])
        }
    }

    @Test func aCloseFrame1000WithoutByeIsAGoodbyeToo() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=terse-1")
            _ = try await ws.nextServerMessage()
            try await ws.close(code: .normalClosure)
            let offline = try await server.transitions.waitFor(agent: "terse-1", to: .offline)
            #expect(offline.reason == .goodbye)
        }
    }

    @Test func aSecondConnectionSupersedesTheFirstWith4001AndNoTransition() async throws {
        try await LiveServer.with { server in
            let first = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=twin&boot=a")
            _ = try await first.nextServerMessage()
            let second = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=twin&boot=b")
            _ = try await second.nextServerMessage()
            #expect(try await first.closed().code == 4001)
            try await second.send(text: #"{"type":"heartbeat","seq":1}"#)
            _ = try await second.nextServerMessage()
            #expect(server.transitions.of("twin").map(\.reason) == [.connected])
            try await second.close()
        }
    }

    @Test func theHistoryFileIsReadableWithSqlite3WhileTheServerRuns() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=visible-1")
            _ = try await ws.nextServerMessage()
            try await waitForRows(server.databasePath, "SELECT agent_id || ':' || to_state || ':' || reason FROM transitions", ["visible-1:online:connected"])
            try await waitForRows(server.databasePath, "SELECT agent_id FROM sessions WHERE ended_at_ms IS NULL", ["visible-1"])
            try await ws.close()
        }
    }

    @Test func aGracefulStopClosesEverySessionAndLeavesAgentsUnknown() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("stop.db").path
            let ws = try await LiveServer.with(databasePath: path) { server in
                let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=stay-1")
                _ = try await ws.nextServerMessage()
                try await server.transitions.waitFor(agent: "stay-1", to: .online)
                return ws
            }
            #expect(try await ws.closed().code == 1001)
            #expect(try sqlite3(path, "SELECT count(*) FROM sessions WHERE ended_at_ms IS NULL") == ["0"])
            #expect(try sqlite3(path, "SELECT end_reason || ':' || close_code FROM sessions") == ["server_stopped:1001"])
            #expect(try sqlite3(path, "SELECT to_state || ':' || reason FROM transitions ORDER BY id") == ["online:connected", "unknown:server_stopped"])
            #expect(try sqlite3(path, "SELECT stop_reason FROM server_runs") == ["graceful"])
        }
    }

    @Test func aRestartGivesReturningAgentsAWarmUpInsteadOfChargingThemTheDowntime() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("restart.db").path
            _ = try await LiveServer.with(databasePath: path) { server in
                let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=back-1")
                _ = try await ws.nextServerMessage()
                let ws2 = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=gone-1&interval_ms=2000")
                _ = try await ws2.nextServerMessage()
                try await server.transitions.waitFor(agent: "gone-1", to: .online)
                return [ws, ws2]
            }
            try await LiveServer.with(databasePath: path) { server in
                let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=back-1")
                _ = try await ws.nextServerMessage()
                let back = try await server.transitions.waitFor(agent: "back-1", to: .online)
                #expect(back.from == .unknown)
                #expect(back.reason == .connected)
                // back-1 keeps beating (as a live agent would) while gone-1's warm-up runs out.
                let gone = try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        var seq = 0
                        while !Task.isCancelled {
                            seq += 1
                            try await ws.send(text: #"{"type":"heartbeat","seq":\#(seq)}"#)
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                    defer { group.cancelAll() }
                    return try await server.transitions.waitFor(agent: "gone-1", to: .offline, within: .seconds(20))
                }
                #expect(gone.from == .unknown)
                #expect(gone.reason == .timeout)
                #expect(server.transitions.of("back-1").allSatisfy { $0.to == .online })
                try await ws.close()
            }
        }
    }
}

/// Runs the real `sqlite3` CLI on the file, as an analyst would.
func sqlite3(_ path: String, _ sql: String) throws -> [String] {
    try runSynchronously(["sqlite3", "-readonly", path, sql]).output.split(separator: "\n").map(String.init)
}

/// Polls the file until `sql` returns `expected`: the writer batches, so rows land within a flush.
func waitForRows(_ path: String, _ sql: String, _ expected: [String], within limit: Duration = .seconds(5)) async throws {
    let deadline = ContinuousClock.now + limit
    var last: [String] = []
    while ContinuousClock.now < deadline {
        last = try sqlite3(path, sql)
        if last == expected { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("\(sql) returned \(last), expected \(expected)")
}

@Suite struct ReadmissionTests {
    @Test func theReadmissionTimeIsTheReturningFleetAtTheHandshakeRate() {
        #expect(RollcallApplication.readmissionMs(agents: 19_900, handshakesPerSecond: 2_000) == 9_950)
        #expect(RollcallApplication.readmissionMs(agents: 1, handshakesPerSecond: 3) == 334)
        #expect(RollcallApplication.readmissionMs(agents: 0, handshakesPerSecond: 2_000) == 0)
        #expect(RollcallApplication.readmissionMs(agents: 10, handshakesPerSecond: .infinity) == 0)
    }
}

@Suite struct PingTests {
    @Test func theServerPingsEveryConnectionAndRecordsTheRoundTripOfItsPong() async throws {
        try await LiveServer.with(configure: { $0.pingInterval = .milliseconds(300) }) { server in
            // Three agents on the server's event loops; each must be pinged (8-byte payload) and
            // its pong turned into an RTT, whichever loop it is on.
            var sockets: [RawWebSocket] = []
            for i in 0..<3 {
                let ws = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=ping-\(i)&boot=b\(i)")
                #expect(ws.status == 101)
                let welcome = try await ws.next()
                #expect(welcome?.text.contains("welcome") == true)
                sockets.append(ws)
            }
            for (i, ws) in sockets.enumerated() {
                // The first ping follows the welcome; the second comes from the ping rounds.
                var pings = 0
                while pings < 2, let frame = try await ws.next(includingPings: true) {
                    guard frame.opcode == 0x9 else { continue }
                    pings += 1
                    #expect(frame.payload.count == 8)
                    try await ws.send(opcode: 0xA, payload: frame.payload)
                }
                #expect(pings == 2)
                try await waitForRows(server.databasePath, "SELECT rtt_ms IS NOT NULL FROM sessions WHERE agent_id = 'ping-\(i)'", ["1"])
                #expect(server.presence.status(of: AgentID("ping-\(i)")!)?.rttMs != nil)
            }
            for ws in sockets { await ws.drop() }
        }
    }

    @Test func anAgentsRoundTripIsKnownRightAfterItsHandshake() async throws {
        // Ping rounds an hour apart: only the ping that follows the welcome can measure it.
        try await LiveServer.with(configure: { $0.pingInterval = .seconds(3600) }) { server in
            let ws = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=rtt-1")
            #expect(try await ws.next()?.text.contains("welcome") == true)
            let ping = try #require(try await ws.next(includingPings: true))
            #expect(ping.opcode == 0x9, "a ping right after the welcome")
            try await ws.send(opcode: 0xA, payload: ping.payload)
            // The pong is read before the beat on the same connection: once the beat is acked,
            // the round trip is recorded.
            try await ws.sendText(#"{"type":"heartbeat","seq":1}"#)
            #expect(try await ws.next()?.text.contains(#""seq":1"#) == true)
            #expect(server.presence.status(of: AgentID("rtt-1")!)?.rttMs != nil)
        }
    }
}

@Suite struct PingScheduleTests {
    @Test func anAgentThatKeepsBeatingIsPingedEveryTenthRoundForItsRoundTrip() {
        var schedule = PingSchedule()
        var sent: [Int] = []
        for round in 1...30 {
            schedule.heard()
            if schedule.roundReached() { sent.append(round) }
        }
        #expect(sent == [10, 20, 30])
    }

    @Test func aQuietAgentIsPingedEveryRoundAndAHeardOneAgainOnceItFallsQuiet() {
        var schedule = PingSchedule()
        var answers: [Bool] = []
        answers.append(schedule.roundReached())
        answers.append(schedule.roundReached())
        schedule.heard()
        answers.append(schedule.roundReached())
        // Nothing heard since that round: the next one pings, so a half-open socket is caught.
        answers.append(schedule.roundReached())
        #expect(answers == [true, true, false, true])
    }
}
