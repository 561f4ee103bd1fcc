import Foundation
import Logging
import RollcallStore
import Testing

/// The history backends one store test suite runs against: the same tests, run twice.
public enum StoreBackend: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case sqlite
    case postgres

    public var testDescription: String { rawValue }

    /// SQLite always; PostgreSQL when `ROLLCALL_TEST_POSTGRES` names a server (`scripts/test`
    /// starts one). With `ROLLCALL_REQUIRE_POSTGRES=1` (CI) a missing server fails the run
    /// instead of leaving half the suite out.
    public static var available: [StoreBackend] {
        let environment = ProcessInfo.processInfo.environment
        if environment["ROLLCALL_TEST_POSTGRES"] != nil { return [.sqlite, .postgres] }
        precondition(
            environment["ROLLCALL_REQUIRE_POSTGRES"] != "1",
            "ROLLCALL_REQUIRE_POSTGRES is set but ROLLCALL_TEST_POSTGRES is not: start one with eval \"$(scripts/postgres start)\"")
        return [.sqlite]
    }

    /// The PostgreSQL server of the tests, e.g. `postgres://rollcall@127.0.0.1:5433/rollcall`.
    public static var postgresURL: String? { ProcessInfo.processInfo.environment["ROLLCALL_TEST_POSTGRES"] }
}

/// A fresh, empty history on one backend, with a way to read it as an analyst would: `sqlite3`
/// for the file, `psql` for PostgreSQL, each row as `a|b|c`.
public final class TestStore: @unchecked Sendable {
    public let backend: StoreBackend
    public let store: any HistoryStore
    /// The SQLite file, or the PostgreSQL database's URL.
    public let location: String
    private let directory: URL?

    public init(_ backend: StoreBackend, nodeID: String = "test-node") throws {
        self.backend = backend
        switch backend {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rollcall-store-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            self.directory = directory
            location = directory.appendingPathComponent("history.db").path
            store = try SQLiteHistoryStore(path: location)
        case .postgres:
            directory = nil
            location = try Self.createDatabase()
            var quiet = Logger(label: "rollcall.test.postgres")
            quiet.logLevel = .critical
            store = try PostgresHistoryStore(location: PostgresLocation(parsing: location), password: nil, nodeID: nodeID, logger: quiet)
        }
    }

    /// A new database on the tests' PostgreSQL server, its URL.
    public static func createDatabase() throws -> String {
        guard let server = StoreBackend.postgresURL else {
            throw TestStoreError(description: "ROLLCALL_TEST_POSTGRES is not set: eval \"$(scripts/postgres start)\"")
        }
        let name = "rollcall_t_\(UInt64.random(in: 0...UInt64.max))"
        _ = try psql(server, "CREATE DATABASE \(name)")
        guard let slash = server.lastIndex(of: "/") else { throw TestStoreError(description: "ROLLCALL_TEST_POSTGRES names no database") }
        return server[..<slash] + "/" + name
    }

    /// Another store on the same PostgreSQL database (a second node), or `nil` for SQLite.
    public func sibling(nodeID: String, leaseMs: Int64 = 10_000) throws -> PostgresHistoryStore? {
        guard backend == .postgres else { return nil }
        var quiet = Logger(label: "rollcall.test.postgres")
        quiet.logLevel = .critical
        return try PostgresHistoryStore(location: PostgresLocation(parsing: location), password: nil, nodeID: nodeID, leaseMs: leaseMs, logger: quiet)
    }

    /// The rows of `sql`, each as its columns joined by `|` (NULL as an empty column).
    public func rows(_ sql: String) throws -> [String] {
        switch backend {
        case .sqlite: try Self.run(["sqlite3", "-readonly", "-cmd", ".timeout 5000", location, sql])
        case .postgres: try Self.psql(location, sql)
        }
    }

    /// The rows of `sql` on the PostgreSQL database at `url`, as ``rows(_:)`` gives them.
    public static func psqlRows(_ url: String, _ sql: String) throws -> [String] { try psql(url, sql) }

    static func psql(_ url: String, _ sql: String) throws -> [String] {
        try run(["psql", url, "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c", sql])
    }

    static func run(_ arguments: [String]) throws -> [String] {
        let result = try runSynchronously(arguments)
        guard result.status == 0 else { throw TestStoreError(description: "\(arguments[0]) failed: \(result.errors)") }
        return result.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    deinit {
        (store as? PostgresHistoryStore)?.close()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }
}

public struct TestStoreError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

