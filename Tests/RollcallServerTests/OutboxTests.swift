import Logging
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

/// A watcher resuming on a node whose hub has not yet read the id it saw on another node.
@Suite struct SharedWatchAdmissionTests {
    @Test func aResumeFromAnIDAnotherNodeAnnouncedIsToldToRetryAndOneBeyondEveryNodeIsRefused() {
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let presence = Presence(engine: LivenessEngine(), clock: ManualPresenceClock(), outbox: Outbox(), logger: logger)
        let hub = TransitionHub(lastID: 10)
        let admission = Admission(presence: presence, hub: hub, configuration: ServerConfiguration(), announcedNewest: { 15 })
        guard case .success = admission.admitWatch(uri: "/v1/watch?after=10", remote: "127.0.0.1") else {
            Issue.record("a cursor this node has is refused")
            return
        }
        guard case .failure(let behind) = admission.admitWatch(uri: "/v1/watch?after=15", remote: "127.0.0.1") else {
            Issue.record("a cursor this node has not read yet is admitted")
            return
        }
        #expect(behind.status == 503 && behind.code == "catching_up" && behind.retryAfter == 1)
        guard case .failure(let beyond) = admission.admitWatch(uri: "/v1/watch?after=16", remote: "127.0.0.1") else {
            Issue.record("a cursor beyond every node's newest id is admitted")
            return
        }
        #expect(beyond.status == 400)
    }
}
