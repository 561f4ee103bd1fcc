// WireCodec on the server's heartbeat hot path, exactly the calls AgentChannelHandler makes:
// - binary: `decodeAgentBinary` on the frame's readable bytes, then the 9-byte ack into a reused buffer;
// - text: `decodeAgentText` on the frame's readable bytes, then `writeAck` into a reused scratch
//   buffer (`removeAll(keepingCapacity: true)` first, as the handler does).
// Names without spaces (`heartbeat.binary.decodeAndAck`): the benchmark tool finds the stored
// allocation thresholds (Thresholds/) by name, and writes them with spaces replaced.
// The frame bytes are handed over as an `UnsafeRawBufferPointer`, as `ByteBuffer.withUnsafeReadableBytes`
// does in the server. One operation is one heartbeat; results are per heartbeat (scaling factor K).
import Benchmark
import RollcallCore
import BenchmarkSupport

/// A server clock reading in the range the server really writes (13 digits).
let serverTimeMs: Int64 = 1_764_000_000_123

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: measuredMetrics,
        timeUnits: .nanoseconds,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        thresholds: allocationThresholds
    )

    // Goal: no allocation at all.
    Benchmark("heartbeat.binary.decodeAndAck") { benchmark in
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: WireCodec.binaryFrameLength, alignment: 8)
        defer { frame.deallocate() }
        frame.copyBytes(from: WireCodec.encodeBinaryHeartbeat(seq: 0))
        var scratch: [UInt8] = []
        scratch.reserveCapacity(16)
        var seq: UInt64 = 0x0000_0100_0000_0000
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            seq &+= 1
            frame.storeBytes(of: seq.bigEndian, toByteOffset: 1, as: UInt64.self)
            let decoded = try! WireCodec.decodeAgentBinary(UnsafeRawBufferPointer(frame))
            // The server writes the tag and the big-endian seq straight into its NIO buffer.
            scratch.removeAll(keepingCapacity: true)
            scratch.append(WireCodec.binaryAckTag)
            withUnsafeBytes(of: decoded.bigEndian) { scratch.append(contentsOf: $0) }
            blackHole(scratch.count)
        }
        benchmark.stopMeasurement()
    }

    Benchmark("heartbeat.binary.decode") { benchmark in
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: WireCodec.binaryFrameLength, alignment: 8)
        defer { frame.deallocate() }
        frame.copyBytes(from: WireCodec.encodeBinaryHeartbeat(seq: 0))
        var seq: UInt64 = 0x0000_0100_0000_0000
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            seq &+= 1
            frame.storeBytes(of: seq.bigEndian, toByteOffset: 1, as: UInt64.self)
            blackHole(try! WireCodec.decodeAgentBinary(UnsafeRawBufferPointer(frame)))
        }
        benchmark.stopMeasurement()
    }

    // The minimal text heartbeat of the protocol.
    Benchmark("heartbeat.json.minimal.decodeAndAck") { benchmark in
        jsonHeartbeat(benchmark, text: #"{"type":"heartbeat","seq":123}"#)
    }

    // What rollcall-agent sends in text mode: seq, sent_ms and late_ms.
    Benchmark("heartbeat.json.agent.decodeAndAck") { benchmark in
        jsonHeartbeat(
            benchmark,
            text: WireCodec.encode(AgentMessage.heartbeat(Heartbeat(seq: 123_456, sentMs: 1_764_000_000_100, lateMs: 0))))
    }

    Benchmark("JSON ack: writeAck only (reused scratch)") { benchmark in
        var scratch: [UInt8] = []
        scratch.reserveCapacity(128)
        var seq: UInt64 = 1_000_000
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            seq &+= 1
            scratch.removeAll(keepingCapacity: true)
            WireCodec.writeAck(seq: seq, serverTimeMs: serverTimeMs, into: &scratch)
            blackHole(scratch.count)
        }
        benchmark.stopMeasurement()
    }
}

/// Decodes `text` as the server does and writes its ack into a reused scratch buffer.
func jsonHeartbeat(_ benchmark: Benchmark, text: String) {
    let bytes = Array(text.utf8)
    var scratch: [UInt8] = []
    scratch.reserveCapacity(128)
    bytes.withUnsafeBytes { frame in
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            guard case .heartbeat(let beat) = try! WireCodec.decodeAgentText(frame) else { fatalError("not a heartbeat: \(text)") }
            scratch.removeAll(keepingCapacity: true)
            WireCodec.writeAck(seq: beat.seq, serverTimeMs: serverTimeMs, into: &scratch)
            blackHole(scratch.count)
        }
        benchmark.stopMeasurement()
    }
}
