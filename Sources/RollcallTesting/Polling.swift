/// Waits until `condition` holds, asking every 50 ms, or throws ``TestTimeout`` naming `what`.
/// For what a test cannot be told about: another process's state (a server, PostgreSQL, a file).
public func waitUntil(_ what: String, within limit: Duration = .seconds(10), _ condition: () async -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while !(await condition()) {
        guard ContinuousClock.now < deadline else { throw TestTimeout(what: what) }
        try await Task.sleep(for: .milliseconds(50))
    }
}
