import NUMA
import NUMAPool

/// The allocators `membench alloc` compares.
public enum AllocStrategy: String, Sendable, Codable, CaseIterable {
    case local, global
    /// An `ObjectPool` of small class objects on a `LocalPool`: lease, touch, release.
    case object
    /// The process's malloc/free: glibc's, or whichever `LD_PRELOAD` puts in front.
    case malloc
}

/// Parameters of an allocator throughput run.
public struct AllocOptions: Sendable, Equatable {
    public var strategies: [AllocStrategy] = AllocStrategy.allCases
    public var threadCounts: [Int] = [1]
    public var blockSize = 64
    /// Blocks taken before they are all given back; 1 is a get+put pair.
    public var batch = 32
    public var duration = 1.0
    public var placement = PlacementOptions()
    /// Bytes each pool may reserve per node.
    public var capacity = 256 << 20
    /// How the local pools bind their arenas.
    public var binding: LocalPool.Binding = .strict
    /// How the global pool is filled.
    public var globalFill: GlobalFill = .spread
    /// Times every allocator and thread count is measured, in turns (see `AllocBenchmark.run`).
    public var rounds = 1

    public init() {}
}

/// Alloc options checked against the machine, with each thread count's placement.
public struct ResolvedAlloc: Sendable {
    public let options: AllocOptions
    /// One placement per thread count, in the order of `options.threadCounts`.
    public let placements: [ResolvedPlacement]
}

extension AllocOptions {
    /// Checks the options and resolves each thread count's placement; nothing runs.
    public func resolve(topology: Topology = .current) throws(MembenchError) -> ResolvedAlloc {
        let options = self
        for (setting, values) in [(Setting.allocators, options.strategies.map(\.rawValue)), (.threads, options.threadCounts.map(String.init))] {
            var seen = Set<String>()
            for value in values where !seen.insert(value).inserted {
                throw .invalid(setting, "\(value) is given twice")
            }
        }
        guard options.blockSize >= 1 && options.blockSize <= BlockSize.maximum else {
            throw .invalid(.blockSize, "must be between 1 byte and \(ByteSize.format(BlockSize.maximum)), got \(options.blockSize)")
        }
        guard options.batch >= 1 && options.batch <= 1 << 20 else {
            throw .invalid(.batch, "must be between 1 and 1048576, got \(options.batch)")
        }
        try Check.duration(options.duration)
        try Check.rounds(options.rounds)
        let pools = options.strategies.contains { $0 != .malloc }
        if pools {
            // Every thread holds a batch at once, in the pool of its node.
            let block = BlockSize.rounded(options.blockSize)
            guard options.capacity >= block else {
                throw .invalid(.blockSize, "\(ByteSize.format(options.blockSize)) does not fit the pools' capacity of \(ByteSize.format(options.capacity)) per node")
            }
        }
        var placements: [ResolvedPlacement] = []
        for threads in options.threadCounts {
            let placement = try options.placement.resolve(threads: threads, needsMemory: pools, topology: topology)
            if pools {
                let available = placement.poolNodes.reduce(UInt64(0)) { $0 + (topology.node($1)?.memoryAvailable ?? 0) }
                if UInt64(options.capacity) > available {
                    throw .unavailable(.capacity, "\(ByteSize.format(options.capacity)) per node is more than \(nodesHave(placement.poolNodes)) available (\(available >> 20) MiB, \(topology.availableMemorySource))")
                }
                let total = UInt64(options.capacity) * UInt64(placement.poolNodes.count)
                if let limit = MemoryLimit.current().first(where: { total > $0.available }) {
                    throw .unavailable(.capacity, "\(ByteSize.format(options.capacity)) x \(counted(placement.poolNodes.count, "node")), but \(limit)")
                }
            }
            placements.append(placement)
        }
        return ResolvedAlloc(options: options, placements: placements)
    }
}
