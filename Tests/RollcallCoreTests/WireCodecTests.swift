import RollcallCore
import Testing

@Suite struct WireCodecTests {
    @Test func decodesATextHeartbeatWithOptionalFields() throws {
        let message = try WireCodec.decodeAgentText(Array(#"{"type":"heartbeat","seq":42,"sent_ms":1764000000000,"late_ms":3,"status":{"load":0.5},"extra":true}"#.utf8))
        guard case .heartbeat(let beat) = message else { Issue.record("not a heartbeat"); return }
        #expect(beat.seq == 42)
        #expect(beat.sentMs == 1_764_000_000_000)
        #expect(beat.lateMs == 3)
        #expect(beat.status == .object([("load", .number(0.5))]))
    }

    @Test func roundTripsEveryAgentMessage() throws {
        let messages: [AgentMessage] = [
            .heartbeat(Heartbeat(seq: 7)),
            .heartbeat(Heartbeat(seq: 8, sentMs: 123, lateMs: 4, status: .object([("ok", .bool(true))]))),
            .hello(Hello(hostname: "web-01", agentVersion: "1.2.0", labels: ["env": "prod", "rack": "b3"])),
            .bye(reason: "shutdown"),
            .bye(reason: nil),
        ]
        for message in messages {
            let decoded = try WireCodec.decodeAgentText(Array(WireCodec.encode(message).utf8))
            switch (message, decoded) {
            case (.hello(let a), .hello(let b)):
                #expect(a.hostname == b.hostname && a.agentVersion == b.agentVersion && a.labels == b.labels)
            default:
                #expect(decoded == message)
            }
        }
    }

    @Test func roundTripsServerMessages() throws {
        let welcome = ServerMessage.welcome(Welcome(session: "s-1", intervalMs: 5000, timeoutMs: 15000, serverTimeMs: 1_764_000_000_000))
        #expect(try WireCodec.decodeServerText(Array(WireCodec.encode(welcome).utf8)) == welcome)
        let ack = ServerMessage.ack(seq: 42, serverTimeMs: 1_764_000_000_123)
        #expect(WireCodec.encode(ack) == #"{"type":"ack","seq":42,"server_time_ms":1764000000123}"#)
        var bytes: [UInt8] = []
        WireCodec.writeAck(seq: 42, serverTimeMs: 1_764_000_000_123, into: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == WireCodec.encode(ack))
    }

    @Test func binaryHeartbeatIsNineBytesBigEndian() throws {
        let frame = WireCodec.encodeBinaryHeartbeat(seq: 0x0102_0304_0506_0708)
        #expect(frame == [0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])
        #expect(try WireCodec.decodeAgentBinary(frame) == 0x0102_0304_0506_0708)
        let ack = WireCodec.encodeBinaryAck(seq: UInt64.max)
        #expect(ack.count == 9 && ack[0] == 0x02)
        #expect(WireCodec.decodeBinaryAck(ack) == UInt64.max)
    }

    @Test(arguments: [
        (#"{"type":"heartbeat","seq":1"#, CloseCode.invalidPayload, "invalid_json"),
        ("not json", .invalidPayload, "invalid_json"),
        (#"[1,2]"#, .policyViolation, "not_object"),
        (#"{"seq":1}"#, .policyViolation, "missing_field"),
        (#"{"type":"dance"}"#, .policyViolation, "unknown_type"),
        (#"{"type":"heartbeat"}"#, .policyViolation, "missing_field"),
        (#"{"type":"heartbeat","seq":-1}"#, .policyViolation, "bad_field"),
        (#"{"type":"heartbeat","seq":1.5}"#, .policyViolation, "bad_field"),
        (#"{"type":"heartbeat","seq":1,"status":"fine"}"#, .policyViolation, "bad_field"),
        (#"{"type":"hello","labels":{"a":1}}"#, .policyViolation, "bad_field"),
        (#"{"type":"hello","labels":{"a":"x\u0000y"}}"#, .policyViolation, "bad_field"),
        (#"{"type":"hello","labels":{"a\u0000":"x"}}"#, .policyViolation, "bad_field"),
        (#"{"type":"hello","hostname":"web\u0000"}"#, .policyViolation, "bad_field"),
    ])
    func rejectsBadTextFramesWithTheSpecCloseCode(text: String, code: CloseCode, cause: String) {
        #expect(throws: ProtocolViolation.self) { try WireCodec.decodeAgentText(Array(text.utf8)) }
        do {
            _ = try WireCodec.decodeAgentText(Array(text.utf8))
        } catch {
            #expect(error.code == code)
            #expect(error.cause == cause)
            #expect(!error.reason.isEmpty)
        }
    }

    @Test func rejectsInvalidUTF8With1007() {
        let bytes: [UInt8] = Array(#"{"type":"heartbeat","seq":1,"x":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        do {
            _ = try WireCodec.decodeAgentText(bytes)
            Issue.record("accepted invalid UTF-8")
        } catch {
            #expect(error.code == .invalidPayload)
        }
    }

    @Test func rejectsAnOversizedStatusWith1009() {
        let big = String(repeating: "x", count: 1100)
        do {
            _ = try WireCodec.decodeAgentText(Array(#"{"type":"heartbeat","seq":1,"status":{"note":"\#(big)"}}"#.utf8))
            Issue.record("accepted a 1.1 KiB status")
        } catch {
            #expect(error.code == .messageTooBig)
        }
    }

    @Test(arguments: [[UInt8](), [0x01], [0x02, 0, 0, 0, 0, 0, 0, 0, 1], [0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    func rejectsMalformedBinaryFrames(bytes: [UInt8]) {
        do {
            _ = try WireCodec.decodeAgentBinary(bytes)
            Issue.record("accepted \(bytes)")
        } catch {
            #expect(error.code == .policyViolation)
        }
    }
}
