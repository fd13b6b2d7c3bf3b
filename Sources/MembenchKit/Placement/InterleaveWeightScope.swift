import NUMA
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension InterleaveWeights {
    /// Weights as flags and records write them: `0:3,2:1`, in node order.
    public static func text(_ weights: [Int: Int]) -> String {
        weights.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ",")
    }

    /// Parses `0:3,2:1` (node:weight pairs) or `0,2` (nodes alone, the kernel's weights):
    /// the nodes, and the weights when given. Nil for text of neither form or mixed forms.
    public static func parse(_ text: String) -> (nodes: NodeSet, weights: [Int: Int]?)? {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        guard items.contains(where: { $0.contains(":") }) else {
            return (try? NodeSet(parsing: text)).map { ($0, nil) }
        }
        var weights: [Int: Int] = [:]
        for item in items {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let node = Int(parts[0]), node >= 0, node <= IDSetLimit.maximumID,
                  let weight = Int(parts[1]), weights[node] == nil else { return nil }
            weights[node] = weight
        }
        return (NodeSet(weights.keys), weights)
    }
}

extension PlacementOptions {
    /// Runs `body` with the interleave weights the options ask for set, and puts back the
    /// weights those nodes had, whether `body` returns or throws, and when the process is
    /// interrupted (SIGINT, SIGTERM, SIGHUP, SIGUSR2) meanwhile: it then exits 128 + the signal after
    /// restoring them. Without weights it runs `body` alone. Setting weights needs root.
    public func withInterleaveWeights<T>(_ body: () throws -> T) throws -> T {
        guard let interleaveWeights else { return try body() }
        // Threads started from here on inherit the blocked signals, so that they reach the
        // watcher alone.
        let watcher = try InterruptWatcher()
        defer { watcher.stop() }
        let saved: InterleaveWeights.Saved
        do {
            saved = try watcher.set(interleaveWeights)
        } catch {
            throw MembenchError.from(error, setting: .weightedInterleave)
        }
        let result: T
        do {
            result = try body()
        } catch {
            do {
                try InterleaveWeights.restore(saved)
            } catch let failure {
                StandardStreams.report("membench: warning: the interleave weights \(InterleaveWeights.text(saved.weights)) were not put back: \(failure.message)\n")
            }
            throw error
        }
        do {
            try InterleaveWeights.restore(saved)
        } catch {
            throw MembenchError.refused("cannot restore the interleave weights \(InterleaveWeights.text(saved.weights)): \(error.message)")
        }
        return result
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP (less those the process ignores) and SIGUSR2 in the
/// calling thread (and the threads it starts) and waits for them on a thread of its own
/// (sigwait(3)): an interrupt restores the saved weights and exits 128 + the signal. `stop`
/// ends the watch (with SIGUSR2 to its thread) and unblocks; a SIGUSR2 from outside, whose
/// default is to end the process as well, counts as an interrupt unless the process ignores it.
final class InterruptWatcher: @unchecked Sendable {
    // @unchecked: the saved weights are written by the starting thread and read by the watcher
    // thread under their lock; `watched` is written before the watcher thread starts and only
    // read after; `thread` and `previous` belong to the starting thread.
    private let saved = Locked<InterleaveWeights.Saved?>(nil)
    private var thread = pthread_t()
    private var previous = sigset_t()
    private var watched: [Int32] = []
    private let stopping = Atomic<Bool>(false)
    /// Whether the process ignored SIGUSR2 before the watch: one from outside is then ignored.
    private let ignoresUSR2 = InterruptWatcher.isIgnored(SIGUSR2)

    /// The signals watched: SIGINT, SIGTERM and SIGHUP, less those the process ignores (as
    /// under nohup), which must go on being ignored.
    static var signals: [Int32] { [SIGINT, SIGTERM, SIGHUP].filter { !isIgnored($0) } }

    /// Whether the process ignores `signal` (SIG_IGN).
    static func isIgnored(_ signal: Int32) -> Bool {
        var action = sigaction()
        sigaction(signal, nil, &action)
        // Handlers are C function pointers, compared by address (SIG_IGN is address 1).
        return unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }

    /// Sets the weights under the lock the watcher takes to restore them, so that an
    /// interrupt while they are being written waits for them and then puts them all back.
    func set(_ weights: [Int: Int]) throws(NUMAError) -> InterleaveWeights.Saved {
        try saved.withLock { (saved) throws(NUMAError) -> InterleaveWeights.Saved in
            let result = try InterleaveWeights.set(weights)
            saved = result
            return result
        }
    }

    init() throws(MembenchError) {
        var blocked = sigset_t()
        sigemptyset(&blocked)
        watched = Self.signals + [SIGUSR2]
        for signal in watched { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            let watcher = Unmanaged<InterruptWatcher>.fromOpaque(context!).takeRetainedValue()
            watcher.watch()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<InterruptWatcher>.fromOpaque(context).release()
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            throw .refused("cannot start a thread to watch for interrupts: \(String(cString: strerror(rc)))")
        }
    }

    private func watch() {
        var waited = sigset_t()
        sigemptyset(&waited)
        for signal in watched { sigaddset(&waited, signal) }
        var signal: Int32 = 0
        while sigwait(&waited, &signal) == 0 {
            if signal == SIGUSR2 {
                if stopping.load(ordering: .acquiring) { return }
                if ignoresUSR2 { continue }
            }
            let failure: String? = saved.withLock { (saved) -> String? in
                guard let saved else { return nil }
                do throws(NUMAError) { try InterleaveWeights.restore(saved) } catch { return error.message }
                return nil
            }
            StandardStreams.report(failure.map { "membench: interrupted; the interleave weights were not put back: \($0)\n" }
                                   ?? "membench: interrupted; the interleave weights are back as they were\n")
            _exit(128 + signal)
        }
    }

    /// Ends the watch; call once.
    func stop() {
        stopping.store(true, ordering: .releasing)
        pthread_kill(thread, SIGUSR2)
        pthread_join(thread, nil)
        pthread_sigmask(SIG_SETMASK, &previous, nil)
    }
}
