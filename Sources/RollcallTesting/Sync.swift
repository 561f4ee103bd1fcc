import Synchronization

/// A `Mutex` in a class, so closures and tasks can share it.
public final class Mutex2<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R { try mutex.withLock { try body(&$0) } }
}

/// Wakes every waiter when something changed.
public final class AsyncBroadcast: Sendable {
    private let waiters = Mutex2<[CheckedContinuation<Void, Never>]>([])
    private let generation = Mutex2<Int>(0)

    public init() {}

    public func fire() {
        generation.withLock { $0 += 1 }
        let list = waiters.withLock { w -> [CheckedContinuation<Void, Never>] in
            defer { w.removeAll() }
            return w
        }
        for c in list { c.resume() }
    }

    /// Returns after the next `fire()` or at `deadline`, whichever is first.
    public func wait(until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { c in self.waiters.withLock { $0.append(c) } }
            }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            await group.next()
            group.cancelAll()
            // Release a waiter stuck on the continuation if the deadline won.
            self.fire()
        }
    }
}
