import NUMA
import NUMAPool
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How one worker ended, when it did not return a result.
enum WorkerFailure: Error {
    /// It stopped at a start line another thread of the run never reached.
    case abandoned
    case failed(MembenchError)
}

/// Joins one worker: membench's error as it is, a pool's as a refused run
/// (`MembenchError.from`), anything else as refused with its text.
func outcome<T>(of worker: PinnedThread<T>) -> Result<T, WorkerFailure> {
    do {
        return .success(try worker.join())
    } catch is StartLine.Abandoned {
        return .failure(.abandoned)
    } catch let error as MembenchError {
        return .failure(.failed(error))
    } catch let error as PoolError {
        return .failure(.failed(MembenchError.from(error)))
    } catch {
        return .failure(.failed(.refused("\(error)")))
    }
}

/// The failure to report among workers' outcomes, in order: the first real one, since workers
/// that stopped only because another could not start are its consequence; nil if none failed.
func cause<each T>(_ outcomes: repeat [Result<each T, WorkerFailure>]) -> MembenchError? {
    var failures: [WorkerFailure] = []
    for list in repeat each outcomes {
        for outcome in list { if case .failure(let failure) = outcome { failures.append(failure) } }
    }
    for case .failed(let error) in failures { return error }
    return failures.isEmpty ? nil : .refused("\(StartLine.Abandoned())")
}

/// Joins every worker, whatever happens to any of them, and returns their results in order or
/// throws the cause of their failure (`cause`).
func joinAll<T>(_ workers: [PinnedThread<T>]) throws(MembenchError) -> [T] {
    let outcomes = workers.map { outcome(of: $0) }
    if let error = cause(outcomes) { throw error }
    return results(outcomes)
}

/// The results of outcomes that all succeeded.
private func results<T>(_ outcomes: [Result<T, WorkerFailure>]) -> [T] {
    var values: [T] = []
    for case .success(let value) in outcomes { values.append(value) }
    return values
}

/// Joins the two sides of a run (a chase and its loads, a holder and its reader) whatever
/// happens to either, and returns both sides' results or throws the cause, the first side's
/// first.
func joinAll<A, B>(_ first: [PinnedThread<A>], _ second: [PinnedThread<B>]) throws(MembenchError) -> ([A], [B]) {
    let a = first.map { outcome(of: $0) }, b = second.map { outcome(of: $0) }
    if let error = cause(a, b) { throw error }
    return (results(a), results(b))
}

/// The threads of a measurement wait here until every one is ready, so that timing starts
/// together. A line one of whose parties will never arrive (its thread could not start) is
/// abandoned: every wait at it, then or later, throws instead of spinning forever.
final class StartLine: Sendable {
    /// What a wait at an abandoned line throws.
    struct Abandoned: Error, CustomStringConvertible {
        var description: String { "another thread of the run could not start" }
    }

    private let waiting: Atomic<Int>
    private let abandoned = Atomic<Bool>(false)
    init(parties: Int) { waiting = Atomic(parties) }

    func arriveAndWait() throws(Abandoned) {
        waiting.subtract(1, ordering: .acquiringAndReleasing)
        while waiting.load(ordering: .acquiring) > 0 {
            if abandoned.load(ordering: .acquiring) { throw Abandoned() }
            sched_yield()
        }
    }

    func abandon() { abandoned.store(true, ordering: .releasing) }
}

/// Starts one pinned thread per CPU of `cpus`, running `body(index, cpu)`. When one cannot be
/// started (pthread_create(3) fails, as under a pids limit), the threads already running are
/// released and joined (`release`) before the failure is thrown; when one starts but cannot be
/// pinned (its CPU left the cpuset), it abandons `lines` and calls `stop` itself. Either way
/// none is left waiting for a thread that never came.
func startPinnedThreads<T: Sendable>(on cpus: [Int], role: String, lines: [StartLine],
                                     stop: @escaping @Sendable () -> Void = {},
                                     _ body: @escaping @Sendable (_ index: Int, _ cpu: Int) throws -> T)
    throws(MembenchError) -> [PinnedThread<T>] {
    var threads: [PinnedThread<T>] = []
    for (index, cpu) in cpus.enumerated() {
        do {
            threads.append(try PinnedThread(cpus: [cpu], unpinned: { abandon(lines, stop: stop) }) { try body(index, cpu) })
        } catch {
            release(threads, lines: lines, stop: stop)
            throw .refused("cannot start \(role) on CPU \(cpu): \(error)")
        }
    }
    return threads
}

/// Abandons `lines` and calls `stop` to end any other wait of a run's threads: what a run does
/// when one of its threads could not start, or could not be pinned.
func abandon(_ lines: [StartLine], stop: () -> Void = {}) {
    for line in lines { line.abandon() }
    stop()
}

/// Abandons the run (`abandon`) and joins `threads`, discarding their outcomes.
func release<T>(_ threads: [PinnedThread<T>], lines: [StartLine], stop: () -> Void = {}) {
    abandon(lines, stop: stop)
    for thread in threads { _ = try? thread.join() }
}

/// Where the kernels' results go, so that no pass, load or chase can be dropped as unused.
enum ValueSink {
    private static let value = Atomic<UInt64>(0)
    static func keep(_ x: UInt64) { value.add(x, ordering: .relaxed) }
    static func keep(_ pointer: UnsafeRawPointer?) { keep(UInt64(UInt(bitPattern: pointer))) }
}
