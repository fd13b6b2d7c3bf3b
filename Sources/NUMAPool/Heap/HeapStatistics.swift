/// A snapshot of a `NUMAHeap`: counters merged over its threads, and each node's memory.
public struct HeapStatistics: Sendable, Equatable {
    /// Allocations served.
    public var gets: UInt64 = 0
    /// Deallocations.
    public var puts: UInt64 = 0
    /// Allocations served by the calling thread's cache.
    public var hits: UInt64 = 0
    /// Allocations the thread's cache could not serve (a refill from the arena, a large
    /// allocation, a fallback).
    public var misses: UInt64 = 0
    /// Blocks freed by a thread on another node than the block's; they went home in batches.
    public var remoteFrees: UInt64 = 0
    /// Times a thread's cache was flushed whole (a trim's epoch, an idle thread, a move).
    public var flushes: UInt64 = 0
    /// Caches of parked threads (blocked in a system call) flushed by `trim()` or the purger.
    public var parkedReclaims: UInt64 = 0
    /// Calls of `trim()`.
    public var trims: UInt64 = 0
    /// Blocks held by threads that a fork(2) did not copy: written off, never handed out.
    public var writtenOff: UInt64 = 0
    /// Seconds of CPU time the purger thread has used.
    public var purgerCPUSeconds: Double = 0
    /// Per node.
    public var perNode: [Int: HeapNodeStatistics] = [:]
    /// Per size class, ascending by size; large allocations are the last entry (size 0).
    public var perClass: [HeapClassStatistics] = []

    /// A snapshot with every figure at zero.
    public init() {}

    /// Bytes held by callers now, over every node.
    public var bytesInUse: Int { perNode.values.reduce(0) { $0 + $1.bytesInUse } }
    /// Resident bytes of the heap's arenas, over every node.
    public var bytesResident: Int { perNode.values.reduce(0) { $0 + $1.bytesResident } }
}

/// One node's memory in a `NUMAHeap`.
public struct HeapNodeStatistics: Sendable, Equatable {
    /// Bytes in blocks and large runs that callers hold.
    public var bytesInUse = 0
    /// Bytes in blocks that threads' caches hold (and blocks on their way home).
    public var bytesCached = 0
    /// Bytes free in the arena: free blocks of chunks that hold a class, and free chunks whose
    /// pages were not given back yet.
    public var bytesFree = 0
    /// Bytes of free chunks whose pages went back to the kernel.
    public var bytesReturned = 0
    /// Bytes of the arena's memory that are resident (mincore(2)).
    public var bytesResident = 0
    /// Bytes of chunks that hold a class or a large run.
    public var bytesInChunks = 0
    /// Bytes of the arena used at some time (chunks below the frontier).
    public var frontierBytes = 0
    /// Pages given back by decay (the purger).
    public var pagesDecayed: UInt64 = 0
    /// Pages given back by `trim()`.
    public var pagesTrimmed: UInt64 = 0
    /// Blocks that came home from threads on other nodes.
    public var remoteFrees: UInt64 = 0
    /// Allocations refused because the arena was full (strict binding).
    public var exhausted: UInt64 = 0
    /// Bytes out of the arena: in callers' hands or in caches.
    var bytesOut = 0
    /// `bytesOut` by class, index 0 for large runs.
    var bytesInUseByClass: [Int] = []

    /// A node with every figure at zero.
    public init() {}
}

/// One size class of a `NUMAHeap`.
public struct HeapClassStatistics: Sendable, Equatable {
    /// The class's block size; 0 for large allocations.
    public var size = 0
    /// Allocations of this class.
    public var gets: UInt64 = 0
    /// Deallocations of this class.
    public var puts: UInt64 = 0
    /// Allocations the thread's cache served.
    public var hits: UInt64 = 0
    /// Allocations the thread's cache could not serve.
    public var misses: UInt64 = 0
    /// Bytes callers hold in this class: (gets − puts) × size for a class.
    public var bytesInUse = 0

    /// A class with every figure at zero.
    public init() {}
}
