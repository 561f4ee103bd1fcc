import NIOCore
import NIOPosix

/// Sleeping on an event loop's timer instead of Swift concurrency's. On Linux the latter arms a
/// libdispatch timer, and libdispatch starts worker threads to serve it; a process whose tasks
/// run on its one event loop (the agent) keeps its thread count at that loop and main this way.
public enum EventLoopSleep {
    /// Sleeps until `deadline`; throws `CancellationError` when the task is cancelled first.
    public static func until(_ deadline: ContinuousClock.Instant, on loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()) async throws {
        try await self.for(deadline - .now, on: loop)
    }

    /// Sleeps for `duration` (at most ten years; zero or less only checks for cancellation).
    public static func `for`(_ duration: Duration, on loop: any EventLoop = MultiThreadedEventLoopGroup.singleton.any()) async throws {
        try Task.checkCancellation()
        guard duration > .zero else { return }
        // Whole nanoseconds, capped so that no configured or server-sent value can overflow.
        let seconds = min(duration.components.seconds, 315_360_000)
        let amount = TimeAmount.nanoseconds(seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
        let scheduled = loop.scheduleTask(in: amount) {}
        do {
            try await withTaskCancellationHandler {
                try await scheduled.futureResult.get()
            } onCancel: {
                scheduled.cancel()
            }
        } catch EventLoopError.cancelled {
            throw CancellationError()
        }
    }
}
