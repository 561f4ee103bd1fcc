import RollcallCore
import RollcallDashboard
import Testing

@Suite struct RendererTests {
    @Test func drawsTheHeaderCountsAndTableWithProblemsFirst() {
        let size = ScreenSize(rows: 9, columns: 80)
        let s = state(threeAgents, size: size)
        #expect(lines(s, size) == [
            " Rollcall  http://127.0.0.1:7777  ● live                           12:00:00 UTC",
            " 3 agents   ● 1 online   ● 1 suspect   ● 1 offline   ● 0 unknown      event #10",
            " ID        STATE▼    SINCE   LAST SEEN       RTT   FLAPS   UP 24H",
            " db-01     offline   2m05s       2m20s         –       3   97.12%",
            " cache-01  suspect      4s        5.5s    12.3ms       1   99.99%",
            " web-01    online    1h00m        0.4s    0.21ms       0  100.00%",
            "",
            "",
            " 1/3  ↑↓ move  Enter detail  / filter  s sort  r reverse  ? help  q quit",
        ])
    }

    @Test func sortArrowsFitBesideEveryColumnTitle() {
        let size = ScreenSize(rows: 9, columns: 80)
        var s = state(threeAgents, size: size)
        for key in ["4", "6"] {
            _ = s.handle(.character(Character(key)), now: noon)
            s.refreshOrder(now: noon)
            let header = lines(s, size)[2]
            #expect(header.contains("LAST SEEN▼") || header.contains("FLAPS▼") || header.contains("LAST SEEN▲") || header.contains("FLAPS▲"), "\(key): \(header)")
        }
    }

    @Test func anEightyColumnTerminalGetsAShorterCountsLineWithTheCursor() {
        let size = ScreenSize(rows: 24, columns: 80)
        var rows = threeAgents
        for i in 0..<33 { rows.append(AgentRow(id: "edge-\(i)", state: .online, since: noon - 1000)) }
        var s = state(rows, size: size)
        s.heartbeatsPerSecond = 32.7
        let line = lines(s, size)[1]
        #expect(line == " 36 agents ● 34 on ● 1 susp ● 1 off ● 0 unk 32.7/s                    event #10")
        #expect(!line.contains("…"))
    }

    @Test func showsHeartbeatsPerSecondWhenKnown() {
        let size = ScreenSize(rows: 8, columns: 100)
        var s = state(threeAgents, size: size)
        s.heartbeatsPerSecond = 3987.44
        #expect(lines(s, size)[1] == " 3 agents   ● 1 online   ● 1 suspect   ● 1 offline   ● 0 unknown   3987.4 beats/s         event #10")
    }

    @Test func dropsTheLeastImportantColumnsOnNarrowTerminals() {
        let size = ScreenSize(rows: 7, columns: 40)
        let s = state(threeAgents, size: size)
        #expect(Array(lines(s, size)[2...5]) == [
            " ID        STATE▼    SINCE   UP 24H",
            " db-01     offline   2m05s   97.12%",
            " cache-01  suspect      4s   99.99%",
            " web-01    online    1h00m  100.00%",
        ])
        let narrowest = ScreenSize(rows: 7, columns: 24)
        #expect(Array(lines(state(threeAgents, size: narrowest), narrowest)[2...3]) == [
            " ID        STATE▼",
            " db-01     offline",
        ])
    }

    @Test func cutsLongIDsWithAnEllipsisAndKeepsTheOtherColumnsAligned() {
        let long = String(repeating: "very-long-agent-name-", count: 4) + "end"
        let rows = [AgentRow(id: long, state: .online, since: noon - 1000, lastSeen: noon, flaps: 0, uptime: 1), threeAgents[0]]
        let size = ScreenSize(rows: 7, columns: 80)
        let l = lines(state(rows, size: size), size)
        // At 80 columns every column stays and the id gets what is left.
        #expect(l[2] == " ID                       STATE▼    SINCE   LAST SEEN       RTT   FLAPS   UP 24H")
        #expect(l[3] == " very-long-agent-name-v…  online       1s        0.0s         –       0  100.00%")
        #expect(l[4] == " web-01                   online    1h00m        0.4s    0.21ms       0  100.00%")
        let wide = ScreenSize(rows: 7, columns: 120)
        #expect(lines(state(rows, size: wide), wide)[3] == " very-long-agent-name-very-long-agent-na…  online       1s        0.0s         –       0  100.00%")
    }

    @Test func saysHowToStartAnAgentWhenTheFleetIsEmpty() {
        let size = ScreenSize(rows: 8, columns: 90)
        let l = lines(state([], size: size), size)
        #expect(l[1] == " 0 agents   ● 0 online   ● 0 suspect   ● 0 offline   ● 0 unknown                event #10")
        #expect(l[5] == "  No agents yet. Start one: rollcall-agent --server ws://HOST:7777 --id NAME")
        #expect(l[7].hasPrefix(" 0/0"))
    }

    @Test func saysReconnectingWhileTheServerIsAwayAndKeepsTheLastKnownFleet() {
        let size = ScreenSize(rows: 8, columns: 100)
        let s = state(threeAgents, connection: .reconnecting(attempt: 3, error: "connection refused"), size: size)
        let l = lines(s, size)
        #expect(l[0] == " Rollcall  http://127.0.0.1:7777  ◌ reconnecting (attempt 3): connection refused       12:00:00 UTC")
        #expect(l[3].hasPrefix(" db-01     offline"))
    }

    @Test func filtersByIDOrStateAndSaysWhenNothingMatches() {
        let size = ScreenSize(rows: 8, columns: 80)
        var s = state(threeAgents, size: size)
        for key in [Key.character("/"), .character("0"), .character("1")] { _ = s.handle(key, now: noon) }
        #expect(lines(s, size)[7] == " filter: 01█  Enter keeps · Esc clears")
        _ = s.handle(.character("x"), now: noon)
        #expect(lines(s, size)[5] == "  No agent matches “01x”. Esc clears the filter.")
        _ = s.handle(.backspace, now: noon)
        _ = s.handle(.enter, now: noon)
        #expect(lines(s, size)[7].hasPrefix(" 1/3  filter “01”"))
        _ = s.handle(.escape, now: noon)
        for key in [Key.character("/")] + "online".map(Key.character) + [.enter] { _ = s.handle(key, now: noon) }
        #expect(Array(lines(s, size)[3...4]) == [" web-01    online    1h00m        0.4s    0.21ms       0  100.00%", ""])
    }

    @Test func marksTheSelectedRowAndTheSortColumn() {
        let size = ScreenSize(rows: 8, columns: 80)
        var s = state(threeAgents, size: size)
        _ = s.handle(.down, now: noon)
        _ = s.handle(.character("1"), now: noon)  // sort by id
        let frame = Renderer(theme: Theme(.none)).render(s, size: size, now: noon)
        #expect(frame.lines[2] == " ID▼       STATE     SINCE   LAST SEEN       RTT   FLAPS   UP 24H")
        #expect(frame.lines[3...5].map { String($0.prefix(10)) } == [" cache-01 ", " db-01    ", " web-01   "])
        // The selection follows its agent (cache-01) to its new place, drawn in reverse video.
        #expect(frame[3, 5].style.reverse && !frame[4, 5].style.reverse)
        #expect(frame.lines[7].hasPrefix(" 1/3"))
    }

    @Test func colourModesPaintStatesAndNoColourUsesOnlyAttributes() {
        let size = ScreenSize(rows: 8, columns: 80)
        let s = state(threeAgents, size: size)
        let stateColumn = 11
        let palette = Renderer(theme: Theme(.palette256)).render(s, size: size, now: noon)
        #expect(palette[3, stateColumn].style.foreground == .palette(196))  // offline: red
        #expect(palette[5, stateColumn].style.foreground == .palette(41))  // online: green
        let truecolor = Renderer(theme: Theme(.truecolor)).render(s, size: size, now: noon)
        #expect(truecolor[4, stateColumn].style.foreground == .rgb(230, 180, 40))  // suspect: amber
        let plain = Renderer(theme: Theme(.none)).render(s, size: size, now: noon)
        #expect(plain.cells.allSatisfy { $0.style.foreground == .default && $0.style.background == .default })
        #expect(plain.lines == palette.lines)
    }

    @Test func saysTheTerminalIsTooSmallBelowTheMinimum() {
        let size = ScreenSize(rows: 5, columns: 30)
        #expect(lines(state(threeAgents, size: size), size) == ["terminal too small", "", "", "", ""])
    }

    @Test func drawsOnlyTheRowsOnScreenOfAHundredThousandAgents() {
        let rows = (0..<100_000).map { i in AgentRow(id: "agent-\(100_000 + i)", state: i % 97 == 0 ? .offline : .online, since: noon - Millis(i) * 1000) }
        let size = ScreenSize(rows: 10, columns: 80)
        var s = state(rows, size: size)
        _ = s.handle(.end, now: noon)
        let l = lines(s, size)
        #expect(l[1] == " 100000 agents ● 98969 on ● 0 susp ● 1031 off ● 0 unk                 event #10", "a shorter line, not a cut one")
        #expect(l[8].hasPrefix(" agent-199999  online"))
        #expect(l[9].hasPrefix(" 100000/100000"))
    }

    @Test func showsTheHelpOverTheTable() {
        let size = ScreenSize(rows: 18, columns: 60)
        var s = state(threeAgents, size: size)
        _ = s.handle(.character("?"), now: noon)
        let l = lines(s, size)
        #expect(l[1] == " 3 agent┌─ keys ───────────────────────────────────┐ent #10")
        #expect(l[3] == " db-01  │  ↑ ↓  j k       move                     │7.12%")
        #expect(l[13] == "        │  q  Ctrl-C      quit                     │")
        _ = s.handle(.character("x"), now: noon)
        #expect(!lines(s, size)[1].contains("keys"))
    }

    @Test func drawsAnAgentsDetailWithItsTimelineTransitionsAndSessions() {
        let size = ScreenSize(rows: 20, columns: 60)
        var s = state(threeAgents, size: size)
        _ = s.handle(.down, now: noon)
        #expect(run { s.handle(.enter, now: noon) } == .openDetail("cache-01"))
        var d = AgentDetail(id: "cache-01")
        d.intervalMs = 5000
        d.timeoutMs = 15000
        d.hostname = "cache-01.example"
        d.labels = [("env", "prod")]
        d.transitions = [
            Transition(id: 4, agentID: AgentID("cache-01")!, from: nil, to: .online, reason: TransitionReason(rawValue: "connected"), effectiveAt: noon - 13 * 3_600_000, detectedAt: noon - 13 * 3_600_000, sessionID: nil),
            Transition(id: 7, agentID: AgentID("cache-01")!, from: .online, to: .offline, reason: TransitionReason(rawValue: "goodbye"), effectiveAt: noon - 6 * 3_600_000, detectedAt: noon - 6 * 3_600_000, sessionID: nil),
            Transition(id: 9, agentID: AgentID("cache-01")!, from: .offline, to: .online, reason: TransitionReason(rawValue: "connected"), effectiveAt: noon - 3 * 3_600_000, detectedAt: noon - 3 * 3_600_000, sessionID: nil),
            Transition(id: 12, agentID: AgentID("cache-01")!, from: .online, to: .suspect, reason: TransitionReason(rawValue: "missed_heartbeat"), effectiveAt: noon - 4_000, detectedAt: noon - 4_000, sessionID: nil),
        ]
        d.sessions = [
            .init(id: 3, startedAt: noon - 3 * 3_600_000, endedAt: nil, endReason: nil, remoteAddress: "10.0.0.7", heartbeats: 2159),
            .init(id: 2, startedAt: noon - 13 * 3_600_000, endedAt: noon - 6 * 3_600_000, endReason: "goodbye", remoteAddress: "10.0.0.7", heartbeats: 5040),
        ]
        s.detail = d
        #expect(lines(s, size) == [
            " Rollcall  http://127.0.0.1:7777  ● live       12:00:00 UTC",
            " ◂ cache-01  suspect since 11-25 11:59:56 (4s)",
            " interval 5.0s, timeout 15.0s · rtt 12.3ms · 24h uptime 99.9",
            " host cache-01.example · env=prod",
            "┌─ last 24 h ──────────────────────────────────────────────┐",
            "│                          █████████████████_______██████▒ │",
            "│ -24h       -18h          -12h           -6h          now │",
            "└──────────────────────────────────────────────────────────┘",
            "┌─ transitions, newest first ──────────────────────────────┐",
            "│ 11-25 11:59:56  online  → suspect  missed_heartbeat      │",
            "│ 11-25 09:00:00  offline → online   connected             │",
            "│ 11-25 06:00:00  online  → offline  goodbye               │",
            "│ 11-24 23:00:00  new     → online   connected             │",
            "└──────────────────────────────────────────────────────────┘",
            "┌─ sessions, newest first ─────────────────────────────────┐",
            "│ 11-25 09:00:00 – open             3h00m                  │",
            "│ 11-24 23:00:00 – 11-25 06:00:00   7h00m  goodbye         │",
            "│                                                          │",
            "└──────────────────────────────────────────────────────────┘",
            " Esc back  ? help  q quit",
        ])
        _ = s.handle(.escape, now: noon)
        #expect(s.detail == nil)
    }

    @Test func showsControlCharactersInAnAgentsHostnameAndLabelsAsVisibleEscapes() {
        let size = ScreenSize(rows: 20, columns: 120)
        var s = state(threeAgents, size: size)
        var d = AgentDetail(id: "web-01")
        d.hostname = "web\u{1B}[2J\u{1B}[H01"
        d.agentVersion = "1.0\u{9B}31m"
        d.labels = [("env", "prod\u{1B}]0;pwned\u{7}"), ("rack\u{202E}", "b3\r\n")]
        d.sessions = [
            .init(id: 2, startedAt: noon - 60_000, endedAt: noon - 1000, endReason: "kick\u{1B}", remoteAddress: "10.0.0.7", heartbeats: 12),
            .init(id: 1, startedAt: noon - 120_000, endedAt: noon - 61_000, endReason: "goodbye", remoteAddress: "10.0.0.7", heartbeats: 12),
        ]
        s.detail = d
        let frame = Renderer(theme: Theme(.none)).render(s, size: size, now: noon)
        // Not one control character reaches the screen, whatever the agent sent.
        for line in frame.lines {
            #expect(line.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F })
            #expect(!line.unicodeScalars.contains { $0 != "\\" && TerminalText.needsEscape($0) })
        }
        // The escapes show where the controls were.
        #expect(frame.lines[3] == #" host web\u{1B}[2J\u{1B}[H01 · agent 1.0\u{9B}31m · env=prod\u{1B}]0;pwned\u{7} rack\u{202E}=b3\r\n"#)
        // Columns after an escaped text stay in line: it is measured as drawn.
        let sessions = frame.lines.filter { $0.contains("beats") }
        func column(of word: String, in line: String) -> Int? {
            line.firstRange(of: word).map { line.unicodeScalars[..<$0.lowerBound].count }
        }
        #expect(sessions.count == 2)
        #expect(sessions[0].contains(#"kick\u{1B}"#))
        #expect(column(of: "beats", in: sessions[0]) != nil)
        #expect(column(of: "beats", in: sessions[0]) == column(of: "beats", in: sessions[1]))
    }

    @Test func cutsTextBetweenEscapesNeverInsideOne() {
        // `ab\u{1B}…` takes nine columns as drawn: the escape goes whole or not at all.
        #expect(Renderer.truncate("ab\u{1B}cdef", 9) == "ab\u{1B}…")
        #expect(Renderer.truncate("ab\u{1B}cdef", 8) == "ab…")
        #expect(Frame.columns(of: "ab\u{1B}…") == 9)
        #expect(Renderer.truncate("ab\u{1B}cd", 12) == "ab\u{1B}cd")
        #expect(Renderer.truncate("abcdef", 4) == "abc…")
    }
}
