import Foundation
import RollcallCore
import RollcallServer
import RollcallTesting
import Testing

/// While one well-behaved agent beats, other clients throw everything at the gateway. The good
/// agent's acks never stop, it records no transition, and the server keeps answering.
@Suite(.timeLimit(.minutes(1))) struct HostileNeighbourTests {
    @Test func aGoodAgentIsUntouchedByHostileNeighbours() async throws {
        try await LiveServer.with(configure: { $0.limits.handshakeTimeout = .milliseconds(500) }) { server in
            let good = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=good-1&interval_ms=5000")
            _ = try await good.next()
            try await withThrowingTaskGroup(of: Void.self) { group in
                let neighboursDone = Mutex2(false)
                // The good agent: a beat every 100 ms (its own schedule), each one acked, and three
                // more acked beats once every neighbour has finished.
                group.addTask {
                    var seq = 0
                    var after = 0
                    while after < 3 {
                        if neighboursDone.withLock({ $0 }) { after += 1 }
                        seq += 1
                        try await good.sendText(#"{"type":"heartbeat","seq":\#(seq)}"#)
                        let ack = try #require(try await good.next())
                        #expect(ack.text.contains(#""seq":\#(seq),"#), "ack \(seq) arrived")
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
                // The neighbours.
                group.addTask {
                    if let garbage = try? await RawWebSocket.connect(port: server.port, path: "", request: "\u{16}\u{03}\u{01}\u{02}\u{00}\u{01}\u{00}\u{01}\u{fc}\u{03}garbage\r\n\r\n") {
                        _ = try? await garbage.next()  // the server answers or closes; either way it ends
                    }
                }
                group.addTask {
                    // Half-open handshake: never finishes its request line.
                    let slow = try await RawWebSocket.connect(port: server.port, path: "", request: "GET /v1/agent?id=slow")
                    #expect(try await slow.next() == nil, "closed after the handshake timeout")
                }
                group.addTask {
                    let big = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=big-1")
                    _ = try await big.next()
                    // The server may close before the rest is written.
                    try? await big.send(opcode: 0x1, payload: Array(repeating: 0x41, count: 70_000))
                    #expect(try await big.closeFrame()?.closeCode == 1009)
                }
                group.addTask {
                    let utf = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=utf-1")
                    _ = try await utf.next()
                    try await utf.send(opcode: 0x1, payload: [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x7D])
                    #expect(try await utf.closeFrame()?.closeCode == 1007)
                }
                group.addTask {
                    let flood = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=flood-2")
                    _ = try await flood.next()
                    var burst: [UInt8] = []
                    for seq in 1...500 { burst += RawWebSocket.encode(opcode: 0x1, payload: Array(#"{"type":"heartbeat","seq":\#(seq)}"#.utf8)) }
                    try? await flood.sendRaw(burst)
                    #expect(try await flood.closeFrame()?.closeCode == 1008)
                }
                group.addTask {
                    let plain = try await httpGET(port: server.port, "/v1/agent?id=plain-1")
                    #expect(plain.status == 426)
                    let bad = try await httpGET(port: server.port, "/v1/agent?id=%zz")
                    #expect(bad.status == 400)
                }
                group.addTask {
                    // A fragmented message that never finishes, then a new one: a protocol violation.
                    let frag = try await RawWebSocket.connect(port: server.port, path: "/v1/agent?id=frag-1")
                    _ = try await frag.next()
                    try await frag.send(opcode: 0x1, payload: Array(#"{"type":"#.utf8), fin: false)
                    try await frag.send(opcode: 0x1, payload: Array(#"{"type":"bye"}"#.utf8))
                    #expect(try await frag.closeFrame()?.closeCode == 1008)
                }
                // The good agent beats through all of it and ends after three acks more.
                for _ in 0..<7 { try await group.next() }
                neighboursDone.withLock { $0 = true }
                try await group.waitForAll()
            }
            #expect(server.transitions.of("good-1").map(\.reason) == [.connected], "the good agent never blinked")
            #expect(try await httpGET(port: server.port, "/healthz").status == 200)
            let counters = server.presence.counters.snapshot
            #expect(counters.violations["too_big"] == 1)
            #expect(counters.violations["invalid_json"] == 1)
            #expect(counters.violations["flood"] == 1)
            #expect(counters.refusals["handshake_timeout", default: 0] >= 1)
        }
    }
}
