import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real HAProxy (`mode tcp`) in front of several nodes, as docs/operations.md sets one up:
/// health-checked on `/healthz`, least connections, redispatching a connection that a dead
/// node refused.
public final class HAProxy: @unchecked Sendable {
    public let port: Int
    let process = Process()
    let directory: URL

    public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: "/usr/sbin/haproxy") }

    public init(backends: [(name: String, port: Int)]) throws {
        port = try freeLoopbackPort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("rollcall-haproxy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let servers = backends.map { "    server \($0.name) 127.0.0.1:\($0.port) check" }.joined(separator: "\n")
        let configuration = """
            global
                maxconn 4000
            defaults
                mode tcp
                timeout connect 1s
                timeout client 1h
                timeout server 1h
                retries 3
                option redispatch
            frontend agents
                bind 127.0.0.1:\(port)
                default_backend nodes
            backend nodes
                balance leastconn
                option httpchk
                http-check send meth GET uri /healthz
                default-server inter 300ms fall 1 rise 2
            \(servers)

            """
        let path = directory.appendingPathComponent("haproxy.cfg").path
        try configuration.write(toFile: path, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/haproxy")
        process.arguments = ["-f", path, "-db"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits until HAProxy accepts connections and has seen every backend healthy.
    public func waitUntilReady(within limit: Duration = .seconds(10)) async throws {
        try await waitUntil("haproxy to answer on \(port)", within: limit) {
            (try? await httpGET(port: port, "/healthz"))?.status == 200
        }
        try await backendsChecked()
    }

    /// Waits for the health checks to count a backend that just started as up again (`rise 2` ×
    /// `inter 300ms`, and a check's own time), as an operator waits before stopping the next node.
    public func backendsChecked() async throws {
        try await Task.sleep(for: .milliseconds(900))
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }
}
