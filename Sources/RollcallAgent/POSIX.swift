#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The few operating-system services the agent needs, straight from libc. The agent links no
// Foundation (not even FoundationEssentials): it runs on every monitored machine, and Foundation
// would be most of its binary and of its memory.

/// The wall clock in milliseconds since 1970, used only for `sent_ms` (the server's skew report).
func wallClockMs() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// A file's bytes, or `nil` when it cannot be read or holds more than `limit` bytes: a settings
/// or status file is small, and a path pointed at a huge file or `/dev/zero` must not fill memory.
/// With `streams`, a pipe, socket or character device is read too (`--token-file <(vault read …)`),
/// blocking until its writer closes or the limit is passed; without, only a regular file is, since
/// the status file is read on the event loop at every beat and a FIFO there would stall it.
public func readSmallFile(_ path: String, limit: Int, streams: Bool = false) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (streams ? 0 : O_NONBLOCK))
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { return nil }
    let type = info.st_mode & S_IFMT
    guard type == S_IFREG || (streams && (type == S_IFIFO || type == S_IFCHR || type == S_IFSOCK)) else { return nil }
    var bytes = [UInt8](repeating: 0, count: limit + 1)
    var count = 0
    while count <= limit {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, limit + 1 - count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { return nil }
        if n == 0 { break }
        count += n
    }
    guard count <= limit else { return nil }
    return Array(bytes[..<count])
}

/// A small text file as UTF-8, or `nil` (see ``readSmallFile(_:limit:streams:)``).
public func readSmallTextFile(_ path: String, limit: Int = 1 << 20, streams: Bool = true) -> String? {
    readSmallFile(path, limit: limit, streams: streams).map { String(decoding: $0, as: UTF8.self) }
}

/// Whether `path` names something this process may read that is not a directory.
func isReadableFile(_ path: String) -> Bool {
    var info = stat()
    return access(path, R_OK) == 0 && stat(path, &info) == 0 && (info.st_mode & S_IFMT) != S_IFDIR
}

/// This machine's host name, sent in `hello`.
public func currentHostName() -> String? {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
    let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return name.isEmpty ? nil : name
}

/// The process environment as a dictionary.
public func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") {
            result[String(text[..<eq])] = String(text[text.index(after: eq)...])
        }
        pointer += 1
    }
    return result
}
