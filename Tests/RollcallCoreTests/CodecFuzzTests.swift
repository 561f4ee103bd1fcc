import PropertyBased
import RollcallCore
import Testing

/// Property-based fuzzing of everything that parses bytes from the network: whatever arrives,
/// the answer is a value or a protocol violation with a spec close code, never a crash.
@Suite struct CodecFuzzTests {
    static let seeds: [[UInt8]] = [
        Array(#"{"type":"heartbeat","seq":42,"sent_ms":1764000000000,"late_ms":3,"status":{"load":[1,2.5e3,{"x":null}]}}"#.utf8),
        Array(#"{"type":"hello","hostname":"web-01","agent_version":"1.2.0","labels":{"env":"prod","rack":"b3"}}"#.utf8),
        Array(#"{"type":"bye","reason":"shut\u00e9down \ud83d\ude00"}"#.utf8),
    ]

    func checkText(_ bytes: [UInt8]) {
        do {
            _ = try WireCodec.decodeAgentText(bytes)
        } catch {
            #expect([CloseCode.invalidPayload, .policyViolation, .messageTooBig].contains(error.code))
            #expect(!error.reason.isEmpty && error.reason.utf8.count < 200)
        }
    }

    @Test func randomBytesNeverCrashTheTextDecoder() async {
        await propertyCheck(count: 500, input: Gen.uint8().array(of: 0...200)) { bytes in
            checkText(bytes)
        }
    }

    @Test func mutatedValidMessagesNeverCrashTheTextDecoder() async {
        await propertyCheck(count: 600, input: Gen.int(in: 0...2), Gen.int(in: 0...10_000).array(of: 1...6), Gen.uint8()) { seed, positions, byte in
            var bytes = Self.seeds[seed]
            for p in positions {
                switch p % 3 {
                case 0: bytes[p % bytes.count] = byte
                case 1: bytes.remove(at: p % bytes.count)
                default: bytes.insert(byte, at: p % (bytes.count + 1))
                }
                if bytes.isEmpty { break }
            }
            checkText(bytes)
        }
    }

    @Test func deepNestingIsRefusedNotRecursedInto() {
        let deep = Array(repeating: UInt8(ascii: "["), count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let bomb = Array(#"{"type":"heartbeat","seq":1,"status":"#.utf8) + Array(repeating: UInt8(ascii: "{"), count: 50_000)
        checkText(bomb)
    }

    @Test func randomBytesNeverCrashTheBinaryDecoder() async {
        await propertyCheck(count: 500, input: Gen.uint8().array(of: 0...16)) { bytes in
            if let seq = try? WireCodec.decodeAgentBinary(bytes) {
                #expect(bytes.count == 9 && bytes[0] == 1)
                #expect(WireCodec.encodeBinaryHeartbeat(seq: seq) == bytes)
            }
        }
    }

    @Test func randomHandshakeURIsAreAcceptedOrRefusedWith400() async {
        let alphabet = Array("/v1agent?id=&boot=interval_ms%0123456789AZaz.:_-+ é\u{0}".unicodeScalars).map(Character.init)
        await propertyCheck(count: 600, input: Gen.int(in: 0...(alphabet.count - 1)).array(of: 0...80)) { indices in
            let uri = "/v1/agent?" + String(indices.map { alphabet[$0] })
            switch HandshakeRequest.parse(uri: uri, authorization: nil, subprotocols: nil) {
            case .success(let request):
                #expect(AgentID.validationError(request.agentID.rawValue) == nil)
            case .failure(let refusal):
                #expect(refusal.status == 400)
                #expect(refusal.body.hasPrefix(#"{"error":""#))
            }
        }
    }
}
