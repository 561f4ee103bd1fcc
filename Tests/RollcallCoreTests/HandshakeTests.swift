import RollcallCore
import Testing

@Suite struct HandshakeTests {
    @Test func parsesIdBootIntervalTokenAndSubprotocol() throws {
        let request = try HandshakeRequest.parse(
            uri: "/v1/agent?id=web-01&boot=abc123&interval_ms=2000&unknown=1", authorization: "Bearer s3cret",
            subprotocols: "foo, rollcall.v1"
        ).get()
        #expect(request.agentID.rawValue == "web-01")
        #expect(request.bootID == "abc123")
        #expect(request.requestedIntervalMs == 2000)
        #expect(request.token == "s3cret")
        #expect(request.wantsSubprotocol)
    }

    @Test(arguments: [
        ("/v1/agent", "missing_id"),
        ("/v1/agent?id=", "bad_id"),
        ("/v1/agent?id=a%20b", "bad_id"),
        ("/v1/agent?id=a&interval_ms=soon", "bad_parameter"),
        ("/v1/agent?id=a&interval_ms=0", "bad_parameter"),
        ("/v1/agent?id=a%zz", "bad_parameter"),
    ])
    func refusesBadRequestsWith400AndAMessage(uri: String, code: String) {
        guard case .failure(let refusal) = HandshakeRequest.parse(uri: uri, authorization: nil, subprotocols: nil) else {
            Issue.record("accepted \(uri)")
            return
        }
        #expect(refusal.status == 400)
        #expect(refusal.code == code)
        #expect(refusal.body.hasPrefix(#"{"error":"\#(code)","message":""#))
    }
}
