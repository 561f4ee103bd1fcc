import RollcallCore
import RollcallDashboard
import RollcallTop
import RollcallTransport
import Testing

@Suite struct TimelineTests {
    @Test func givesEachSlotTheWorstStateSoAShortOutageStaysVisible() {
        let start: Millis = 0
        let t = [
            Transition(id: 1, agentID: AgentID("a")!, from: nil, to: .online, reason: TransitionReason(rawValue: "connected"), effectiveAt: 2_000, detectedAt: 2_000, sessionID: nil),
            Transition(id: 2, agentID: AgentID("a")!, from: .online, to: .offline, reason: TransitionReason(rawValue: "timeout"), effectiveAt: 5_100, detectedAt: 5_100, sessionID: nil),
            Transition(id: 3, agentID: AgentID("a")!, from: .offline, to: .online, reason: TransitionReason(rawValue: "connected"), effectiveAt: 5_200, detectedAt: 5_200, sessionID: nil),
        ]
        let slots = Timeline.slots(t, initial: nil, start: start, end: 10_000, width: 10)
        #expect(slots == [nil, nil, .online, .online, .online, .offline, .online, .online, .online, .online])
    }

    @Test func usesTheStateBeforeTheWindowForItsStart() {
        let t = [Transition(id: 5, agentID: AgentID("a")!, from: .suspect, to: .online, reason: TransitionReason(rawValue: "recovered"), effectiveAt: 500, detectedAt: 500, sessionID: nil)]
        #expect(Timeline.slots(t, initial: .suspect, start: 0, end: 1000, width: 4) == [.suspect, .suspect, .online, .online])
        #expect(Timeline.slots([], initial: .unknown, start: 0, end: 1000, width: 2) == [.unknown, .unknown])
    }
}

@Suite struct MessagesTests {
    @Test func readsTheWatchStreamsSnapshotAndTransitions() throws {
        let snapshot = try JSONParser.parse(
            #"{"type":"snapshot","cursor":42,"agents":[{"id":"web-01","state":"online","since":"2026-11-25T12:00:00.000Z","last_seen":"2026-11-25T12:00:01.500Z","rtt_ms":0.25},{"id":"db-01","state":"offline","since":"2026-11-25T11:00:00.000Z","last_seen":null,"rtt_ms":null}]}"#)
        #expect(Messages.watch(snapshot) == .snapshot([
            AgentRow(id: "web-01", state: .online, since: noon, lastSeen: noon + 1500, rttMs: 0.25),
            AgentRow(id: "db-01", state: .offline, since: noon - 3_600_000),
        ], cursor: 42))
        let transition = try JSONParser.parse(
            #"{"type":"transition","id":43,"agent_id":"web-01","from":"online","to":"suspect","reason":"disconnected","effective_at":"2026-11-25T12:00:02.000Z","detected_at":"2026-11-25T12:00:02.001Z","session_id":7}"#)
        #expect(Messages.watch(transition) == .transition(Transition(id: 43, agentID: AgentID("web-01")!, from: .online, to: .suspect, reason: TransitionReason(rawValue: "disconnected"), effectiveAt: noon + 2000, detectedAt: noon + 2001, sessionID: 7)))
        #expect(Messages.watch(try JSONParser.parse(#"{"type":"something-new"}"#)) == nil)
    }

    @Test func readsTheAgentListingsWindowedStatistics() throws {
        let item = try JSONParser.parse(
            #"{"id":"web-01","state":"online","since":"2026-11-25T12:00:00.000Z","last_seen":"2026-11-25T12:00:00.000Z","labels":{},"rtt_ms":1.5,"uptime_ratio":0.75,"flaps":2}"#)
        #expect(Messages.agentRow(item) == AgentRow(id: "web-01", state: .online, since: noon, lastSeen: noon, rttMs: 1.5, flaps: 2, uptime: 0.75))
    }

    @Test func theDetailKeepsTransitionsOldestFirstWhateverOrderThePagesCameIn() throws {
        let page = try JSONParser.parse(
            #"{"transitions":[{"id":9,"agent_id":"a","from":"online","to":"offline","reason":"goodbye","effective_at":"2026-11-25T12:00:09.000Z"},{"id":4,"agent_id":"a","from":null,"to":"online","reason":"connected","effective_at":"2026-11-25T12:00:04.000Z"}],"next_cursor":null}"#)
        let d = Messages.detail(id: "a", agent: nil, transitions: [page], sessions: nil, windowStart: 0, loadedAt: noon)
        #expect(d.transitions.map(\.id) == [4, 9])
    }

    @Test func buildsTheWatchURLFromTheServersHTTPAddress() throws {
        func watch(_ base: String, after: Int64? = nil) throws -> String {
            WatchFeed.watchURL(server: try ServerURL(parsing: base, schemes: [.http, .https]), after: after).description
        }
        #expect(try watch("http://127.0.0.1:7777/") == "ws://127.0.0.1:7777/v1/watch")
        #expect(try watch("https://rollcall.example", after: 42) == "wss://rollcall.example/v1/watch?after=42")
        #expect(try watch("HTTP://127.0.0.1:7777") == "ws://127.0.0.1:7777/v1/watch")
        #expect(try watch("http://[::1]:7850") == "ws://[::1]:7850/v1/watch")
        #expect(try watch("https://10.0.0.5:7777/monitor/", after: 7) == "wss://10.0.0.5:7777/monitor/v1/watch?after=7")
    }
}
