import NUMA
import NUMAPool
import Testing

/// Every numeric parameter of the pools' public initialisers, over its extremes: each value
/// gives a working pool or a `PoolError` with a message, never a trap.
@Suite("Numeric parameters at their extremes")
struct ParameterTests {
    static let extremes = [Int.min, Int.min + 1, -1, 0, 1, 2, 15, 16, 17, 1 << 20, Int.max / 4, Int.max - 7, Int.max - 1, Int.max]

    /// Makes a pool with `make`; if it is made, a block can be taken and given back. Returns
    /// whether the pool was made.
    static func tryPool(_ make: () throws(PoolError) -> any BlockPool) -> Bool {
        do throws(PoolError) {
            let pool = try make()
            let block = try pool.allocate()
            pool.deallocate(block)
            return true
        } catch {
            #expect(!error.description.isEmpty)
            return false
        }
    }

    @Test("LocalPool blockSize", arguments: extremes)
    func localBlockSize(value: Int) {
        let made = Self.tryPool { () throws(PoolError) in try LocalPool(blockSize: value, capacityPerNode: 1 << 20) }
        #expect(made == (1...(1 << 20)).contains(value))
    }

    @Test("LocalPool capacityPerNode", arguments: extremes)
    func localCapacity(value: Int) {
        let made = Self.tryPool { () throws(PoolError) in try LocalPool(blockSize: 16, capacityPerNode: value) }
        #expect(made == (16...(1 << 20)).contains(value))
    }

    @Test("LocalPool cacheCapacity", arguments: extremes)
    func localCacheCapacity(value: Int) {
        let made = Self.tryPool { () throws(PoolError) in try LocalPool(blockSize: 64, capacityPerNode: 1 << 20, cacheCapacity: value) }
        #expect(made == (2...LocalPool.maximumCacheCapacity).contains(value))
    }

    @Test("GlobalPool blockSize", arguments: extremes)
    func globalBlockSize(value: Int) {
        let made = Self.tryPool { () throws(PoolError) in try GlobalPool(blockSize: value, capacity: 1 << 20) }
        #expect(made == (1...(1 << 20)).contains(value))
    }

    @Test("GlobalPool capacity", arguments: extremes)
    func globalCapacity(value: Int) {
        let made = Self.tryPool { () throws(PoolError) in try GlobalPool(blockSize: 16, capacity: value) }
        #expect(made == (16...(1 << 20)).contains(value))
    }

    @Test("ObjectPool maxIdle and cacheCapacity", arguments: extremes)
    func objectPool(value: Int) throws {
        let backing = try LocalPool(blockSize: 16, capacityPerNode: 1 << 20)
        for (maxIdle, cacheCapacity) in [(value, 64), (64, value)] {
            do throws(PoolError) {
                let pool = try ObjectPool(backing: backing, maxIdle: maxIdle, cacheCapacity: cacheCapacity,
                                          factory: { 0 }, reset: { $0 = 0 })
                let lease = try pool.lease()
                #expect(lease.value == 0)
                lease.release()
                #expect(maxIdle >= 0 && (1...ObjectPool<Int>.maximumCacheCapacity).contains(cacheCapacity))
            } catch {
                #expect(!error.description.isEmpty)
                #expect(maxIdle < 0 || !(1...ObjectPool<Int>.maximumCacheCapacity).contains(cacheCapacity))
            }
        }
    }
}
