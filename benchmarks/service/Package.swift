// swift-tools-version: 6.1
// The reference study's service: a Hummingbird 2 server whose request contexts come from an
// ObjectPool and whose ByteBuffers come from a NUMAHeap, with pool health at /metrics. It is a
// package of its own so that a user of the pools never builds swift-nio or Hummingbird; it takes
// the root package by path, with the "NIO" trait that builds NUMAPoolNIO.
import PackageDescription

let package = Package(
    name: "numa-service",
    products: [
        .executable(name: "numa-service", targets: ["numa-service"]),
    ],
    dependencies: [
        .package(name: "swift-numa", path: "../..", traits: ["NIO"]),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", .upToNextMinor(from: "2.101.2")),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        .target(
            name: "NUMAService",
            dependencies: [
                .product(name: "NUMA", package: "swift-numa"),
                .product(name: "NUMAPool", package: "swift-numa"),
                .product(name: "NUMAPoolMetrics", package: "swift-numa"),
                .product(name: "NUMAPoolNIO", package: "swift-numa"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "numa-service",
            dependencies: [
                "NUMAService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "NUMAServiceTests",
            dependencies: [
                "NUMAService",
                .product(name: "NUMAPool", package: "swift-numa"),
                .product(name: "NUMAPoolNIO", package: "swift-numa"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
    ]
)
