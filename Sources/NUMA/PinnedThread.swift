#if canImport(Glibc)
import Glibc
#endif

/// An OS thread (pthread_create(3)) that runs `body` on a fixed CPU set and hands back its
/// result on `join()`. Swift tasks hop between threads; placement needs a real thread.
public final class PinnedThread<Result: Sendable>: @unchecked Sendable {
    // @unchecked: `thread` and `joined` are touched only by the owner's join() and deinit.

    /// The work and its outcome, shared with the new thread.
    private final class Job: @unchecked Sendable {
        // @unchecked: `outcome` is written once by the new thread before it exits and read
        // only after pthread_join(3), which orders the two.
        let cpus: CPUSet
        let unpinned: @Sendable () -> Void
        let body: @Sendable () throws -> Result
        var outcome: Swift.Result<Result, any Error>?

        init(cpus: CPUSet, unpinned: @escaping @Sendable () -> Void, body: @escaping @Sendable () throws -> Result) {
            self.cpus = cpus
            self.unpinned = unpinned
            self.body = body
        }

        func run() {
            do {
                try ThreadAffinity.set(cpus)
            } catch {
                outcome = .failure(error)
                unpinned()
                return
            }
            do {
                outcome = .success(try body())
            } catch {
                outcome = .failure(error)
            }
        }
    }

    private let job: Job
    private var thread = pthread_t()
    private var joined = false
    /// The CPUs the thread is restricted to.
    public var cpus: CPUSet { job.cpus }

    /// Starts a thread restricted to `cpus`. The affinity is set before `body` runs; if it
    /// cannot be set, `body` never runs, the new thread calls `unpinned` (so that threads
    /// waiting for this one can stop waiting) and `join()` throws that error.
    public init(cpus: CPUSet, unpinned: @escaping @Sendable () -> Void = {},
                body: @escaping @Sendable () throws -> Result) throws(NUMAError) {
        job = Job(cpus: cpus, unpinned: unpinned, body: body)
        let job = self.job
        let rc = startThread(&thread, ThreadEntry { job.run() })
        if rc != 0 {
            joined = true
            throw NUMAError(operation: "pthread_create", errno: rc)
        }
    }

    /// Starts a thread on the allowed CPUs of `node`.
    public convenience init(node: Int, body: @escaping @Sendable () throws -> Result) throws(NUMAError) {
        try self.init(cpus: ThreadAffinity.cpus(ofNodes: [node]), body: body)
    }

    /// Waits for the thread (pthread_join(3)) and returns its result, or rethrows its error.
    public func join() throws -> Result {
        if !joined {
            pthread_join(thread, nil)
            joined = true
        }
        return try job.outcome!.get()
    }

    deinit {
        if !joined { pthread_join(thread, nil) }
    }
}

/// The closure a new thread runs, boxed so that a non-generic C entry point can call it.
private final class ThreadEntry: @unchecked Sendable {
    // @unchecked: handed to exactly one new thread; its creator keeps no reference.
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// pthread_create(3) with a Swift closure. Returns its error number, 0 on success.
private func startThread(_ thread: inout pthread_t, _ entry: ThreadEntry) -> Int32 {
    let context = Unmanaged.passRetained(entry).toOpaque()
    let rc = pthread_create(&thread, nil, { context in
        Unmanaged<ThreadEntry>.fromOpaque(context!).takeRetainedValue().run()
        return nil
    }, context)
    if rc != 0 { Unmanaged<ThreadEntry>.fromOpaque(context).release() }
    return rc
}
