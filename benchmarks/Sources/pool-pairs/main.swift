// A fixed number of get+put pairs through one allocator, in one out-of-line function per
// allocator, so that `valgrind --tool=callgrind --toggle-collect=<function>` counts exactly the
// instructions of the loop: benchmarks/run divides them by the number of pairs.
//
//   pool-pairs local|global|object|malloc PAIRS BATCH (object: BATCH is 1)
import Foundation
import NUMAPool

@inline(never)
func localPairs(_ pool: LocalPool, pairs: Int, batch: Int, held: UnsafeMutablePointer<UnsafeMutableRawPointer>) throws {
    for _ in 0..<(pairs / batch) {
        for i in 0..<batch { held[i] = try pool.allocate() }
        for i in 0..<batch { pool.deallocate(held[i]) }
    }
}

@inline(never)
func globalPairs(_ pool: GlobalPool, pairs: Int, batch: Int, held: UnsafeMutablePointer<UnsafeMutableRawPointer>) throws {
    for _ in 0..<(pairs / batch) {
        for i in 0..<batch { held[i] = try pool.allocate() }
        for i in 0..<batch { pool.deallocate(held[i]) }
    }
}

/// A small class, as `membench alloc --allocators object` leases.
final class Item {
    var length = 0
    var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
}

@inline(never)
func objectPairs(_ pool: ObjectPool<Item>, pairs: Int) throws {
    for _ in 0..<pairs {
        let lease = try pool.lease()
        lease.value.length &+= 1
        lease.release()
    }
}

@inline(never)
func mallocPairs(size: Int, pairs: Int, batch: Int, held: UnsafeMutablePointer<UnsafeMutableRawPointer>) {
    for _ in 0..<(pairs / batch) {
        for i in 0..<batch { held[i] = malloc(size)! }
        for i in 0..<batch { free(held[i]) }
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 4, let pairs = Int(arguments[2]), let batch = Int(arguments[3]), batch > 0, pairs >= batch else {
    FileHandle.standardError.write("usage: pool-pairs local|global|object|malloc PAIRS BATCH\n".data(using: .utf8)!)
    exit(64)
}
let held = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: batch)
let start = ContinuousClock.now
switch arguments[1] {
case "local":
    let pool = try LocalPool(blockSize: 64, capacityPerNode: 64 << 20)
    try localPairs(pool, pairs: batch, batch: batch, held: held)  // warm: the cache fills once
    try localPairs(pool, pairs: pairs, batch: batch, held: held)
case "global":
    let pool = try GlobalPool(blockSize: 64, capacity: 64 << 20)
    try globalPairs(pool, pairs: pairs, batch: batch, held: held)
case "object":
    let pool = try ObjectPool(backing: LocalPool(blockSize: 64, capacityPerNode: 64 << 20), factory: { Item() },
                              reset: { $0.length = 0 })
    try objectPairs(pool, pairs: 1)
    try objectPairs(pool, pairs: pairs)
case "malloc":
    mallocPairs(size: 64, pairs: pairs, batch: batch, held: held)
default:
    FileHandle.standardError.write("pool-pairs: unknown allocator \(arguments[1])\n".data(using: .utf8)!)
    exit(64)
}
let elapsed = ContinuousClock.now - start
print("\(arguments[1]),\(pairs),\(batch),\(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))")
