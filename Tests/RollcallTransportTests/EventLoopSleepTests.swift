import NIOCore
import NIOEmbedded
import NIOPosix
import RollcallTransport
import Synchronization
import Testing

/// The sleep the agent uses, on an event loop whose clock the test moves by hand. The sleepers
/// start with `Task.immediate`, so their timer is registered before the test moves the clock.
@Suite struct EventLoopSleepTests {
    @Test func wakesWhenTheLoopsClockReachesTheDurationAndNotBefore() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let woke = Flag()
        let sleeper = Task.immediate {
            try await EventLoopSleep.for(.seconds(5), on: loop)
            woke.set()
        }
        await loop.advanceTime(by: .milliseconds(4_999))
        #expect(!woke.isSet)
        await loop.advanceTime(by: .milliseconds(1))
        try await sleeper.value
        #expect(woke.isSet)
        await loop.shutdownGracefully()
    }

    @Test func cancellationEndsTheSleepWithCancellationError() async throws {
        let loop = NIOAsyncTestingEventLoop()
        let sleeper = Task.immediate { try await EventLoopSleep.for(.seconds(3600), on: loop) }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        await loop.shutdownGracefully()
    }

    @Test func aDurationOfZeroOrLessReturnsAtOnceAndAHugeOneDoesNotTrap() async throws {
        let loop = NIOAsyncTestingEventLoop()
        try await EventLoopSleep.for(.zero, on: loop)
        try await EventLoopSleep.for(.seconds(-5), on: loop)
        let sleeper = Task.immediate { try await EventLoopSleep.for(.seconds(Int64.max), on: loop) }
        // Ten years is the cap: a day later it still sleeps.
        await loop.advanceTime(by: .hours(24))
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        await loop.shutdownGracefully()
    }
}

final class Flag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}

@Suite struct EventLoopTaskExecutorTests {
    @Test func aTaskThatPrefersTheLoopRunsOnItThroughChildTasksAndAwaits() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let executor = EventLoopTaskExecutor(loop)
        let onLoop = try await Task.detached(executorPreference: executor) { () async throws -> [Bool] in
            var seen = [loop.inEventLoop]
            try await EventLoopSleep.for(.milliseconds(1), on: loop)
            seen.append(loop.inEventLoop)
            let children = await withTaskGroup(of: Bool.self) { children in
                for _ in 0..<4 { children.addTask { loop.inEventLoop } }
                return await children.reduce(into: [Bool]()) { $0.append($1) }
            }
            return seen + children
        }.value
        #expect(onLoop == Array(repeating: true, count: 6))
        try await group.shutdownGracefully()
    }
}
