import RollcallAgent
import Testing

@Suite struct AgentShutdownTests {
    @Test func oneTriggerReleasesEveryWaiterAndLaterWaitsReturnAtOnce() async throws {
        let shutdown = AgentShutdown()
        let waiters = (0..<3).map { _ in Task.immediate { try await shutdown.wait() } }
        #expect(!shutdown.isTriggered)
        shutdown.trigger()
        shutdown.trigger()
        for waiter in waiters { try await waiter.value }
        try await shutdown.wait()
        #expect(shutdown.isTriggered)
    }

    @Test func aCancelledWaitThrowsCancellationErrorAndLeavesTheOthersWaiting() async throws {
        let shutdown = AgentShutdown()
        let cancelled = Task.immediate { try await shutdown.wait() }
        let kept = Task.immediate { try await shutdown.wait() }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        shutdown.trigger()
        try await kept.value
    }

    @Test func aPauseEndsWhenTheShutdownIsTriggered() async {
        let shutdown = AgentShutdown()
        let pause = Task.immediate { await shutdown.pause(.seconds(3600)) }
        shutdown.trigger()
        await pause.value
        // Triggered already: no sleep at all.
        await shutdown.pause(.seconds(3600))
    }
}
