import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One database, one server: an exclusive `flock` on the database file itself, taken before
/// anything reads or repairs it and held for the life of the process.
///
/// The lock is on the database file, not on a side file, so deleting a stale side file can never
/// let a second server in; `flock` is independent of SQLite's own POSIX locks, so `sqlite3`
/// readers are unaffected. The holder writes who it is (pid and address) to `<db>.lock` so a
/// refused start can name it; that file is information only.
public final class DatabaseLock: Sendable {
    public let path: String
    private let descriptor: Mutex<Int32?>
    private let infoPath: String

    /// Another process holds the database.
    public struct Held: Error, CustomStringConvertible {
        public var path: String
        /// What the holder wrote about itself ("pid 1234, listening on 127.0.0.1:7777"), if readable.
        public var holder: String?

        public var description: String {
            "\(path) is in use by another rollcall server (\(holder ?? "its pid and address are unknown")); "
                + "one database has one server: stop that one, or give this one another --db"
        }
    }

    /// The database file cannot be created or opened at all.
    public struct Unavailable: Error, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "cannot open the database \(path): \(reason)" }
    }

    /// Takes the lock or throws ``Held`` at once (it never waits). Creates the file if missing.
    public init(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
                throw Unavailable(path: path, reason: "the folder \(directory) does not exist (create it, or choose another --db)")
            }
            if !isDirectory.boolValue { throw Unavailable(path: path, reason: "\(directory) is not a folder") }
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw Unavailable(path: path, reason: String(cString: strerror(errno)))
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let why = errno
            close(fd)
            if why == EWOULDBLOCK {
                let holder = (try? String(contentsOfFile: path + ".lock", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                throw Held(path: path, holder: holder.flatMap { $0.isEmpty ? nil : String($0.prefix(200)) })
            }
            throw Unavailable(path: path, reason: "cannot lock it: \(String(cString: strerror(why)))")
        }
        self.path = path
        self.descriptor = Mutex(fd)
        self.infoPath = path + ".lock"
    }

    /// Records who holds the lock, for the message a second server prints.
    public func describeHolder(_ text: String) {
        try? Data((text + "\n").utf8).write(to: URL(fileURLWithPath: infoPath))
    }

    /// Lets the next server in: called once the history is closed. Idempotent.
    public func release() {
        descriptor.withLock { fd in
            guard let open = fd else { return }
            try? FileManager.default.removeItem(atPath: infoPath)
            close(open)
            fd = nil
        }
    }

    deinit { release() }
}
