// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-numa",
    products: [
        .library(name: "NUMA", targets: ["NUMA"]),
        .library(name: "NUMAPool", targets: ["NUMAPool"]),
        // Pool health as swift-metrics, and the capacity controllers' driver; a user of the
        // pools alone does not build it.
        .library(name: "NUMAPoolMetrics", targets: ["NUMAPoolMetrics"]),
        // ByteBuffers of swift-nio from a NUMAHeap; built with the "NIO" trait only, so that a
        // user of the pools alone never builds swift-nio.
        .library(name: "NUMAPoolNIO", targets: ["NUMAPoolNIO"]),
        .library(name: "MembenchKit", targets: ["MembenchKit"]),
        .executable(name: "membench", targets: ["membench"]),
    ],
    traits: [
        .trait(name: "NIO", description: "NUMAPoolNIO: swift-nio ByteBuffers whose bytes come from a NUMAHeap"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/yaslab/CSV.swift", from: "2.5.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // The "NIO" trait only: the custom ByteBufferAllocator is SPI, with no promise across
        // minor versions; 2.101 is the one it is known to work with.
        .package(url: "https://github.com/apple/swift-nio", .upToNextMinor(from: "2.101.2")),
        // Tests only: the Prometheus backend the exported metrics are checked against.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibNuma",
            path: "CNuma/system",
            pkgConfig: "numa",
            providers: [.apt(["libnuma-dev"])]
        ),
        .systemLibrary(
            name: "CLibHwloc",
            path: "CNuma/hwloc",
            pkgConfig: "hwloc",
            providers: [.apt(["libhwloc-dev"])]
        ),
        .target(
            name: "CNuma",
            dependencies: ["CLibNuma", "CLibHwloc"],
            path: "CNuma",
            exclude: ["system", "hwloc"],
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("numa"), .linkedLibrary("hwloc")]
        ),
        .target(name: "NUMA", dependencies: ["CNuma"]),
        // The streaming and cache-to-cache loops of membench, in C so that their instructions are fixed.
        .target(name: "CMemoryKernels"),
        .target(
            name: "NUMAPool",
            dependencies: ["NUMA", "CNuma", .product(name: "Atomics", package: "swift-atomics")]
        ),
        .target(
            name: "NUMAPoolMetrics",
            dependencies: [
                "NUMAPool",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "NUMAPoolNIO",
            dependencies: [
                "NUMAPool", "NUMA",
                .product(name: "NIOCore", package: "swift-nio", condition: .when(traits: ["NIO"])),
                .product(name: "Atomics", package: "swift-atomics", condition: .when(traits: ["NIO"])),
            ]
        ),
        .target(
            name: "MembenchKit",
            dependencies: [
                "NUMA", "NUMAPool", "NUMAPoolMetrics", "CNuma", "CMemoryKernels",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CSV", package: "CSV.swift"),
            ]
        ),
        .executableTarget(
            name: "membench",
            dependencies: [
                "MembenchKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // What several test targets share: running the built membench, and the multi-node trait.
        .target(
            name: "TestSupport",
            dependencies: ["NUMA", .product(name: "CSV", package: "CSV.swift")],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "NUMATests", dependencies: ["NUMA"]),
        .testTarget(name: "NUMAPoolTests", dependencies: ["NUMAPool", "NUMA", "CNuma", "TestSupport"]),
        .testTarget(
            name: "NUMAPoolMetricsTests",
            dependencies: [
                "NUMAPoolMetrics", "NUMAPool", "NUMA",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "MembenchKitTests",
            dependencies: [
                "MembenchKit", "membench", "CMemoryKernels", "TestSupport",
                .product(name: "CSV", package: "CSV.swift"),
            ]
        ),
        // Every suite that needs several NUMA nodes: the emulated-NUMA guests run this target
        // (and NUMATests) by name; on a one-node host its multi-node suites are skipped.
        .testTarget(
            name: "MultiNodeTests",
            dependencies: ["NUMA", "NUMAPool", "CNuma", "MembenchKit", "membench", "TestSupport"]
        ),
    ]
)
