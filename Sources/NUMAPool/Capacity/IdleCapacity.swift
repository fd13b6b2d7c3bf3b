/// What a capacity controller sets: how much idle memory each partition of a pool may keep
/// for reuse (a `LocalPool`'s or a `NUMAHeap`'s partitions are its nodes' arenas; an
/// `ObjectPool`'s are its backing pool's). What a partition keeps above its limit goes back.
public protocol IdleCapacity: AnyObject, Sendable {
    /// What the figures count.
    var idleUnit: IdleUnit { get }
    /// The partitions whose limits can be set: 0 up to this.
    var idlePartitionCount: Int { get }
    /// The node of `partition`, when the pool knows it.
    func idleNode(ofPartition partition: Int) -> Int?
    /// What `partition` keeps idle now.
    func idleAmount(partition: Int) -> Int
    /// Sets the most `partition` may keep idle; what it keeps above that goes back now.
    func setIdleLimit(_ limit: Int, partition: Int)
}

/// The unit of an `IdleCapacity`'s figures.
public enum IdleUnit: String, Sendable {
    /// Idle objects (`ObjectPool`).
    case objects
    /// Bytes of idle memory (`LocalPool`, `NUMAHeap`).
    case bytes
}

extension ObjectPool: IdleCapacity {
    /// Objects.
    public var idleUnit: IdleUnit { .objects }
    /// The backing pool's partitions.
    public var idlePartitionCount: Int { core.partitionCount }

    /// The node of the backing pool's partition (`homeNode(of:)` of its first block).
    public func idleNode(ofPartition partition: Int) -> Int? {
        let range = core.backing.addressRange(ofPartition: partition)
        return UnsafeRawPointer(bitPattern: range.lowerBound).flatMap { core.backing.homeNode(of: $0) }
    }

    /// Idle objects in the partition's list, behind the threads' caches (each of which holds
    /// at most the pool's cache capacity).
    public func idleAmount(partition: Int) -> Int { core.listedCount(partition: partition) }

    /// Sets the partition's `maxIdle`; objects listed over it are destroyed now, and returns
    /// that find the list full destroy their object from then on. When objects were destroyed
    /// (now, or by such returns since the last call), the backing pool is trimmed, so that
    /// their memory goes back: a controller that sets the limit each window keeps it so.
    public func setIdleLimit(_ limit: Int, partition: Int) {
        core.setIdleLimit(max(0, limit), partition: partition)
    }
}

extension LocalPool: IdleCapacity {
    /// Bytes.
    public var idleUnit: IdleUnit { .bytes }
    /// The arenas, one per node.
    public var idlePartitionCount: Int { core.arenas.count }

    /// The arena's node.
    public func idleNode(ofPartition partition: Int) -> Int? { core.arenas[partition].node }

    /// Bytes faulted in for the arena that no caller or thread cache holds.
    public func idleAmount(partition: Int) -> Int {
        let snapshot = core.arenas[partition].snapshot()
        return max(0, snapshot.stats.bytesReserved - snapshot.stats.bytesOutstanding)
    }

    /// When the arena keeps more than `limit` idle bytes, this thread's and parked threads'
    /// caches go back and the arena gives back every page that only free blocks touch (a
    /// trim of that arena alone). The limit is checked when set: a controller sets it again
    /// each window.
    public func setIdleLimit(_ limit: Int, partition: Int) {
        guard idleAmount(partition: partition) > max(0, limit) else { return }
        core.trim(only: partition)
    }
}

extension NUMAHeap: IdleCapacity {
    /// Bytes.
    public var idleUnit: IdleUnit { .bytes }
    /// The arenas, one per node.
    public var idlePartitionCount: Int { core.arenas.count }

    /// The arena's node.
    public func idleNode(ofPartition partition: Int) -> Int? { core.arenas[partition].node }

    /// Bytes of the node that threads' caches hold or that lie free in its arena, still resident.
    public func idleAmount(partition: Int) -> Int {
        let memory = statistics().perNode[core.arenas[partition].node] ?? HeapNodeStatistics()
        return memory.bytesCached + memory.bytesFree
    }

    /// When the node keeps more than `limit` idle bytes, every thread's cache is flushed (now
    /// for this thread and parked ones, at the next call for the others) and the node's arena
    /// gives its free pages back (a trim of that arena). The limit is checked when set: a
    /// controller sets it again each window.
    public func setIdleLimit(_ limit: Int, partition: Int) {
        guard idleAmount(partition: partition) > max(0, limit) else { return }
        core.trim(only: partition)
    }
}
