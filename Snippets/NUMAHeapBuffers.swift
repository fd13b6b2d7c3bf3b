// A NUMAHeap serves any size from the arena of the node the calling thread runs on, and takes
// memory back without its size. Free memory goes back to the kernel after the decay time, by
// the heap's purger thread, with no call from the program; trim() does it now.
import NUMA
import NUMAPool

let heap = try NUMAHeap(capacityPerNode: 64 << 20, decay: .seconds(10))

// Small objects and I/O buffers, as a service allocates them.
var buffers: [UnsafeMutableRawPointer] = []
for size in [24, 100, 700, 4096, 40_000, 300_000] {
    let buffer = try heap.allocate(byteCount: size)
    buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    print("\(size) bytes: \(heap.usableSize(of: buffer)) usable, on node \(heap.homeNode(of: buffer).map(String.init) ?? "?")")
    buffers.append(buffer)
}
for buffer in buffers { heap.deallocate(buffer) }   // no size; anything but a live block stops the program

heap.trim()
let stats = heap.statistics()
for (node, memory) in stats.perNode.sorted(by: { $0.key < $1.key }) {
    print("node \(node): in use \(memory.bytesInUse), cached \(memory.bytesCached), returned \(memory.bytesReturned), resident \(memory.bytesResident) bytes")
}
print("gets \(stats.gets), hits \(stats.hits), misses \(stats.misses)")
