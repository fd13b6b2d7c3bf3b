import NUMA
import NUMAPool
import Synchronization

/// Joins every worker, whatever happens to any of them, and returns their results in order or
/// throws the first failure: membench's own as it is, a pool's as a refused run
/// (`MembenchError.from`), anything else as refused with its text.
func joinAll<T>(_ workers: [PinnedThread<T>]) throws(MembenchError) -> [T] {
    var results: [T] = []
    var failure: MembenchError?
    for worker in workers {
        do {
            results.append(try worker.join())
        } catch let error as MembenchError {
            failure = failure ?? error
        } catch let error as PoolError {
            failure = failure ?? MembenchError.from(error)
        } catch {
            failure = failure ?? .refused("\(error)")
        }
    }
    if let failure { throw failure }
    return results
}

/// Where the kernels' results go, so that no pass, load or chase can be dropped as unused.
enum ValueSink {
    private static let value = Atomic<UInt64>(0)
    static func keep(_ x: UInt64) { value.add(x, ordering: .relaxed) }
    static func keep(_ pointer: UnsafeRawPointer?) { keep(UInt64(UInt(bitPattern: pointer))) }
}
