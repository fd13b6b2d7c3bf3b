// swift-tools-version: 6.1
import PackageDescription

// The benchmark suite of swift-numa: package-benchmark microbenchmarks, and a plain C pointer
// chase and plain C bandwidth loops that membench is measured against. `benchmarks/run` reproduces every published number.
let package = Package(
    name: "swift-numa-benchmarks",
    dependencies: [
        .package(name: "swift-numa", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .target(name: "ReferenceChase", path: "Sources/ReferenceChase"),
        .executableTarget(name: "reference-chase", path: "Sources/reference-chase",
                          cSettings: [.unsafeFlags(["-O2"])], linkerSettings: [.linkedLibrary("m")]),
        .executableTarget(name: "chain-fingerprint", dependencies: [.product(name: "MembenchKit", package: "swift-numa")],
                          path: "Sources/chain-fingerprint"),
        .executableTarget(name: "reference-bandwidth", path: "Sources/reference-bandwidth",
                          cSettings: [.unsafeFlags(["-O2"])]),
        .executableTarget(name: "pool-pairs", dependencies: [.product(name: "NUMAPool", package: "swift-numa")],
                          path: "Sources/pool-pairs"),
        .executableTarget(
            name: "PoolBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NUMA", package: "swift-numa"),
                .product(name: "NUMAPool", package: "swift-numa"),
                .product(name: "MembenchKit", package: "swift-numa"),
                "ReferenceChase",
            ],
            path: "Benchmarks/PoolBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
