import NIOCore

/// A Swift concurrency task executor that runs jobs on one NIO event loop. A task started with it
/// as its executor preference, and every child task, non-isolated async function and default
/// actor it calls into, runs on that loop: a process holding one connection (the agent) needs no
/// other thread, and its I/O results are picked up without a hop between threads.
///
/// (Taking over Swift's global executor, as NIO offers to, looks the hook up with `dlsym`, which
/// finds nothing in a binary linked with the Swift runtime statically, as the agent ships.)
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
