// A LocalPool keeps one arena per node, bound to it, with a cache per thread in front: a
// block comes from the arena of the node the calling thread runs on, and a block given back
// is reused. The statistics count gets, hits (reused blocks) and misses (fresh ones).
import NUMA
import NUMAPool

// 256-byte blocks and 16 MiB on every node with memory that this process may use.
let pool = try LocalPool(blockSize: 256, capacityPerNode: 16 << 20)
print("arenas on nodes \(pool.nodes); this thread runs on node \(Topology.currentNode)")

var blocks: [UnsafeMutableRawPointer] = []
for index in 0..<1000 {
    let block = try pool.allocate()
    block.storeBytes(of: index, as: Int.self)
    blocks.append(block)
}
print("block 0 is on node", pool.homeNode(of: blocks[0]).map(String.init) ?? "?")
for block in blocks { pool.deallocate(block) }   // anything but a live block stops the program

// A second round reuses the blocks given back (hits), from this thread's cache and its arena.
for index in blocks.indices { blocks[index] = try pool.allocate() }
for block in blocks { pool.deallocate(block) }

let stats = pool.statistics()
print("gets \(stats.gets), hits \(stats.hits), misses \(stats.misses), reuse rate \(stats.reuseRate)")
