// erfc, log, log10, pow: the C library's, not Foundation's (the agent links no Foundation).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The phi-accrual failure detector (Hayashibara et al., 2004) over one agent's heartbeat
/// inter-arrival times, kept as an exponentially weighted mean and variance so it costs 24 bytes
/// per agent and no allocation per heartbeat.
///
/// `phi(t) = -log10(1 - F(t))`, with `F` the normal CDF of the observed inter-arrival times and
/// `t` the time since the last heartbeat. Because `F` is invertible, the moment phi crosses a
/// threshold is a plain deadline (`mean + stddev × z`), so the engine's one deadline heap serves
/// this detector too: nothing is polled.
public struct PhiAccrualEstimate: Sendable, Equatable {
    /// Weight of the newest sample in the moving estimates.
    static let alpha = 0.125
    /// Samples needed before the estimate is trusted; until then the fixed deadlines apply.
    public static let warmupSamples = 3

    public private(set) var meanMs: Double = 0
    public private(set) var varianceMs2: Double = 0
    public private(set) var samples: Int = 0

    public init() {}

    public mutating func record(intervalMs: Double) {
        guard intervalMs >= 0 else { return }
        samples += 1
        if samples == 1 {
            meanMs = intervalMs
            varianceMs2 = 0
            return
        }
        let delta = intervalMs - meanMs
        meanMs += Self.alpha * delta
        varianceMs2 = (1 - Self.alpha) * (varianceMs2 + Self.alpha * delta * delta)
    }

    public var isReady: Bool { samples >= Self.warmupSamples }

    /// Standard deviation, floored so a perfectly regular agent is not declared dead by the
    /// first millisecond of jitter.
    public func stddevMs(floor: Double) -> Double { max(varianceMs2.squareRoot(), floor) }

    /// phi after `elapsedMs` of silence.
    public func phi(elapsedMs: Double, minStddevMs: Double) -> Double {
        let sigma = stddevMs(floor: minStddevMs)
        let z = (elapsedMs - meanMs) / sigma
        let tail = 0.5 * erfc(z / 2.0.squareRoot())  // 1 - F(elapsed)
        return tail <= 0 ? Double.infinity : -log10(tail)
    }

    /// Silence after which phi reaches `threshold`.
    public func silenceMs(forPhi threshold: Double, minStddevMs: Double) -> Double {
        let tail = pow(10, -threshold)
        return meanMs + stddevMs(floor: minStddevMs) * inverseStandardNormal(1 - tail)
    }
}

/// Φ⁻¹(p) by Acklam's rational approximation (relative error < 1.2e-9), refined by one Newton
/// step against `erfc`.
func inverseStandardNormal(_ p: Double) -> Double {
    precondition(p > 0 && p < 1)
    let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
    let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
    let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
    let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    let low = 0.02425
    var x: Double
    if p < low {
        let q = (-2 * log(p)).squareRoot()
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    } else if p <= 1 - low {
        let q = p - 0.5
        let r = q * q
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    } else {
        let q = (-2 * log(1 - p)).squareRoot()
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    }
    let e = 0.5 * erfc(-x / 2.0.squareRoot()) - p
    let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
    x = x - u / (1 + x * u / 2)
    return x
}
