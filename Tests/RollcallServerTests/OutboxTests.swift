import RollcallCore
@testable import RollcallServer
import RollcallStore
import Testing

@Suite struct OutboxTests {
    let agent = AgentID("chatty-1")!

    @Test func aFloodOfStatusesIsOneUpdatePerAgent() {
        let outbox = Outbox()
        for i in 0..<1000 { outbox.status(.object([("n", .integer(Int64(i)))]), for: agent) }
        #expect(outbox.pendingStatus(of: agent) == .object([("n", .integer(999))]))
        #expect(outbox.drainMetadata(withStatuses: false).isEmpty, "statuses wait for the checkpoint")
        let taken = outbox.drainMetadata(withStatuses: true)
        #expect(taken == [.status(agent, .object([("n", .integer(999))]))])
        #expect(outbox.drainMetadata(withStatuses: true).isEmpty)
    }

    @Test func eventsTheWriterHoldsCountTowardTheBacklog() {
        let outbox = Outbox()
        outbox.append(.hello(agent, Hello(hostname: "h", agentVersion: nil, labels: [:], raw: .object([]))))
        #expect(outbox.depth == 1)
        let taken = outbox.drain()
        #expect(outbox.depth == 0)
        outbox.setHeld(taken.count)
        #expect(outbox.depth == 1, "a batch that keeps failing still holds back new handshakes")
    }
}
