// swift-tools-version:6.1
// Micro-benchmarks for Rollcall, a package of its own so that the root package does not depend
// on ordo-one/benchmark. Run them with `scripts/bench-micro` from the repository root (it passes
// its arguments on, e.g. `scripts/bench-micro --target Codec`).
import Foundation
import PackageDescription

// A path dependency's identity is the last component of its directory, lowercased: "main" in
// /work/main, "ci3" in /tmp/ci3. Work it out from where this manifest lies instead of naming it.
let rootDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let rootIdentity = rootDirectory.lastPathComponent.lowercased()

let benchmarkDependency: [Target.Dependency] = [.product(name: "Benchmark", package: "benchmark"), "BenchmarkSupport"]
let benchmarkPlugins: [Target.PluginUsage] = [.plugin(name: "BenchmarkPlugin", package: "benchmark")]

let package = Package(
    name: "RollcallBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        // Only the malloc interposer: the Swift 6.3 runtime (ARC) interposer is not needed for
        // the metrics used here.
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Metrics and allocation thresholds the benchmark targets share.
        .target(
            name: "BenchmarkSupport",
            dependencies: [.product(name: "Benchmark", package: "benchmark")],
            path: "BenchmarkSupport"
        ),
        // The plugin runs every executable target whose directory lies directly in Benchmarks/.
        // Each target lives in Benchmarks/<Name>/ and defines `let benchmarks` in <Name>.swift.

        // WireCodec on the server's heartbeat hot path (binary and JSON).
        .executableTarget(
            name: "Codec",
            dependencies: benchmarkDependency + [.product(name: "RollcallCore", package: rootIdentity)],
            path: "Codec",
            plugins: benchmarkPlugins
        ),
        // LivenessEngine at 100,000 agents: signOfLife per heartbeat and deadline sweeps.
        .executableTarget(
            name: "Liveness",
            dependencies: benchmarkDependency + [.product(name: "RollcallCore", package: rootIdentity)],
            path: "Liveness",
            plugins: benchmarkPlugins
        ),
        // SQLiteHistoryStore: the history writer's batches on a temporary file database.
        .executableTarget(
            name: "Store",
            dependencies: benchmarkDependency + [
                .product(name: "RollcallCore", package: rootIdentity),
                .product(name: "RollcallStore", package: rootIdentity),
            ],
            path: "Store",
            plugins: benchmarkPlugins
        ),

        // The dashboard's frame and re-sort at 100,000 agents.
        .executableTarget(
            name: "Dashboard",
            dependencies: benchmarkDependency + [
                .product(name: "RollcallCore", package: rootIdentity),
                .product(name: "RollcallDashboard", package: rootIdentity),
            ],
            path: "Dashboard",
            plugins: benchmarkPlugins
        ),
    ]
)
