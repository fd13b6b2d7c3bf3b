import NUMA
import NUMAPool

/// The allocators `membench alloc` compares.
public enum AllocStrategy: String, Sendable, Codable, CaseIterable {
    case local, global
    /// An `ObjectPool` of small class objects on a `LocalPool`: lease, touch, release.
    case object
    /// The process's malloc/free: glibc's, or whichever `LD_PRELOAD` puts in front.
    case malloc
    /// `NUMAHeap`: any size, freed without one.
    case heap

    /// Whether it serves blocks of one size only (the pools).
    public var servesOneSize: Bool { self == .local || self == .global || self == .object }
}

/// The sizes `membench alloc` asks for: one size, a uniform range, or a named mix. Every
/// allocator of a run is given the same sequence of sizes (drawn once per thread from a fixed
/// seed), taken in turn.
public enum AllocSizes: Sendable, Equatable, CustomStringConvertible {
    case fixed(Int)
    /// Uniform over `lower...upper` bytes.
    case uniform(Int, Int)
    /// A service's mix (`service`): mostly small objects, some 1–64 KiB buffers, weighted as
    /// `serviceMix` says.
    case service

    /// The service mix: (share of allocations, smallest, largest bytes), each range uniform.
    /// Small objects (request and header structs, strings, boxes) make most allocations; I/O
    /// buffers of 1–64 KiB make fewer but most of the bytes.
    public static let serviceMix: [(share: Double, lower: Int, upper: Int)] = [
        (0.50, 16, 64),
        (0.25, 65, 256),
        (0.13, 257, 1024),
        (0.08, 1025, 16 << 10),
        (0.04, (16 << 10) + 1, 64 << 10),
    ]

    /// `64`, `16-4096` (units as for sizes elsewhere, `1KiB-64KiB`), or `service`.
    public static func parse(_ text: String) throws(MembenchError) -> AllocSizes {
        if text == "service" { return .service }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 2, let lower = ByteSize.parse(parts[0]), let upper = ByteSize.parse(parts.last!) else {
            throw .invalid(.sizes, "expected a size (64), a range (16-4096) or service, got '\(text)'")
        }
        guard lower >= 1 && upper <= BlockSize.maximum else {
            throw .invalid(.sizes, "sizes must be between 1 byte and \(ByteSize.format(BlockSize.maximum)), got '\(text)'")
        }
        guard lower <= upper else { throw .invalid(.sizes, "the range's first size is larger than its last: '\(text)'") }
        return lower == upper ? .fixed(lower) : .uniform(lower, upper)
    }

    public var description: String {
        switch self {
        case .fixed(let size): "\(size)"
        case .uniform(let lower, let upper): "\(lower)-\(upper)"
        case .service: "service"
        }
    }

    /// The largest size it asks for.
    public var largest: Int {
        switch self {
        case .fixed(let size): size
        case .uniform(_, let upper): upper
        case .service: Self.serviceMix.map(\.upper).max()!
        }
    }

    /// `count` sizes drawn with `seed` (a power-of-two count, for a masked index).
    public func draw(count: Int, seed: UInt64) -> [Int] {
        var generator = SplitMix(seed: seed)
        return (0..<count).map { _ in
            switch self {
            case .fixed(let size): return size
            case .uniform(let lower, let upper): return Int.random(in: lower...upper, using: &generator)
            case .service:
                var pick = Double.random(in: 0..<1, using: &generator)
                for range in Self.serviceMix {
                    if pick < range.share { return Int.random(in: range.lower...range.upper, using: &generator) }
                    pick -= range.share
                }
                let last = Self.serviceMix.last!
                return Int.random(in: last.lower...last.upper, using: &generator)
            }
        }
    }
}

/// Who frees what `membench alloc` took.
public enum AllocFrees: String, Sendable, CaseIterable {
    /// The thread that took a block frees it.
    case local
    /// Threads work in pairs, and each frees what its partner took (producer and consumer).
    case remote
}

/// SplitMix64: a small seeded generator, so that every allocator sees the same sizes.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Parameters of an allocator throughput run.
public struct AllocOptions: Sendable, Equatable {
    public var strategies: [AllocStrategy] = AllocStrategy.allCases
    public var threadCounts: [Int] = [1]
    public var blockSize = 64
    /// The sizes asked for; nil for `blockSize` alone.
    public var sizes: AllocSizes?
    public var frees: AllocFrees = .local
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
        var options = self
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
        if case .fixed(let size) = options.sizes {
            options.blockSize = size
            options.sizes = nil
        }
        if options.sizes != nil, let pool = options.strategies.first(where: \.servesOneSize) {
            throw .invalid(.sizes, "the \(pool.rawValue) pool serves one block size: give a fixed size, or measure only the heap and malloc")
        }
        if options.frees == .remote && options.strategies.contains(.object) {
            throw .invalid(.frees, "object leases go back from the thread that holds them: leave out object for remote frees")
        }
        if options.frees == .remote {
            for threads in options.threadCounts where threads < 2 || threads % 2 != 0 {
                throw .invalid(.frees, "remote frees pair the threads: give an even thread count of at least 2, got \(threads)")
            }
        }
        try Check.duration(options.duration)
        try Check.rounds(options.rounds)
        let pools = options.strategies.contains { $0 != .malloc }
        if options.strategies.contains(.heap) && options.capacity < 1 << 20 {
            throw .invalid(.capacity, "the heap needs at least 1MiB per node, got \(ByteSize.format(options.capacity))")
        }
        if pools {
            // Every thread holds a batch at once, in the pool of its node.
            let block = BlockSize.rounded(options.sizes?.largest ?? options.blockSize)
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
