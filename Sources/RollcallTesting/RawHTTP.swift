import Foundation
import NIOCore
import NIOPosix

/// A response read off the wire, unparsed by any HTTP library.
public struct RawResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: String

    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Sends `request` verbatim to 127.0.0.1:`port` and reads until the server closes.
/// Requests should carry `Connection: close`.
public func rawHTTP(port: Int, _ request: String, timeout: Duration = .seconds(10)) async throws -> RawResponse {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
    let text = try await withThrowingTaskGroup(of: String?.self) { group in
        group.addTask {
            try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: request))
                var all = ByteBuffer()
                for try await var chunk in inbound {
                    all.writeBuffer(&chunk)
                    if let text = all.getString(at: 0, length: all.readableBytes), responseIsComplete(text) { break }
                }
                return all.getString(at: 0, length: all.readableBytes) ?? ""
            }
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let text = first else { throw TestTimeout(what: "an HTTP response") }
        return text
    }
    return parseResponse(text)
}

/// True once the headers and a `Content-Length` body have arrived.
private func responseIsComplete(_ text: String) -> Bool {
    guard let split = text.range(of: "\r\n\r\n") else { return false }
    let head = text[..<split.lowerBound].lowercased()
    guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
        let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
    else { return false }
    return text[split.upperBound...].utf8.count >= length
}

func parseResponse(_ text: String) -> RawResponse {
    let parts = text.components(separatedBy: "\r\n\r\n")
    let headLines = parts[0].components(separatedBy: "\r\n")
    let status = headLines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
    var headers: [String: String] = [:]
    for line in headLines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return RawResponse(status: status, headers: headers, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
}

/// `GET path` with `Connection: close`.
public func httpGET(port: Int, _ path: String, headers: [String: String] = [:]) async throws -> RawResponse {
    var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
    for (k, v) in headers { request += "\(k): \(v)\r\n" }
    return try await rawHTTP(port: port, request + "\r\n")
}

/// The directory holding the built executables (`rollcall`, `rollcall-agent`).
public var productsDirectory: URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
}
