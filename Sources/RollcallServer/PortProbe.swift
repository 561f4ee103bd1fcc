import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds out, before anything is written, whether the server's address can be bound: a server
/// that is going to fail to listen must leave the database as it found it.
///
/// It binds a throw-away socket with the options the real listener uses (`SO_REUSEADDR`) and
/// closes it at once; the real bind follows a moment later, so a race with another process is
/// still possible but the mistakes that matter (a second server, a taken port) are caught.
enum PortProbe {
    /// Throws the `IOError` the real bind would throw (errno `EADDRINUSE`, `EACCES`,
    /// `EADDRNOTAVAIL`); returns for port 0 (the system picks a free one).
    static func check(host: String, port: Int) throws {
        guard port != 0 else { return }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        // A host that does not resolve is the real listener's error to report, in its words.
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return }
        defer { freeaddrinfo(first) }
        let info = first.pointee
        let fd = socket(info.ai_family, info.ai_socktype, info.ai_protocol)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, info.ai_addr, info.ai_addrlen) != 0 {
            throw IOError(errnoCode: errno, reason: "bind")
        }
        if listen(fd, 1) != 0 {
            throw IOError(errnoCode: errno, reason: "listen")
        }
    }
}
