import Foundation
import HummingbirdWSClient
import NIOCore
import NIOWebSocket
import RollcallCore
import RollcallTesting
import Testing

@Suite(.timeLimit(.minutes(1))) struct QueryAPITests {
    @Test func healthzAnswers() async throws {
        try await LiveServer.with { server in
            let response = try await httpGET(port: server.port, "/healthz")
            #expect(response.status == 200)
            #expect(response.body == #"{"status":"ok"}"#)
        }
    }

    @Test func listsAgentsAndShowsOneInFull() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=api-1&boot=xyz")
            _ = try await ws.nextServerMessage()
            try await ws.send(text: #"{"type":"hello","hostname":"h1","agent_version":"9.9","labels":{"env":"prod"}}"#)
            // The agent's clock runs a minute ahead: the detail reports the skew.
            let ahead = Int64(Date().timeIntervalSince1970 * 1000) + 60_000
            try await ws.send(text: #"{"type":"heartbeat","seq":1,"sent_ms":\#(ahead)}"#)
            _ = try await ws.nextServerMessage()
            try await waitForRows(server.databasePath, "SELECT hostname FROM agents WHERE id = 'api-1'", ["h1"])

            let list = try await httpGET(port: server.port, "/v1/agents")
            #expect(list.status == 200)
            #expect(list.header("content-type") == "application/json")
            let json = try JSONParser.parse(list.body)
            guard case .array(let agents)? = json["agents"] else { Issue.record("no agents array"); return }
            #expect(agents.count == 1)
            #expect(agents.first?["id"]?.stringValue == "api-1")
            #expect(agents.first?["state"]?.stringValue == "online")
            #expect(agents.first?["labels"]?["env"]?.stringValue == "prod")
            #expect(agents.first?["since"]?.stringValue?.hasSuffix("Z") == true)

            let filtered = try JSONParser.parse(try await httpGET(port: server.port, "/v1/agents?state=offline").body)
            #expect(filtered["agents"] == .array([]))

            let detail = try await httpGET(port: server.port, "/v1/agents/api-1")
            #expect(detail.status == 200)
            let one = try JSONParser.parse(detail.body)
            #expect(one["hostname"]?.stringValue == "h1")
            #expect(one["interval_ms"]?.int64Value == 10_000)
            #expect(one["timeout_ms"]?.int64Value == 30_000)
            #expect(one["session"]?["boot_id"]?.stringValue == "xyz")
            #expect(one["offline_at"]?.stringValue != nil)
            if case .number(let skew)? = one["skew_ms"] {
                #expect(skew > 55_000 && skew < 65_000, "skew \(skew) ms")
            } else {
                Issue.record("no skew_ms in \(detail.body)")
            }
            try await ws.close()
        }
    }

    @Test func theAgentListingWithAWindowCarriesUptimeAndFlaps() async throws {
        try await LiveServer.with { server in
            // Online, gone (close 1001: offline, goodbye; one flap), back online.
            for boot in ["one", "two"] {
                let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=flap-1&boot=\(boot)")
                _ = try await ws.nextServerMessage()
                if boot == "one" {
                    try await ws.close(code: .goingAway)
                    try await server.transitions.waitFor(agent: "flap-1", to: .offline, reason: .goodbye)
                } else {
                    try await server.transitions.waitFor(agent: "flap-1", to: .online, reason: .connected)
                }
            }
            try await waitForRows(server.databasePath, "SELECT COUNT(*) FROM transitions WHERE agent_id = 'flap-1'", ["3"])
            let plain = try JSONParser.parse(try await httpGET(port: server.port, "/v1/agents").body)
            guard case .array(let plainAgents)? = plain["agents"], let first = plainAgents.first else { Issue.record("no agents"); return }
            #expect(first["flaps"] == nil, "without window the listing stays as it was")
            let windowed = try JSONParser.parse(try await httpGET(port: server.port, "/v1/agents?window=24h").body)
            guard case .array(let agents)? = windowed["agents"], let agent = agents.first else { Issue.record("no agents"); return }
            #expect(agent["id"]?.stringValue == "flap-1")
            #expect(agent["flaps"]?.int64Value == 1)
            // Offline for a moment between two online stretches.
            if case .number(let ratio)? = agent["uptime_ratio"] { #expect(ratio > 0 && ratio <= 1) } else { Issue.record("no uptime_ratio") }
            let transitions = try JSONParser.parse(try await httpGET(port: server.port, "/v1/agents/flap-1/transitions?window=1h").body)
            guard case .array(let items)? = transitions["transitions"] else { Issue.record("no transitions"); return }
            #expect(items.map { $0["to"]?.stringValue } == ["online", "offline", "online"])
            let newest = try JSONParser.parse(try await httpGET(port: server.port, "/v1/agents/flap-1/transitions?window=1h&before=\(Int64.max)&limit=2").body)
            guard case .array(let latest)? = newest["transitions"] else { Issue.record("no transitions"); return }
            #expect(latest.map { $0["to"]?.stringValue } == ["online", "offline"], "newest first")
            #expect(newest["next_cursor"]?.int64Value == latest.last?["id"]?.int64Value)
            // Both bounds: the ids between them, newest first.
            let ids = items.compactMap { $0["id"]?.int64Value }
            let between = try JSONParser.parse(
                try await httpGET(port: server.port, "/v1/agents/flap-1/transitions?after=\(ids[0])&before=\(ids[2])").body)
            guard case .array(let middle)? = between["transitions"] else { Issue.record("no transitions"); return }
            #expect(middle.compactMap { $0["id"]?.int64Value } == [ids[1]])
            #expect(try await httpGET(port: server.port, "/v1/agents/flap-1/uptime?window=999999w").status == 200, "a window before the history covers all of it")
            #expect(try await httpGET(port: server.port, "/v1/agents/flap-1/uptime?window=1000000d").status == 400)
            #expect(try await httpGET(port: server.port, "/v1/agents?window=never").status == 400)
        }
    }

    @Test func theUptimeEndpointAgreesWithUptimeDaily() async throws {
        try await LiveServer.with { server in
            let ws = try await TestWebSocket.connect(server.wsBase + "/v1/agent?id=up-1")
            _ = try await ws.nextServerMessage()
            try await ws.send(text: #"{"type":"heartbeat","seq":1}"#)
            _ = try await ws.nextServerMessage()
            try await ws.send(text: #"{"type":"bye"}"#)
            try await ws.close()
            try await server.transitions.waitFor(agent: "up-1", to: .offline)
            try await waitForRows(server.databasePath, "SELECT to_state FROM transitions WHERE agent_id = 'up-1' ORDER BY id", ["online", "offline"])
            let response = try await httpGET(port: server.port, "/v1/agents/up-1/uptime?window=24h")
            #expect(response.status == 200)
            let json = try JSONParser.parse(response.body)
            let online = try #require(json["online_ms"]?.int64Value)
            let daily = try sqlite3(server.databasePath, "SELECT SUM(online_ms) FROM uptime_daily WHERE agent_id = 'up-1'")
            #expect(daily == [String(online)], "the API and uptime_daily agree on online time")
            #expect(online > 0)
            let ratio = try #require(json["uptime_ratio"].flatMap { if case .number(let d) = $0 { d } else { nil } })
            #expect(ratio > 0 && ratio <= 1)
            #expect(try await httpGET(port: server.port, "/v1/agents/up-1/uptime?window=soon").status == 400)
            let transitions = try JSONParser.parse(try await httpGET(port: server.port, "/v1/agents/up-1/transitions").body)
            guard case .array(let items)? = transitions["transitions"] else { Issue.record("no transitions"); return }
            #expect(items.compactMap { $0["reason"]?.stringValue } == ["connected", "goodbye"])
            let sessions = try JSONParser.parse(try await httpGET(port: server.port, "/v1/agents/up-1/sessions").body)
            guard case .array(let rows)? = sessions["sessions"] else { Issue.record("no sessions"); return }
            #expect(rows.first?["end_reason"]?.stringValue == "goodbye")
            #expect(rows.first?["heartbeats"]?.int64Value == 1)
        }
    }

    @Test func unknownAgentsAre404AndBadParametersAre400WithAJSONBody() async throws {
        try await LiveServer.with { server in
            let missing = try await httpGET(port: server.port, "/v1/agents/nobody")
            #expect(missing.status == 404)
            #expect(try JSONParser.parse(missing.body)["error"]?.stringValue == "not_found")
            let bad = try await httpGET(port: server.port, "/v1/agents?state=sleepy")
            #expect(bad.status == 400)
            let body = try JSONParser.parse(bad.body)
            #expect(body["error"]?.stringValue == "bad_parameter")
            #expect(body["message"]?.stringValue?.contains("state") == true)
        }
    }

    @Test func refusedHandshakesAreAnsweredBeforeTheUpgradeWithAJSONBody() async throws {
        try await LiveServer.with { server in
            let upgrade = [
                "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            ]
            // An upgrade with a bad id: a real 400 with the spec's body, not a bare status.
            var request = "GET /v1/agent?id=bad%20id HTTP/1.1\r\nHost: x\r\n"
            for (k, v) in upgrade { request += "\(k): \(v)\r\n" }
            let refused = try await rawHTTP(port: server.port, request + "\r\n")
            #expect(refused.status == 400)
            let body = try JSONParser.parse(refused.body)
            #expect(body["error"]?.stringValue == "bad_id")
            #expect(body["message"]?.stringValue?.isEmpty == false)

            let noID = try await httpGET(port: server.port, "/v1/agent")
            #expect(noID.status == 400)
            #expect(try JSONParser.parse(noID.body)["error"]?.stringValue == "missing_id")

            let plain = try await httpGET(port: server.port, "/v1/agent?id=ok-1")
            #expect(plain.status == 426)
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct PaginationTests {
    @Test func pagingThroughAgentsWhileOthersArriveSeesEveryEarlierAgentOnce() async throws {
        try await LiveServer.with { server in
            var sockets: [RawWebSocket] = []
            for i in 0..<40 {
                let ws = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=page-\(String(format: "%03d", i * 2))")
                _ = try await ws.next()
                sockets.append(ws)
            }
            try await waitForRows(server.databasePath, "SELECT count(*) FROM agents", ["40"])
            let before = Set((0..<40).map { "page-\(String(format: "%03d", $0 * 2))" })
            var seen: [String] = []
            var cursor: String?
            var added = 0
            repeat {
                let path = "/v1/agents?limit=7" + (cursor.map { "&after=\($0)" } ?? "")
                let page = try JSONParser.parse(try await httpGET(port: server.port, path).body)
                guard case .array(let agents)? = page["agents"] else { Issue.record("no agents"); return }
                seen += agents.compactMap { $0["id"]?.stringValue }
                cursor = page["next_cursor"]?.stringValue
                // New agents arrive between pages, on both sides of the cursor.
                if added < 10 {
                    let ws = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=page-\(String(format: "%03d", added * 8 + 1))")
                    _ = try await ws.next()
                    sockets.append(ws)
                    added += 1
                }
            } while cursor != nil
            #expect(Set(seen).count == seen.count, "no agent twice")
            #expect(before.isSubset(of: Set(seen)), "every agent present before paging began is seen")
            #expect(seen == seen.sorted(), "pages follow the cursor order")
        }
    }

    @Test func pagingThroughEventsIsGapFree() async throws {
        try await LiveServer.with { server in
            for i in 0..<12 {
                let ws = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=ev-\(i)")
                _ = try await ws.next()
                try await ws.sendText(#"{"type":"bye"}"#)
            }
            try await waitForRows(server.databasePath, "SELECT count(*) FROM transitions", ["24"])
            var ids: [Int64] = []
            var after: Int64 = 0
            while true {
                let page = try JSONParser.parse(try await httpGET(port: server.port, "/v1/events?after=\(after)&limit=5").body)
                guard case .array(let events)? = page["events"], !events.isEmpty else { break }
                ids += events.compactMap { $0["id"]?.int64Value }
                after = page["next_cursor"]?.int64Value ?? after
            }
            #expect(ids == Array(1...24))
            #expect(try await httpGET(port: server.port, "/v1/events?after=-1").status == 400)
        }
    }
}
