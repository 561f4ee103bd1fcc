import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A free TCP port on 127.0.0.1, found by binding port 0 and releasing it.
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// The real `rollcall serve` executable, for tests that kill it.
public final class ServerProcess: @unchecked Sendable {
    public let process = Process()
    public let port: Int

    public init(port: Int, databasePath: String, extraArguments: [String] = []) throws {
        self.port = port
        process.executableURL = productsDirectory.appendingPathComponent("rollcall")
        // ROLLCALL_TEST_LOG_DIR keeps each server's log (at info) for a failure to be read.
        let logDirectory = ProcessInfo.processInfo.environment["ROLLCALL_TEST_LOG_DIR"]
        process.arguments = ["serve", "--port", String(port), "--db", databasePath, "--log-level", logDirectory == nil ? "error" : "info"] + extraArguments
        process.standardOutput = FileHandle.nullDevice
        if let logDirectory, FileManager.default.createFile(atPath: "\(logDirectory)/serve-\(port).log", contents: nil),
            let log = FileHandle(forWritingAtPath: "\(logDirectory)/serve-\(port).log")
        {
            process.standardError = log
        } else {
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
    }

    /// Waits until `/healthz` answers.
    public func waitUntilReady(within limit: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let response = try? await httpGET(port: port, "/healthz"), response.status == 200 { return }
            guard process.isRunning else { throw TestTimeout(what: "rollcall serve (it exited with \(process.terminationStatus))") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestTimeout(what: "rollcall serve to listen on \(port)")
    }

    public func kill(_ signal: Int32) {
        if process.isRunning { Glibc.kill(process.processIdentifier, signal) }
    }

    /// Waits for the process to exit and returns its status.
    public func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { kill(SIGKILL) }
}
