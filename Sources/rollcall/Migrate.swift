import ArgumentParser
import RollcallStore

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create or upgrade the history database, then exit.")

    @Option(help: "SQLite history file.")
    var db: String = "./rollcall.db"

    func run() throws {
        let store = try SQLiteHistoryStore(path: db)
        let applied = try store.appliedMigrations()
        print("\(db): schema up to date (\(applied.joined(separator: ", ")))")
    }
}
