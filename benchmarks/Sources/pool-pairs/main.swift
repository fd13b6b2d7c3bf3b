// Get+put pairs through one allocator, for counting instructions with callgrind.
//
//   pool-pairs local|object|heap|malloc ITERATIONS
//
// One get+put pair per iteration, in an out-of-line function per allocator (`localPairs`,
// `objectPairs`, `heapPairs`, `mallocPairs`), so that `valgrind --tool=callgrind --toggle-collect=<function>`
// counts the loop alone. benchmarks/run counts ITERATIONS and 2 × ITERATIONS in two runs; the
// difference over ITERATIONS is the loop's instructions per iteration, without the one-time
// set-up of the first call. Of those, three are the loop's own (count down, branch out, jump
// back); results/instructions.txt shows the loop. The malloc loop stores each block to memory
// before freeing it, which keeps the compiler from dropping a malloc/free pair whose block is
// never used (one more instruction per pair).
import Foundation
import NUMAPool

/// A small class, as `membench alloc --allocators object` leases.
final class Item {
    var length = 0
    var words: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
}

@inline(never)
func localPairs(_ pool: LocalPool, _ iterations: Int) throws {
    for _ in 0..<iterations { pool.deallocate(try pool.allocate()) }
}

@inline(never)
func objectPairs(_ pool: ObjectPool<Item>, _ iterations: Int) throws {
    for _ in 0..<iterations {
        let lease = try pool.lease()
        lease.value.length &+= 1
        lease.release()
    }
}

@inline(never)
func heapPairs(_ heap: NUMAHeap, _ iterations: Int) throws {
    for _ in 0..<iterations { heap.deallocate(try heap.allocate(byteCount: 64)) }
}

@inline(never)
func mallocPairs(_ sink: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ iterations: Int) {
    for _ in 0..<iterations {
        let block = malloc(64)
        sink.pointee = block
        free(block)
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
    exit(64)
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let iterations = Int(arguments[2]), iterations > 0 else {
    fail("usage: pool-pairs local|object|heap|malloc ITERATIONS")
}
func timed(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}
var seconds = 0.0
switch arguments[1] {
case "local":
    let pool = try LocalPool(blockSize: 64, capacityPerNode: 64 << 20)
    seconds = try timed { try localPairs(pool, iterations) }
case "object":
    let pool = try ObjectPool(backing: LocalPool(blockSize: 64, capacityPerNode: 64 << 20), factory: { Item() },
                              reset: { $0.length = 0 })
    seconds = try timed { try objectPairs(pool, iterations) }
case "heap":
    let heap = try NUMAHeap(capacityPerNode: 64 << 20, purger: false)
    seconds = try timed { try heapPairs(heap, iterations) }
case "malloc":
    let sink = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: 1)
    seconds = timed { mallocPairs(sink, iterations) }
default:
    fail("pool-pairs: unknown allocator \(arguments[1])")
}
// ns per pair (wall clock, including the first call's set-up; the instruction counts come
// from callgrind).
print("\(arguments[1]),\(iterations),\(seconds / Double(iterations) * 1e9)")
