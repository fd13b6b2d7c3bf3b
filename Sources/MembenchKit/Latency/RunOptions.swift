import NUMA
import NUMAPool

/// Where a run's memory comes from.
public enum PoolStrategy: String, Sendable, Codable, CaseIterable {
    /// `LocalPool`: each thread's blocks from its own node's arena.
    case local
    /// `GlobalPool`: every thread's blocks from one shared region.
    case global
    /// A plain `MemoryRegion` per thread under the given policy, with no pool.
    case direct
}

/// How `global` fills its pool.
public enum GlobalFill: String, Sendable, Codable, CaseIterable {
    /// In chunks over the run's memory nodes, each first touched by a thread on its node (or
    /// bound to a node without one): a pool that threads on every node filled.
    case spread
    /// Where one thread on the first worker's CPU would place it, under the run's policy.
    case firstTouch = "first-touch"
    /// Page by page over the run's memory nodes (`MPOL_INTERLEAVE`).
    case interleave
}

/// How long a latency run samples: for a time, or for a number of samples.
public enum RunLength: Sendable, Codable, Equatable {
    /// Timed samples for this many seconds.
    case duration(Double)
    /// This many timed samples per thread, however long they take.
    case samples(Int)

    /// The seconds, when the length is a time.
    public var seconds: Double? {
        if case .duration(let seconds) = self { seconds } else { nil }
    }

    /// The sample count, when the length is one.
    public var samples: Int? {
        if case .samples(let count) = self { count } else { nil }
    }
}

/// Every parameter of a latency run.
public struct RunOptions: Sendable, Codable, Equatable {
    public var strategy: PoolStrategy = .local
    /// The buffer each thread chases, in bytes; nil picks `defaultSize`.
    public var size: Int?
    public var threads = 1
    /// Bytes between slots of the chain.
    public var stride = 256
    /// Bytes of each TLB-locality group; 0 makes the whole buffer one group (fully random);
    /// nil takes `defaultTLBLocality` rounded up to a multiple of the stride.
    public var tlbLocality: Int?
    public var pageMode: PageMode = .base
    public var pattern: ChasePattern = .chase
    /// Where each slot sits inside its stride (`SlotLayout`).
    public var slotOffsets: SlotLayout.Offsets = .random
    /// How long each thread samples: seconds, or a number of samples.
    public var length: RunLength = .duration(2)
    /// Seconds of untimed chasing before the samples.
    public var warmup = 0.25
    /// Seconds per window of the window statistic (multichase's 0.5 s).
    public var window = 0.5
    /// Dependent loads per timed sample.
    public var loadsPerSample = 1024
    public var placement = PlacementOptions()
    /// How `local` binds its arenas.
    public var binding: LocalPool.Binding = .strict
    /// How `global` fills its pool.
    public var globalFill: GlobalFill = .spread
    public var seed: UInt64 = RunOptions.defaultSeed

    /// The seed of the chain's shuffle when none is given.
    public static let defaultSeed: UInt64 = 0x5EED

    public init() {}

    /// At least 4 times the last-level cache, and at least 256 MiB, so that the run measures
    /// memory rather than cache.
    public static func defaultSize(topology: Topology = .current) -> Int {
        let llc = Int(topology.lastLevelCache?.size ?? 32 << 20)
        return max(4 * llc, 256 << 20)
    }

    /// multichase's default group: 256 KiB.
    public static let defaultTLBLocality = 256 << 10

    /// The TLB-locality group in effect: as given, or the default rounded up to a multiple of
    /// the stride.
    public var effectiveTLBLocality: Int {
        tlbLocality ?? (Self.defaultTLBLocality + stride - 1) / stride * stride
    }

    /// The TLB-locality group size in effect for a buffer of `size` bytes.
    public func groupBytes(for size: Int) -> Int {
        let locality = effectiveTLBLocality
        let group = locality == 0 ? size : min(locality, size)
        return max(stride, group / stride * stride)
    }
}

extension LocalPool.Binding: Codable {}
