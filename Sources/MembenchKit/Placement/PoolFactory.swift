import NUMA
import NUMAPool

/// The pools membench measures, made in one place for `run`, `compare` and `alloc` (`matrix`
/// measures plain regions, `direct`),
/// so that the same flags (`--binding`, `--global-fill`, `--page-size`) mean the same pool.
enum PoolFactory {
    /// A `LocalPool` with an arena on each of `nodes`.
    ///
    /// `cacheCapacity`: blocks each thread may cache. The latency runs take 256 KiB blocks and
    /// hold all of them for the run, so they ask for 128 (a refill moves half a cache); the
    /// throughput runs take the pool's default.
    static func local(blockSize: Int, capacityPerNode: Int, nodes: NodeSet, binding: LocalPool.Binding, pages: PageMode,
                      cacheCapacity: Int = 256, topology: Topology) throws(MembenchError) -> LocalPool {
        do {
            return try LocalPool(blockSize: blockSize, capacityPerNode: capacityPerNode, binding: binding, nodes: nodes,
                                 cacheCapacity: cacheCapacity, pages: pages, topology: topology)
        } catch {
            throw MembenchError.from(error)
        }
    }

    /// How `fill` places a `GlobalPool` over the run's memory nodes.
    static func placement(_ fill: GlobalFill, nodes: NodeSet) -> GlobalPool.Placement {
        switch fill {
        case .spread: .spread(nodes)
        case .firstTouch: .firstTouch
        case .interleave: .interleave(nodes)
        }
    }

    /// A `GlobalPool` placed as `fill` says, made on a thread pinned to `cpu` under `policy`
    /// (the first-touch fill places pages where that thread's policy would put them).
    static func global(blockSize: Int, capacity: Int, fill: GlobalFill, nodes: NodeSet, pages: PageMode,
                       cpu: Int, policy: MemoryPolicy?, topology: Topology) throws(MembenchError) -> GlobalPool {
        let placement = placement(fill, nodes: nodes)
        do {
            let filler = try PinnedThread(cpus: [cpu]) { () throws -> GlobalPool in
                if let policy { try policy.applyToCurrentThread() }
                return try GlobalPool(blockSize: blockSize, capacity: capacity, placement: placement, pages: pages,
                                      topology: topology)
            }
            return try filler.join()
        } catch let error as PoolError {
            throw MembenchError.from(error)
        } catch let error as MembenchError {
            throw error
        } catch {
            throw .refused("\(error)")
        }
    }
}
