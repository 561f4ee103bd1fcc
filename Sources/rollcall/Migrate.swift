import ArgumentParser
import Foundation
import Logging
import RollcallStore

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the history database, then exit.")

    @Option(help: "History database: a SQLite file, or postgres://USER@HOST:PORT/DATABASE.")
    var db: String = "./rollcall.db"

    @Option(name: .customLong("db-password-file"), help: "File holding the PostgreSQL password (or set PGPASSWORD); never in --db.")
    var dbPasswordFile: String?

    func validate() throws {
        if PostgresLocation.isPostgresURL(db) {
            do { _ = try PostgresLocation(parsing: db) } catch { throw ValidationError(error.description) }
        } else if dbPasswordFile != nil {
            throw ValidationError("--db-password-file is for a PostgreSQL --db (postgres://USER@HOST:PORT/DATABASE)")
        }
    }

    func run() throws {
        if PostgresLocation.isPostgresURL(db) {
            let location = try PostgresLocation(parsing: db)
            var password = ProcessInfo.processInfo.environment["PGPASSWORD"]
            if let dbPasswordFile {
                guard let text = try? String(contentsOfFile: dbPasswordFile, encoding: .utf8) else {
                    throw ValidationError("--db-password-file \(dbPasswordFile) cannot be read")
                }
                password = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            var logger = Logger(label: "rollcall")
            logger.logLevel = .notice
            let store = try PostgresHistoryStore(location: location, password: password, nodeID: "migrate", logger: logger)
            defer { store.close() }
            print("\(location): schema up to date (\(try store.appliedMigrations().joined(separator: ", ")))")
            return
        }
        let store = try SQLiteHistoryStore(path: db)
        let applied = try store.appliedMigrations()
        print("\(db): schema up to date (\(applied.joined(separator: ", ")))")
    }
}
