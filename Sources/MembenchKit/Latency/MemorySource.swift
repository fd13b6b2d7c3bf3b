import NUMA
import NUMAPool

/// The memory one worker chases: groups of `groupBytes` from a pool, or a region of its own.
final class AcquiredMemory: @unchecked Sendable {
    // @unchecked: made, used and released by one worker thread.
    let groups: [UnsafeMutableRawPointer]
    let region: MemoryRegion?

    init(groups: [UnsafeMutableRawPointer], region: consuming MemoryRegion?) {
        self.groups = groups
        self.region = region
    }
}

/// Where workers draw their memory, per strategy.
final class MemorySource: Sendable {
    enum Kind: Sendable {
        case local(LocalPool)
        case global(GlobalPool)
        case direct
    }

    let kind: Kind
    /// The global pool's pages per node once every worker holds its memory (`notePlacement`).
    private let placement = Locked<[Int: Int]?>(nil)

    private init(_ kind: Kind) { self.kind = kind }

    /// Makes the pool for a run. The global pool is filled as `--global-fill` says: spread in
    /// chunks over the run's memory nodes, each first touched by a thread on its node (as a
    /// service's threads on every node fill a shared pool); by one thread on the first worker's
    /// CPU (a start-up thread); or interleaved page by page. Every filler runs under the run's
    /// memory policy.
    static func make(for run: ResolvedRun, topology: Topology) throws(MembenchError) -> MemorySource {
        let options = run.options
        let blocks = max(1, run.size / run.groupBytes)
        let blockBytes = BlockSize.rounded(run.groupBytes)
        let cacheCapacity = 128
        switch options.strategy {
        case .direct:
            return MemorySource(.direct)
        case .local:
            // Each arena reserves room for every thread it may serve, plus a refill batch.
            let perNode = (blocks * run.placement.cpus.count + LocalPool.refillBatch(cacheCapacity: cacheCapacity)) * blockBytes
            let smallest = run.placement.poolNodes.compactMap { topology.node($0)?.memoryTotal }.min() ?? 0
            let capacity = Int(min(UInt64(perNode), smallest))
            return MemorySource(.local(try PoolFactory.local(blockSize: run.groupBytes, capacityPerNode: capacity,
                                                             nodes: run.placement.poolNodes, binding: options.binding,
                                                             pages: options.pageMode, cacheCapacity: cacheCapacity, topology: topology)))
        case .global:
            let capacity = blocks * run.placement.cpus.count * blockBytes
            return MemorySource(.global(try PoolFactory.global(blockSize: run.groupBytes, capacity: capacity,
                                                               fill: options.globalFill, nodes: run.placement.memoryNodes,
                                                               pages: options.pageMode, cpu: run.placement.cpus[0], policy: run.placement.policy,
                                                               topology: topology)))
        }
    }

    /// Takes `size` bytes in groups for the calling worker, faulted in by it.
    func acquire(size: Int, groupBytes: Int, pages: PageMode) throws -> AcquiredMemory {
        let count = max(1, size / groupBytes)
        switch kind {
        case .direct:
            let region: MemoryRegion
            do {
                region = try MemoryRegion(size: count * groupBytes, pages: pages)
            } catch {
                throw MembenchError.unavailable(.size, "\(error.message)")
            }
            region.faultIn()
            let base = region.baseAddress
            return AcquiredMemory(groups: (0..<count).map { base + $0 * groupBytes }, region: region)
        case .local(let pool as any BlockPool), .global(let pool as any BlockPool):
            var groups: [UnsafeMutableRawPointer] = []
            groups.reserveCapacity(count)
            do {
                for _ in 0..<count { groups.append(try pool.allocate()) }
            } catch {
                for group in groups { pool.deallocate(group) }
                throw MembenchError.from(error)
            }
            return AcquiredMemory(groups: groups, region: nil)
        }
    }

    func release(_ memory: AcquiredMemory) {
        switch kind {
        case .direct: break
        case .local(let pool as any BlockPool), .global(let pool as any BlockPool):
            for group in memory.groups { pool.deallocate(group) }
            pool.trim()
        }
    }

    /// Reads the global pool's pages per node; called once every worker holds its memory
    /// (the pool faults pages as it hands blocks out, and gives them back as they come back).
    func notePlacement() {
        guard case .global(let pool) = kind else { return }
        let histogram = pool.placementHistogram
        placement.withLock { $0 = histogram }
    }

    /// How the global pool was filled and the pages per node it had while the workers held
    /// their memory; nil for the others.
    var globalPlacement: (fill: String, pages: [Int: Int])? {
        guard case .global(let pool) = kind else { return nil }
        return (pool.placement.description, placement.withLock { $0 } ?? [:])
    }
}
