import Foundation
import NIOCore
import NIOWebSocket
import RollcallCore

/// A `/v1/watch` client that times each transition's delivery: now − `detected_at` (the server
/// and the generator share this machine's clock).
final class WatchConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let stats: LoadStats

    init(stats: LoadStats) { self.stats = stats }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.opcode == .text else { return }
        let now = Int64((Date().timeIntervalSince1970 * 1000).rounded())
        if let detected = Self.detectedAt(frame.unmaskedData) {
            stats.recordDelivery(micros: UInt64(max(0, now - detected)) * 1000)
        }
    }

    /// `"detected_at":"2026-11-25T07:46:26.349Z"` → epoch milliseconds.
    static func detectedAt(_ buffer: ByteBuffer) -> Int64? {
        guard let text = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes),
            let range = text.range(of: #""detected_at":""#)
        else { return nil }
        let value = text[range.upperBound...].prefix(24)
        guard value.count == 24 else { return nil }
        let digits = value.map { $0 }
        func n(_ from: Int, _ count: Int) -> Int64? { Int64(String(digits[from..<from + count])) }
        guard let y = n(0, 4), let mo = n(5, 2), let d = n(8, 2), let h = n(11, 2), let mi = n(14, 2), let s = n(17, 2), let ms = n(20, 3)
        else { return nil }
        // Days from civil (Howard Hinnant).
        let yy = mo <= 2 ? y - 1 : y
        let era = yy / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return ((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms
    }
}
