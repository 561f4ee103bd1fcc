import Foundation
import Histogram
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// Simulates thousands of agents from one process over real WebSocket connections, built on
/// SwiftNIO directly so the generator costs far less per connection than the server it loads.
public final class LoadGenerator: Sendable {
    public let configuration: LoadConfiguration
    public let stats = LoadStats()
    let group: MultiThreadedEventLoopGroup
    /// Open connections by agent index, so scenarios can make some of them leave.
    private let channels = Mutex<[Int: any Channel]>([:])

    public init(configuration: LoadConfiguration, threads: Int = 2) {
        self.configuration = configuration
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    public func shutdown() async throws { try await group.shutdownGracefully() }

    /// How a connection attempt ended.
    public enum Outcome: Sendable, Equatable {
        case upgraded
        /// The server answered the handshake without upgrading (a 4xx/5xx refusal, e.g. 429).
        case refused
        /// No answer: connection refused, reset or timed out.
        case unreachable
    }

    /// Connects agent `index`. Returns `false` when the connection or upgrade failed.
    @discardableResult
    public func connect(_ index: Int) async -> Bool { await attempt(index) == .upgraded }

    /// Connects agent `index` and says how it went.
    public func attempt(_ index: Int, try number: Int = 0) async -> Outcome {
        let configuration = self.configuration
        // The first try goes to this process's node; after a failure, to another node.
        let port = number == 0 || configuration.fallbackPorts.isEmpty
            ? configuration.port : configuration.fallbackPorts[(index &+ number) % configuration.fallbackPorts.count]
        let stats = self.stats
        var path = "/v1/agent?id=\(configuration.idPrefix)-\(index)&interval_ms=\(configuration.intervalMs)&boot=b\(index)"
        if configuration.flood { path = "/v1/agent?id=\(configuration.idPrefix)-\(index)&boot=b\(index)" }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: configuration.host.contains(":") ? "[\(configuration.host)]:\(port)" : "\(configuration.host):\(port)")
        headers.add(name: "Content-Length", value: "0")
        if let token = configuration.token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        let onClosed: @Sendable (Int?, Bool) -> Void = { [weak self] code, expected in
            _ = self?.channels.withLock { $0.removeValue(forKey: index) }
            stats.update { s in
                s.connected -= 1
                if !expected { s.unexpectedCloses[code ?? 1006, default: 0] += 1 }
            }
        }
        let source = try? SocketAddress(ipAddress: configuration.sourceAddresses[index % configuration.sourceAddresses.count], port: 0)
        let upgraded = await upgrade(head: head, from: source, port: port, maxFrameSize: 1 << 14) { channel in
            try channel.pipeline.syncOperations.addHandler(LoadConnection(configuration: configuration, stats: stats, onClosed: onClosed))
            stats.update { $0.connected += 1 }
            self.register(index, channel)
        }
        if upgraded != .upgraded { stats.update { $0.failedConnects += 1 } }
        return upgraded
    }

    /// Connects, upgrades with `head`, and lets `install` add the frame handler.
    func upgrade(
        head: HTTPRequestHead, from source: SocketAddress?, port: Int? = nil, maxFrameSize: Int,
        install: @escaping @Sendable (any Channel) throws -> Void
    ) async -> Outcome {
        do {
            var bootstrap = ClientBootstrap(group: group).channelOption(.socketOption(.so_reuseaddr), value: 1).connectTimeout(.seconds(10))
            if let source { bootstrap = bootstrap.bind(to: source) }
            let upgraded: EventLoopFuture<Outcome> = try await bootstrap.connect(host: configuration.host, port: port ?? configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<Outcome>(
                        maxFrameSize: maxFrameSize,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try install(channel)
                                return .upgraded
                            }
                        })
                    let upgrade = NIOTypedHTTPClientUpgradeConfiguration(
                        upgradeRequestHead: head, upgraders: [upgrader],
                        notUpgradingCompletionHandler: { channel in channel.eventLoop.makeCompletedFuture { .refused } })
                    var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: upgrade)
                    // `welcome` often shares a segment with the 101: keep those bytes.
                    pipeline.leftOverBytesStrategy = .forwardBytes
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
                }
            }
            return try await upgraded.get()
        } catch {
            return .unreachable
        }
    }

    /// Opens a `/v1/watch` stream that times every delivered transition.
    @discardableResult
    public func connectWatcher() async -> Bool {
        let configuration = self.configuration
        let stats = self.stats
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: configuration.authority)
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/v1/watch", headers: headers)
        return await upgrade(head: head, from: nil, maxFrameSize: 1 << 24) { channel in
            try channel.pipeline.syncOperations.addHandler(WatchConnection(stats: stats))
            stats.update { $0.watchers += 1 }
        } == .upgraded
    }

    /// Remembers the channel of agent `index` once it is up (for scenarios that drop agents).
    func register(_ index: Int, _ channel: any Channel) {
        channels.withLock { $0[index] = channel }
    }

    /// Makes `indices` leave: abruptly (TCP close, no close frame) or politely (bye + 1000).
    public func leave(_ indices: [Int], abrupt: Bool) async {
        let targets = channels.withLock { map in indices.compactMap { map[$0] } }
        await withTaskGroup(of: Void.self) { group in
            for channel in targets {
                group.addTask {
                    try? await channel.eventLoop.submit {
                        let handler = try channel.pipeline.syncOperations.handler(type: LoadConnection.self)
                        let context = try channel.pipeline.syncOperations.context(handlerType: LoadConnection.self)
                        handler.leave(context: context, abrupt: abrupt)
                    }.get()
                }
            }
        }
    }

    /// Makes `indices` stop beating with their sockets open.
    public func silence(_ indices: [Int]) async {
        let targets = channels.withLock { map in indices.compactMap { map[$0] } }
        for channel in targets {
            try? await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.handler(type: LoadConnection.self).fallSilent()
            }.get()
        }
    }

    public var openConnections: Int { channels.withLock { $0.count } }

    func channelsContain(_ index: Int) -> Bool { channels.withLock { $0[index] != nil } }
}
