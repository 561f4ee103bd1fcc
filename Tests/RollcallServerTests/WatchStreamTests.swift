import Foundation
import Logging
import Synchronization
import GRDB
import NIOCore
import NIOEmbedded
import NIOWebSocket
import RollcallCore
import RollcallStore
import RollcallTesting
import Testing

@testable import RollcallServer

@Suite(.timeLimit(.minutes(1))) struct WatchStreamTests {
    func events(_ socket: RawWebSocket, count: Int) async throws -> [JSONValue] {
        var out: [JSONValue] = []
        while out.count < count {
            guard let frame = try await socket.next() else { throw TestTimeout(what: "\(count) watch events (got \(out.count))") }
            guard frame.opcode == 0x1 else { continue }
            out.append(try JSONParser.parse(frame.text))
        }
        return out
    }

    @Test func aWatcherGetsASnapshotThenEveryTransitionLive() async throws {
        try await LiveServer.with { server in
            let early = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=w-early")
            _ = try await early.next()
            try await server.transitions.waitFor(agent: "w-early", to: .online)
            let watcher = try await RawWebSocket.connect(port: server.port, path: "/v1/watch")
            #expect(watcher.status == 101)
            let snapshot = try #require(try await events(watcher, count: 1).first)
            #expect(snapshot["type"]?.stringValue == "snapshot")
            let cursor = try #require(snapshot["cursor"]?.int64Value)
            guard case .array(let agents)? = snapshot["agents"] else { Issue.record("no agents"); return }
            #expect(agents.compactMap { $0["id"]?.stringValue } == ["w-early"])
            #expect(agents.first?["state"]?.stringValue == "online")

            let late = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=w-late")
            _ = try await late.next()
            let event = try #require(try await events(watcher, count: 1).first)
            #expect(event["type"]?.stringValue == "transition")
            #expect(event["id"]?.int64Value == cursor + 1)
            #expect(event["agent_id"]?.stringValue == "w-late")
            #expect(event["to"]?.stringValue == "online")
            #expect(event["reason"]?.stringValue == "connected")
        }
    }

    @Test func aWatcherThatResumesWithAfterMissesNothingAndSeesNothingTwice() async throws {
        try await LiveServer.with { server in
            let stop = Mutex2(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Agents keep changing state: connect, say bye, again, a few times a second each.
                for n in 0..<3 {
                    group.addTask {
                        while !stop.withLock({ $0 }) {
                            if let ws = try? await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=flap-\(n)") {
                                _ = try? await ws.next()
                                try? await ws.sendText(#"{"type":"bye"}"#)
                                try? await ws.send(opcode: 0x8, payload: [0x03, 0xE8])
                                _ = try? await ws.closeFrame()
                            }
                            try await Task.sleep(for: .milliseconds(15))
                        }
                    }
                }
                var seen: [Int64] = []
                var after: Int64 = 0
                for _ in 0..<4 {
                    let watcher = try await RawWebSocket.connect(port: server.port, path: "/v1/watch?after=\(after)")
                    let batch = try await events(watcher, count: 25)
                    seen += batch.compactMap { $0["id"]?.int64Value }
                    after = seen.last!
                    await watcher.drop()
                }
                stop.withLock { $0 = true }
                try await group.waitForAll()
                #expect(seen == Array(1...Int64(seen.count)), "ids 1…\(seen.count) exactly once, in order")
            }
            // And the ids the watchers saw are the history's.
            let last = try await server.transitions.waitFor { _ in true }
            _ = last
            try await waitForRows(server.databasePath, "SELECT count(*) >= 100 FROM transitions", ["1"])
            let stored = try sqlite3(server.databasePath, "SELECT id FROM transitions WHERE id <= 100 ORDER BY id")
            #expect(stored == (1...100).map(String.init))
        }
    }

    @Test func aBadCursorIsRefusedBeforeTheUpgrade() async throws {
        try await LiveServer.with { server in
            let refused = try await RawWebSocket.connect(port: server.port, path: "/v1/watch?after=soon")
            #expect(refused.status == 400)
        }
    }

    @Test func aWatcherThatStopsReadingIsClosedWithItsCursor() async throws {
        let store = try SQLiteHistoryStore(writer: DatabaseQueue())
        let presence = Presence(engine: LivenessEngine(), clock: ManualPresenceClock(), outbox: Outbox(), logger: .init(label: "t"))
        let hub = TransitionHub()
        let channel = EmbeddedChannel()
        let handler = WatchChannelHandler(
            presence: presence, hub: hub, store: store, request: WatchRequest(after: 0), maxBuffered: 5, slowReaderGrace: .seconds(60),
            logger: .init(label: "t"))
        try channel.pipeline.syncOperations.addHandler(handler)
        channel.embeddedEventLoop.run()
        channel.isWritable = false
        for i in 0..<10 {
            let id = AgentID("slow-\(i)")!
            hub.publish([Transition(id: Int64(i + 1), agentID: id, from: nil, to: .online, reason: .connected, effectiveAt: 1, detectedAt: 1, sessionID: 1)])
        }
        channel.embeddedEventLoop.run()
        var close: WebSocketFrame?
        while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
            if frame.opcode == .connectionClose { close = frame }
        }
        var data = try #require(close).data
        #expect(data.readInteger(as: UInt16.self) == 4100)
        #expect(data.readString(length: data.readableBytes) == "lagging: resume with after=0")
        #expect(hub.listenerCount == 0, "the slow watcher no longer slows anyone")
    }
}
