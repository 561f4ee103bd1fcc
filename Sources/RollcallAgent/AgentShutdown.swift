import RollcallTransport
import Synchronization

/// Tells running agents to say `bye`, close and stop: the binary triggers it on SIGTERM/SIGINT,
/// an embedding program (the demo) on its own graceful shutdown. One trigger serves any number of
/// runners. (The agent does not take swift-service-lifecycle for this: with the async algorithms
/// it brings, that would be a tenth of the agent's binary for a flag and a wait.)
public final class AgentShutdown: Sendable {
    private struct State {
        var triggered = false
        var nextWaiter = 0
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public var isTriggered: Bool { state.withLock { $0.triggered } }

    /// Starts the shutdown; later calls do nothing.
    public func trigger() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            guard !state.triggered else { return [] }
            state.triggered = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the shutdown is triggered; throws `CancellationError` if the task is
    /// cancelled first.
    public func wait() async throws {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = state.withLock { state in
                    if state.triggered { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }

    /// Sleeps for `duration` on an event loop's timer, returning early on the shutdown or on
    /// cancellation.
    public func pause(_ duration: Duration) async {
        guard !isTriggered else { return }
        await withTaskGroup(of: Void.self) { race in
            race.addTask { try? await EventLoopSleep.for(duration) }
            race.addTask { try? await self.wait() }
            await race.next()
            race.cancelAll()
        }
    }
}
