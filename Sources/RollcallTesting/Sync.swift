import Synchronization

/// A `Mutex` in a class, so closures and tasks can share it.
public final class Mutex2<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R { try mutex.withLock { try body(&$0) } }
}

/// Wakes every waiter when something changed. Waiters pass the generation they last saw, so a
/// change between their check and their wait is never lost.
public final class AsyncBroadcast: Sendable {
    private struct State {
        var generation = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }
    private let state = Mutex2(State())

    public init() {}

    public var generation: Int { state.withLock { $0.generation } }

    public func fire() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.generation += 1
            defer { s.waiters.removeAll() }
            return Array(s.waiters.values)
        }
        for c in waiters { c.resume() }
    }

    /// Returns once the generation moved past `seen`, or at `deadline`.
    public func wait(since seen: Int, until deadline: ContinuousClock.Instant) async {
        let id = state.withLock { s -> Int in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { c in
                    let resumeNow = self.state.withLock { s -> Bool in
                        if s.generation != seen { return true }
                        s.waiters[id] = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
            // If the deadline won, release our own continuation.
            if let c = self.state.withLock({ $0.waiters.removeValue(forKey: id) }) { c.resume() }
        }
    }
}
