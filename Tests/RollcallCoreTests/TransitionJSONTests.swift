import RollcallCore
import Testing

@Suite struct TransitionJSONTests {
    let t = Transition(
        id: 4_211, agentID: AgentID("web-01")!, from: .online, to: .suspect, reason: .missedHeartbeat,
        effectiveAt: 1_764_000_000_123, detectedAt: 1_764_000_000_130, sessionID: 77)

    @Test func aTransitionReadsBackExactlyAsItWasWritten() throws {
        let text = t.json.serialized()
        var big = t
        big.id = 9_223_372_036_854_775_806
        #expect(big.json.serialized().contains(#""id":9223372036854775806"#), "ids are written as exact integers")
        #expect(Transition(json: try JSONParser.parse(Array(text.utf8)[...])) == t)
        let message = try JSONParser.parse(Array(t.watchMessage.utf8)[...])
        #expect(message["type"]?.stringValue == "transition")
    }

    @Test func aReasonFromANewerServerIsKeptAsText() throws {
        let text = #"{"id":1,"agent_id":"a","from":null,"to":"online","reason":"teleported","effective_at":"2026-11-25T12:00:00.000Z"}"#
        let read = try #require(Transition(json: try JSONParser.parse(Array(text.utf8)[...])))
        #expect(read.reason.rawValue == "teleported")
        #expect(!TransitionReason.allCases.contains(read.reason))
    }
}
