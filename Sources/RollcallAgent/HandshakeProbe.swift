import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import RollcallCore

/// Why a handshake was refused, learned by asking the same URL as a plain GET: the server answers
/// refusals identically on both paths, with the status, the JSON body and `Retry-After`.
public struct HandshakeRefusal: Sendable, Equatable, Error {
    public var status: Int
    public var code: String?
    public var message: String?
    public var retryAfterSeconds: Int?
}

enum HandshakeProbe {
    /// GET `path` on `host:port`, over TLS when `tls` is given; `nil` when nothing usable came back.
    static func fetch(host: String, port: Int, path: String, token: String?, tls: TLSConfiguration?) async -> HandshakeRefusal? {
        do {
            let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let sslContext {
                            let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: sslContext, serverHostname: isAddress ? nil : host))
                        }
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
            return try await channel.executeThenClose { inbound, outbound in
                var headers = HTTPHeaders([("Host", "\(host):\(port)"), ("Connection", "close")])
                if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
                try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)))
                try await outbound.write(.end(nil))
                var status = 0
                var retry: Int?
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let head):
                        status = Int(head.status.code)
                        retry = head.headers.first(name: "Retry-After").flatMap { Int($0) }
                    case .body(var chunk): if body.readableBytes < 16_384 { body.writeBuffer(&chunk) }
                    case .end: break
                    }
                }
                let json = try? JSONParser.parse(body.readableBytesView)
                return HandshakeRefusal(status: status, code: json?["error"]?.stringValue, message: json?["message"]?.stringValue, retryAfterSeconds: retry)
            }
        } catch {
            return nil
        }
    }
}

/// A reason for the agent to stop trying, with the exit code a service manager can act on.
public struct AgentStop: Error, Sendable, CustomStringConvertible {
    /// 77 (EX_NOPERM): the token was refused or revoked. 78 (EX_CONFIG): the id or parameters were refused.
    public var exitCode: Int32
    public var message: String
    public var description: String { message }
}
