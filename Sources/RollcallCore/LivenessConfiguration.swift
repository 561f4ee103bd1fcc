/// The intervals and deadlines the server grants, and the bounds on what an agent may ask for.
public struct LivenessConfiguration: Sendable, Equatable {
    /// Interval granted when the agent asks for none (`--interval-ms`).
    public var defaultIntervalMs: Int64
    /// Timeout granted with the default interval (`--timeout-ms`); other intervals keep the same ratio.
    public var defaultTimeoutMs: Int64
    public var minIntervalMs: Int64
    public var maxIntervalMs: Int64
    /// A beat is overdue, and the agent suspect, after `interval × slack` of silence.
    public var slack: Double

    public init(
        defaultIntervalMs: Int64 = 5_000,
        defaultTimeoutMs: Int64 = 15_000,
        minIntervalMs: Int64 = 100,
        maxIntervalMs: Int64 = 300_000,
        slack: Double = 1.5
    ) {
        self.defaultIntervalMs = defaultIntervalMs
        self.defaultTimeoutMs = defaultTimeoutMs
        self.minIntervalMs = minIntervalMs
        self.maxIntervalMs = maxIntervalMs
        self.slack = slack
    }

    /// The interval and timeout granted for a requested interval.
    public func grant(requestedIntervalMs: Int64?) -> (intervalMs: Int64, timeoutMs: Int64) {
        guard let requested = requestedIntervalMs, requested != defaultIntervalMs else {
            return (defaultIntervalMs, defaultTimeoutMs)
        }
        let interval = min(max(requested, minIntervalMs), maxIntervalMs)
        let timeout = Int64((Double(interval) * Double(defaultTimeoutMs) / Double(defaultIntervalMs)).rounded())
        return (interval, max(timeout, interval + 1))
    }

    /// Silence after which an online agent becomes suspect.
    public func missDelay(intervalMs: Int64) -> Int64 {
        Int64((Double(intervalMs) * slack).rounded())
    }
}
