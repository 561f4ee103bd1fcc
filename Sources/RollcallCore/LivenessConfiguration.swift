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
    /// How an online agent becomes suspect. Offline is always `timeout_ms` after the last sign of life.
    public var detector: Detector

    /// Suspicion models.
    public enum Detector: Sendable, Equatable {
        /// Suspect after `interval × slack` of silence.
        case fixed
        /// Suspect when phi-accrual suspicion over the agent's own inter-arrival times reaches
        /// `threshold` (8 is a common choice: about one false suspicion in 10⁸ beats for a
        /// normally distributed arrival pattern). Until an agent has sent a few beats, the fixed
        /// rule applies.
        case phiAccrual(threshold: Double)
    }

    public init(
        defaultIntervalMs: Int64 = 5_000,
        defaultTimeoutMs: Int64 = 15_000,
        minIntervalMs: Int64 = 100,
        maxIntervalMs: Int64 = 300_000,
        slack: Double = 1.5,
        detector: Detector = .fixed
    ) {
        self.defaultIntervalMs = defaultIntervalMs
        self.defaultTimeoutMs = defaultTimeoutMs
        self.minIntervalMs = minIntervalMs
        self.maxIntervalMs = maxIntervalMs
        self.slack = slack
        self.detector = detector
    }

    /// The floor on the inter-arrival standard deviation the phi detector assumes.
    public func minStddevMs(intervalMs: Int64) -> Double { max(Double(intervalMs) / 10, 20) }

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
