import Foundation
import NIOCore
import NIOPosix

/// A WebSocket client with no safety rails, for hostile tests: it performs the upgrade by hand
/// and then writes whatever frames (or bytes) a test asks for, and parses what comes back.
public final class RawWebSocket: @unchecked Sendable {
    public struct Frame: Sendable, Equatable {
        public var opcode: UInt8
        public var payload: [UInt8]
        public var text: String { String(decoding: payload, as: UTF8.self) }
        /// The close code of a close frame.
        public var closeCode: Int? { opcode == 0x8 && payload.count >= 2 ? Int(payload[0]) << 8 | Int(payload[1]) : nil }
        public var closeReason: String { String(decoding: payload.dropFirst(2), as: UTF8.self) }
    }

    let channel: any Channel
    var iterator: AsyncStream<ByteBuffer>.AsyncIterator
    var buffer = ByteBuffer()
    /// The HTTP status of the upgrade answer.
    public private(set) var status = 0
    /// The whole head of the HTTP answer.
    public private(set) var responseHead = ""

    init(channel: any Channel, stream: AsyncStream<ByteBuffer>) {
        self.channel = channel
        self.iterator = stream.makeAsyncIterator()
    }

    /// Hands every read to an `AsyncStream`.
    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let continuation: AsyncStream<ByteBuffer>.Continuation
        init(_ continuation: AsyncStream<ByteBuffer>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    /// Connects and sends `request` verbatim (or a proper upgrade for `path` when `request` is nil),
    /// then reads the HTTP answer head.
    public static func connect(port: Int, path: String, headers: [String: String] = [:], request: String? = nil) async throws -> RawWebSocket {
        let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(continuation)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let socket = RawWebSocket(channel: channel, stream: stream)
        var text = request ?? "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        if request == nil {
            for (k, v) in headers { text += "\(k): \(v)\r\n" }
            text += "\r\n"
        }
        try await socket.sendRaw(Array(text.utf8))
        if request == nil { try await socket.readHead() }
        return socket
    }

    func readHead() async throws {
        while true {
            if let text = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes), let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound]
                status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
                responseHead = String(head)
                buffer.moveReaderIndex(forwardBy: text[..<end.upperBound].utf8.count)
                return
            }
            guard var more = await iterator.next() else { throw TestTimeout(what: "an HTTP answer") }
            buffer.writeBuffer(&more)
        }
    }

    /// Writes one masked frame.
    public func send(opcode: UInt8, payload: [UInt8], fin: Bool = true) async throws {
        try await sendRaw(Self.encode(opcode: opcode, payload: payload, fin: fin))
    }

    public func sendText(_ text: String) async throws { try await send(opcode: 0x1, payload: Array(text.utf8)) }

    public func sendRaw(_ bytes: [UInt8]) async throws { try await channel.writeAndFlush(ByteBuffer(bytes: bytes)) }

    /// Stops reading from the socket, as a peer that never reads would: what the server sends
    /// stays in the kernel's buffers until they fill and the server sees it cannot write.
    public func stopReading() async throws { try await channel.setOption(ChannelOptions.autoRead, value: false).get() }

    /// Closes our side without a close frame, like a machine that vanished.
    public func drop() async { try? await channel.close() }

    /// The next frame from the server, or `nil` when the connection ended. Pings are answered
    /// with a pong and skipped, as any WebSocket client does, unless `includingPings`.
    public func next(includingPings: Bool = false) async throws -> Frame? {
        while true {
            if let frame = parse() {
                if frame.opcode == 0x9, !includingPings {
                    try? await send(opcode: 0xA, payload: frame.payload)
                    continue
                }
                return frame
            }
            guard var more = await iterator.next() else { return nil }
            buffer.writeBuffer(&more)
        }
    }

    /// Reads frames until a close frame (returned) or the end of the connection (`nil`).
    public func closeFrame() async throws -> Frame? {
        while let frame = try await next() {
            if frame.opcode == 0x8 { return frame }
        }
        return nil
    }

    func parse() -> Frame? {
        let bytes = Array(buffer.readableBytesView)
        guard bytes.count >= 2 else { return nil }
        var length = Int(bytes[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        guard bytes.count >= offset + length else { return nil }
        buffer.moveReaderIndex(forwardBy: offset + length)
        return Frame(opcode: bytes[0] & 0x0F, payload: Array(bytes[offset..<offset + length]))
    }

    public static func encode(opcode: UInt8, payload: [UInt8], fin: Bool = true) -> [UInt8] {
        var out: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        if payload.count < 126 {
            out.append(0x80 | UInt8(payload.count))
        } else if payload.count < 65536 {
            out.append(0x80 | 126)
            out += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        } else {
            out.append(0x80 | 127)
            out += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        out += mask
        out += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return out
    }
}
