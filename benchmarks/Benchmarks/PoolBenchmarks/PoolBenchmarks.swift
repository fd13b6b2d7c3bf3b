// Microbenchmarks of the pools' hot paths (names carry no spaces: threshold files are named
// after them), the chain builder and the chase loop, each beside its
// baseline in the same run: malloc/free of the same size, and a plain C pointer chase.
import Benchmark
import Foundation
import MembenchKit
import NUMA
import NUMAPool
import ReferenceChase

let blockSize = 64

/// Memory shared by the chase benchmarks: a random chain over 256 KiB, built once. It fits the
/// L2, so that the benchmarks time the loop, not the cache's state: a 16 MiB chain sits at the
/// edge of this host's shared L3 and either stays in it or not, run by run (a p90 of 147 ms
/// per 1000 samples in one run, 33 in the next), which no threshold can hold.
final class ChaseFixture: @unchecked Sendable {
    // @unchecked: built once before the benchmarks run, then only read.
    let region: MemoryRegion
    let chain: Chain

    init() {
        let region = try! MemoryRegion(size: 256 << 10)
        region.faultIn()
        chain = Chain.build(groups: [region.baseAddress], groupBytes: 256 << 10, layout: SlotLayout(stride: 256),
                            pattern: .chase, seed: 1)
        self.region = region
    }
}

let benchmarks: @Sendable () -> Void = {
    // Wall clock only, with a p90 tolerance wide enough for a noisy 2-core VM: a regression
    // check here catches a lost fast path (2x), not a few percent.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock],
        warmupIterations: 1000,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000,
        thresholds: [.wallClock: BenchmarkThresholds(relative: [.p90: 60.0])]
    )

    let local = try! LocalPool(blockSize: blockSize, capacityPerNode: 64 << 20)
    Benchmark("LocalPool.getPut.cacheHit") { benchmark in
        for _ in benchmark.scaledIterations {
            let block = try local.allocate()
            blackHole(block)
            local.deallocate(block)
        }
    }

    // A two-block cache and 64 blocks in flight: nearly every get and put goes to the arena.
    let missing = try! LocalPool(blockSize: blockSize, capacityPerNode: 64 << 20, cacheCapacity: 2)
    Benchmark("LocalPool.getPut.cacheMiss64") { benchmark in
        var held = [UnsafeMutableRawPointer?](repeating: nil, count: 64)
        for _ in benchmark.scaledIterations {
            for i in 0..<64 { held[i] = try missing.allocate() }
            for i in 0..<64 { missing.deallocate(held[i]!) }
        }
    }

    let global = try! GlobalPool(blockSize: blockSize, capacity: 64 << 20)
    Benchmark("GlobalPool.getPut") { benchmark in
        for _ in benchmark.scaledIterations {
            let block = try global.allocate()
            blackHole(block)
            global.deallocate(block)
        }
    }

    Benchmark("malloc.free.sameSize") { benchmark in
        for _ in benchmark.scaledIterations {
            let block = malloc(blockSize)
            blackHole(block)
            free(block)
        }
    }

    let objects = try! ObjectPool(backing: LocalPool(blockSize: blockSize, capacityPerNode: 16 << 20),
                                  factory: { [UInt8]() }, reset: { $0.removeAll(keepingCapacity: true) })
    Benchmark("ObjectPool.leaseRelease") { benchmark in
        for _ in benchmark.scaledIterations {
            let lease = try objects.lease()
            lease.value.append(1)
            lease.release()
        }
    }

    Benchmark("Chain.build.16MiB",
              configuration: .init(metrics: [.wallClock], scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 20)) { benchmark in
        let region = try MemoryRegion(size: 16 << 20)
        region.faultIn()
        let base = region.baseAddress
        let groups = (0..<64).map { base + $0 * (256 << 10) }
        benchmark.startMeasurement()
        let chain = Chain.build(groups: groups, groupBytes: 256 << 10, layout: SlotLayout(stride: 256), pattern: .chase, seed: 3)
        benchmark.stopMeasurement()
        blackHole(chain.slots)
    }

    let fixture = ChaseFixture()
    Benchmark("Chase.swift.1024loads") { benchmark in
        var pointer = fixture.chain.start
        for _ in benchmark.scaledIterations { pointer = chase(from: pointer, loads: 1024) }
        blackHole(pointer)
    }

    Benchmark("Chase.referenceC.1024loads") { benchmark in
        var pointer = fixture.chain.start
        for _ in benchmark.scaledIterations { pointer = ReferenceChase_chase(pointer, 1024)! }
        blackHole(pointer)
    }
}
