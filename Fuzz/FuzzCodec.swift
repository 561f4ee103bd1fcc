// libFuzzer entry point for everything that parses network bytes: the text and binary codecs,
// the JSON parser and the handshake parser. Built by scripts/fuzz with -sanitize=fuzzer,address.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        _ = try WireCodec.decodeAgentText(bytes)
    } catch {
        precondition([CloseCode.invalidPayload, .policyViolation, .messageTooBig].contains(error.code), "unexpected close code \(error.code)")
    }
    if let seq = try? WireCodec.decodeAgentBinary(bytes) {
        precondition(WireCodec.encodeBinaryHeartbeat(seq: seq) == bytes)
    }
    if let value = try? JSONParser.parse(bytes) {
        // What parses must serialise and parse back to the same value.
        precondition((try? JSONParser.parse(value.serialized())) == value, "round trip changed the value")
    }
    let uri = "/v1/agent?" + String(decoding: bytes, as: UTF8.self)
    if case .failure(let refusal) = HandshakeRequest.parse(uri: uri, authorization: nil, subprotocols: nil) {
        precondition(refusal.status == 400)
    }
    return 0
}
