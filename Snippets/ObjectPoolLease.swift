// An ObjectPool lends objects of one type, kept in the blocks of a LocalPool or GlobalPool.
// A lease cannot be copied: `release()` consumes it, and a lease that goes out of scope gives
// its object back too. The pool runs `reset` on every return, so the next lease finds the
// object cleared; using a lease after its release does not compile.
import NUMAPool

let blocks = try LocalPool(blockSize: 64, capacityPerNode: 1 << 20)
let buffers = try ObjectPool(backing: blocks, factory: { [UInt8]() },
                             reset: { $0.removeAll(keepingCapacity: true) })

// A lease is a local value, so that `release()` can consume it.
func respond(to request: String, from buffers: ObjectPool<[UInt8]>) throws -> Int {
    let lease = try buffers.lease()
    lease.value.append(contentsOf: request.utf8)
    let count = lease.value.count
    lease.release()  // reset runs now; `lease` cannot be used after this line
    return count
}

for request in ["GET / HTTP/1.1", "GET /health HTTP/1.1"] {
    print("\(try respond(to: request, from: buffers)) bytes in the buffer")
}

// withObject lends an object for the length of a closure.
let capacity = try buffers.withObject { buffer in buffer.capacity }  // empty, but its storage was kept

let stats = buffers.statistics()
print("reused capacity \(capacity); gets \(stats.gets), hits \(stats.hits), misses \(stats.misses)")
