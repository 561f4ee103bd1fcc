// What the benchmark targets share: which metrics to measure, and the allocation thresholds the
// test suite checks (`scripts/bench-micro-check`).
public import Benchmark
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Under `ROLLCALL_BENCH_ALLOCATIONS=1` (the test suite's check) only allocations are measured:
/// they are the same on every run, unlike time on a shared machine.
public let allocationsOnly = getenv("ROLLCALL_BENCH_ALLOCATIONS") != nil

public let measuredMetrics: [BenchmarkMetric] =
    allocationsOnly ? [.mallocCountTotal] : [.wallClock, .cpuTotal, .mallocCountTotal, .throughput]

/// Any allocation more than the stored thresholds (Benchmarks/Thresholds/) is a regression.
public var allocationThresholds: [BenchmarkMetric: BenchmarkThresholds] { [.mallocCountTotal: .init(absolute: [.p90: 0])] }
