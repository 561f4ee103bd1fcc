/// Encodes and decodes protocol v1 frames. Pure functions over bytes.
public enum WireCodec {
    /// Binary heartbeat: `0x01` + seq as UInt64 big-endian.
    public static let binaryHeartbeatTag: UInt8 = 0x01
    /// Binary ack: `0x02` + seq as UInt64 big-endian.
    public static let binaryAckTag: UInt8 = 0x02
    public static let binaryFrameLength = 9
    public static let maxHelloBytes = 8 * 1024
    public static let maxStatusBytes = 1024

    // MARK: Agent → server

    /// Decodes a text frame from an agent. `bytes` must be the complete message.
    public static func decodeAgentText(_ bytes: some Collection<UInt8>) throws(ProtocolViolation) -> AgentMessage {
        try decodeText(bytes)
    }

    static func decodeText(_ bytes: some Collection<UInt8>) throws(ProtocolViolation) -> AgentMessage {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw ProtocolViolation(.invalidPayload, "invalid JSON: \(error)", cause: "invalid_json")
        }
        guard case .object = value else {
            throw ProtocolViolation(.policyViolation, "message must be a JSON object", cause: "not_object")
        }
        guard let type = value["type"]?.stringValue else {
            throw ProtocolViolation(.policyViolation, "missing field 'type'", cause: "missing_field")
        }
        switch type {
        case "heartbeat":
            guard let seqValue = value["seq"] else {
                throw ProtocolViolation(.policyViolation, "heartbeat is missing field 'seq'", cause: "missing_field")
            }
            guard let seq = seqValue.int64Value, seq >= 0 else {
                throw ProtocolViolation(.policyViolation, "heartbeat 'seq' must be a non-negative integer", cause: "bad_field")
            }
            var beat = Heartbeat(seq: UInt64(seq))
            beat.sentMs = value["sent_ms"]?.int64Value
            beat.lateMs = value["late_ms"]?.int64Value
            if let status = value["status"], status != .null {
                guard case .object = status else {
                    throw ProtocolViolation(.policyViolation, "heartbeat 'status' must be an object", cause: "bad_field")
                }
                if status.serialized().utf8.count > maxStatusBytes {
                    throw ProtocolViolation(.messageTooBig, "heartbeat 'status' exceeds \(maxStatusBytes) bytes", cause: "status_too_big")
                }
                beat.status = status
            }
            return .heartbeat(beat)
        case "hello":
            if bytes.count > maxHelloBytes {
                throw ProtocolViolation(.messageTooBig, "hello exceeds \(maxHelloBytes) bytes", cause: "hello_too_big")
            }
            var labels: [String: String] = [:]
            if let l = value["labels"], l != .null {
                guard case .object(let members) = l else {
                    throw ProtocolViolation(.policyViolation, "hello 'labels' must be an object of strings", cause: "bad_field")
                }
                for (k, v) in members {
                    guard let s = v.stringValue else {
                        throw ProtocolViolation(.policyViolation, "hello label '\(k)' must be a string", cause: "bad_field")
                    }
                    labels[k] = s
                }
            }
            let hostname = value["hostname"]?.stringValue, agentVersion = value["agent_version"]?.stringValue
            // U+0000 is valid JSON but no text column of PostgreSQL can hold it, and one label
            // with it would break every label query of the fleet: refused here, for both stores.
            let texts = [hostname, agentVersion].compactMap { $0 } + labels.keys + labels.values
            if texts.contains(where: { $0.utf8.contains(0) }) {
                throw ProtocolViolation(.policyViolation, "hello text must not contain NUL (U+0000)", cause: "bad_field")
            }
            return .hello(Hello(hostname: hostname, agentVersion: agentVersion, labels: labels, raw: value))
        case "bye":
            return .bye(reason: value["reason"]?.stringValue)
        default:
            let shown = type.count > 32 ? String(type.prefix(32)) + "…" : type
            throw ProtocolViolation(.policyViolation, "unknown message type '\(shown)'", cause: "unknown_type")
        }
    }

    /// Decodes a binary frame from an agent: only the 9-byte heartbeat exists.
    public static func decodeAgentBinary(_ bytes: some Collection<UInt8>) throws(ProtocolViolation) -> UInt64 {
        guard bytes.count == binaryFrameLength, bytes.first == binaryHeartbeatTag else {
            throw ProtocolViolation(
                .policyViolation, "binary frame must be 9 bytes: 0x01 then seq as big-endian UInt64", cause: "bad_binary")
        }
        return readUInt64(bytes.dropFirst())
    }

    /// ``decodeAgentBinary(_:)`` for the bytes of a NIO buffer: concrete, so a caller in another
    /// module gets neither a generic call nor an allocation per heartbeat.
    public static func decodeAgentBinary(_ bytes: UnsafeRawBufferPointer) throws(ProtocolViolation) -> UInt64 {
        guard bytes.count == binaryFrameLength, bytes[0] == binaryHeartbeatTag else {
            throw ProtocolViolation(
                .policyViolation, "binary frame must be 9 bytes: 0x01 then seq as big-endian UInt64", cause: "bad_binary")
        }
        return UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 1, as: UInt64.self))
    }

    /// ``decodeAgentText(_:)`` for the bytes of a NIO buffer: the parser is specialized for this
    /// concrete type here, instead of running generically from the caller's module.
    public static func decodeAgentText(_ bytes: UnsafeRawBufferPointer) throws(ProtocolViolation) -> AgentMessage {
        try decodeText(bytes)
    }

    public static func encode(_ message: AgentMessage) -> String {
        switch message {
        case .heartbeat(let beat):
            var out = "{\"type\":\"heartbeat\",\"seq\":\(beat.seq)"
            if let sent = beat.sentMs { out += ",\"sent_ms\":\(sent)" }
            if let late = beat.lateMs { out += ",\"late_ms\":\(late)" }
            if let status = beat.status {
                out += ",\"status\":"
                status.write(to: &out)
            }
            return out + "}"
        case .hello(let hello):
            var members: [(String, JSONValue)] = [("type", .string("hello"))]
            if let h = hello.hostname { members.append(("hostname", .string(h))) }
            if let v = hello.agentVersion { members.append(("agent_version", .string(v))) }
            members.append(("labels", .object(hello.labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
            return JSONValue.object(members).serialized()
        case .bye(let reason):
            var out = "{\"type\":\"bye\""
            if let reason {
                out += ",\"reason\":"
                JSONValue.writeString(reason, to: &out)
            }
            return out + "}"
        }
    }

    public static func encodeBinaryHeartbeat(seq: UInt64) -> [UInt8] {
        binaryFrame(tag: binaryHeartbeatTag, seq: seq)
    }

    // MARK: Server → agent

    public static func encode(_ message: ServerMessage) -> String {
        switch message {
        case .welcome(let w):
            var out = "{\"type\":\"welcome\",\"session\":"
            JSONValue.writeString(w.session, to: &out)
            out += ",\"interval_ms\":\(w.intervalMs),\"timeout_ms\":\(w.timeoutMs),\"server_time_ms\":\(w.serverTimeMs)}"
            return out
        case .ack(let seq, let time):
            return "{\"type\":\"ack\",\"seq\":\(seq),\"server_time_ms\":\(time)}"
        }
    }

    /// Writes the ack text into `buffer` without building an intermediate `String`.
    public static func writeAck(seq: UInt64, serverTimeMs: Int64, into buffer: inout [UInt8]) {
        buffer.append(contentsOf: #"{"type":"ack","seq":"#.utf8)
        appendDecimal(seq, to: &buffer)
        buffer.append(contentsOf: #","server_time_ms":"#.utf8)
        if serverTimeMs < 0 {
            buffer.append(UInt8(ascii: "-"))
            appendDecimal(UInt64(-serverTimeMs), to: &buffer)
        } else {
            appendDecimal(UInt64(serverTimeMs), to: &buffer)
        }
        buffer.append(UInt8(ascii: "}"))
    }

    public static func encodeBinaryAck(seq: UInt64) -> [UInt8] {
        binaryFrame(tag: binaryAckTag, seq: seq)
    }

    public static func decodeServerText(_ bytes: some Collection<UInt8>) throws(ProtocolViolation) -> ServerMessage {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw ProtocolViolation(.invalidPayload, "invalid JSON: \(error)", cause: "invalid_json")
        }
        switch value["type"]?.stringValue {
        case "welcome":
            guard let interval = value["interval_ms"]?.int64Value, let timeout = value["timeout_ms"]?.int64Value else {
                throw ProtocolViolation(.policyViolation, "welcome is missing interval_ms or timeout_ms", cause: "missing_field")
            }
            return .welcome(
                Welcome(
                    session: value["session"]?.stringValue ?? "", intervalMs: interval, timeoutMs: timeout,
                    serverTimeMs: value["server_time_ms"]?.int64Value ?? 0))
        case "ack":
            guard let seq = value["seq"]?.int64Value, seq >= 0 else {
                throw ProtocolViolation(.policyViolation, "ack is missing 'seq'", cause: "missing_field")
            }
            return .ack(seq: UInt64(seq), serverTimeMs: value["server_time_ms"]?.int64Value ?? 0)
        default:
            throw ProtocolViolation(.policyViolation, "unknown server message", cause: "unknown_type")
        }
    }

    /// Decodes a 9-byte binary ack, returning its seq.
    public static func decodeBinaryAck(_ bytes: some Collection<UInt8>) -> UInt64? {
        guard bytes.count == binaryFrameLength, bytes.first == binaryAckTag else { return nil }
        return readUInt64(bytes.dropFirst())
    }

    // MARK: Helpers

    static func binaryFrame(tag: UInt8, seq: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: binaryFrameLength)
        out[0] = tag
        for i in 0..<8 { out[1 + i] = UInt8(truncatingIfNeeded: seq >> (56 - 8 * UInt64(i))) }
        return out
    }

    static func readUInt64(_ bytes: some Collection<UInt8>) -> UInt64 {
        var v: UInt64 = 0
        for b in bytes { v = v << 8 | UInt64(b) }
        return v
    }

    static func appendDecimal(_ value: UInt64, to buffer: inout [UInt8]) {
        if value == 0 { buffer.append(UInt8(ascii: "0")); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = value
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            while n > 0 {
                raw[count] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { buffer.append(raw[i]) }
        }
    }
}
