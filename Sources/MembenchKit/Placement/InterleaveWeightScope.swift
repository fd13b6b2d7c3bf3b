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

    /// The first node that node:weight pairs name twice (`0:3,0:2`), which `parse` refuses.
    public static func repeatedNode(in text: String) -> Int? {
        var seen: Set<Int> = []
        for item in text.split(separator: ",") {
            guard let node = item.split(separator: ":").first.flatMap({ Int($0) }), item.contains(":") else { continue }
            if !seen.insert(node).inserted { return node }
        }
        return nil
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
    /// weights those nodes had, whether `body` returns or throws, and when a signal ends the
    /// process meanwhile (`SignalWatcher`). Without weights it runs `body` alone.
    ///
    /// Another process that changes the weights (a second run, `tiers --apply`) waits for this
    /// one's lock (`InterleaveWeights.Lock`), after a line saying so. Only weights that differ
    /// from the kernel's are written; when the kernel chooses them itself (`auto`) and could not
    /// choose them again, a warning says so before the run. Setting weights needs root.
    public func withInterleaveWeights<T>(_ body: () throws -> T) throws -> T {
        guard let interleaveWeights else { return try body() }
        let watcher = try SignalWatcher.start()
        let lock: InterleaveWeights.Lock
        do {
            lock = try InterleaveWeights.Lock {
                StandardStreams.report("membench: waiting for another process that has set interleave weights (a membench run or tiers --apply) to end\n")
            }
        } catch {
            throw MembenchError.from(error, setting: .weightedInterleave)
        }
        defer { withExtendedLifetime(lock) {} }
        InterleaveWeights.warnIfAutomaticModeIsLost(by: interleaveWeights)
        do {
            try watcher.set(interleaveWeights)
        } catch {
            throw MembenchError.from(error, setting: .weightedInterleave)
        }
        let result: T
        do {
            result = try body()
        } catch {
            if let failure = watcher.restore().failure {
                StandardStreams.report("membench: warning: the interleave weights were not put back: \(failure)\n")
            }
            throw error
        }
        let restored = watcher.restore()
        if let failure = restored.failure {
            throw MembenchError.refused("cannot restore the interleave weights: \(failure)")
        }
        if let lost = restored.automaticModeLost {
            StandardStreams.report("membench: warning: the interleave weights are back; \(lost)\n")
        }
        return result
    }
}

extension InterleaveWeights {
    /// Warns, before anything is written, when writing `weights` turns off the kernel's `auto`
    /// mode and the kernel could not turn it back on.
    public static func warnIfAutomaticModeIsLost(by weights: [Int: Int]) {
        guard isAutomatic == true, !changes(weights).isEmpty, !canRestoreAutomatic else { return }
        StandardStreams.report("membench: warning: setting interleave weights turns off the kernel's automatic weights, which it cannot turn back on here (no node has firmware bandwidth data); they stay off until reboot\n")
    }
}

/// Watches, on a thread of its own (sigwait(3)), every signal whose default is to end the
/// process and that can arrive from outside: SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGUSR1,
/// SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,
/// SIGPWR and the real-time signals, less those the process ignores (as under nohup). Such a
/// signal puts back any interleave weights set (`set`), says so, and then ends the process by
/// the signal's default action, so that a parent sees it end by that signal (a shell reports
/// 128 + its number) and no result of the interrupted run is written. A crash inside the
/// process (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS) and SIGKILL cannot be watched.
///
/// The signals are blocked in the thread that starts the watcher and in every thread started
/// after it: start it first, before any other thread (`membench` does so in `main`).
public final class SignalWatcher: Sendable {
    /// The weights to put back, under the lock the watcher takes to restore them, so that a
    /// signal while they are being written waits for them and then puts them all back.
    private let saved = Locked<InterleaveWeights.Saved?>(nil)

    // nonisolated(unsafe): written once, under `starting`, by the first `start`, then only read.
    nonisolated(unsafe) private static var shared: SignalWatcher?
    private static let starting = Locked<Void>(())

    /// The process's watcher, started on the first call.
    @discardableResult
    public static func start() throws(MembenchError) -> SignalWatcher {
        try starting.withLock { (_) throws(MembenchError) -> SignalWatcher in
            if let shared { return shared }
            let watcher = SignalWatcher()
            try watcher.run()
            shared = watcher
            return watcher
        }
    }

    private init() {}

    /// The signals that end a process by default and can come from outside, by name.
    static let fatal: [(Int32, String)] = [
        (SIGHUP, "SIGHUP"), (SIGINT, "SIGINT"), (SIGQUIT, "SIGQUIT"), (SIGABRT, "SIGABRT"), (SIGUSR1, "SIGUSR1"),
        (SIGUSR2, "SIGUSR2"), (SIGPIPE, "SIGPIPE"), (SIGALRM, "SIGALRM"), (SIGTERM, "SIGTERM"),
        (SIGSTKFLT, "SIGSTKFLT"), (SIGXCPU, "SIGXCPU"), (SIGXFSZ, "SIGXFSZ"), (SIGVTALRM, "SIGVTALRM"),
        (SIGPROF, "SIGPROF"), (SIGIO, "SIGIO"), (SIGPWR, "SIGPWR"),
    ] + (__libc_current_sigrtmin()...__libc_current_sigrtmax()).map { ($0, "SIGRTMIN+\($0 - __libc_current_sigrtmin())") }

    /// The signals watched: `fatal` less those the process ignores.
    static var signals: [Int32] { fatal.map(\.0).filter { !isIgnored($0) } }

    /// Whether the process ignores `signal` (SIG_IGN).
    static func isIgnored(_ signal: Int32) -> Bool {
        var action = sigaction()
        sigaction(signal, nil, &action)
        // Handlers are C function pointers, compared by address (SIG_IGN is address 1).
        return unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }

    /// Whether `signal` has a handler of its own (neither SIG_DFL nor SIG_IGN).
    static func hasHandler(_ signal: Int32) -> Bool {
        var action = sigaction()
        sigaction(signal, nil, &action)
        let handler = unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self)
        return handler != unsafeBitCast(SIG_DFL, to: Int.self) && handler != unsafeBitCast(SIG_IGN, to: Int.self)
    }

    /// Sets the weights and keeps what they replace until `restore`.
    func set(_ weights: [Int: Int]) throws(NUMAError) {
        try saved.withLock { (saved) throws(NUMAError) in
            saved = try InterleaveWeights.set(weights)
        }
    }

    /// What a restore left changed: the weights not put back, and the kernel's `auto` mode where
    /// it could not be turned back on. Both nil when all is as it was.
    struct Restored {
        var failure: String?
        var automaticModeLost: String?
    }

    /// Puts back the weights `set` replaced, once.
    func restore() -> Restored {
        saved.withLock { saved -> Restored in
            guard let taken = saved else { return Restored() }
            saved = nil
            do throws(NUMAError) {
                return Restored(automaticModeLost: try InterleaveWeights.restore(taken)?.message)
            } catch {
                return Restored(failure: error.message)
            }
        }
    }

    private func run() throws(MembenchError) {
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in Self.signals { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, nil)
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            Unmanaged<SignalWatcher>.fromOpaque(context!).takeRetainedValue().watch()
        }, context)
        guard rc == 0 else {
            Unmanaged<SignalWatcher>.fromOpaque(context).release()
            pthread_sigmask(SIG_UNBLOCK, &blocked, nil)
            throw .refused("cannot start a thread to watch for signals: \(String(cString: strerror(rc)))")
        }
        pthread_detach(thread)
    }

    private func watch() -> Never {
        var waited = sigset_t()
        sigemptyset(&waited)
        for signal in Self.signals { sigaddset(&waited, signal) }
        var signal: Int32 = 0
        var info = siginfo_t()
        while true {
            signal = sigwaitinfo(&waited, &info)
            guard signal > 0 else { continue }
            // A signal this process sent itself is not a request to end: the Swift runtime's
            // crash reporter sends SIGUSR1 to every thread (tgkill, which glibc reports as
            // SI_USER) and waits for its handler to read the thread's stack. It goes to the
            // handler as if this thread had not blocked it.
            let sent = info.si_code == SI_USER || info.si_code == SI_TKILL
            guard sent && info._sifields._kill.si_pid == getpid() else { break }
            if Self.hasHandler(signal) {
                var only = sigset_t()
                sigemptyset(&only)
                sigaddset(&only, signal)
                pthread_kill(pthread_self(), signal)
                pthread_sigmask(SIG_UNBLOCK, &only, nil)
                pthread_sigmask(SIG_BLOCK, &only, nil)
            }
        }
        let name = Self.fatal.first { $0.0 == signal }?.1 ?? "signal \(signal)"
        // Held until the process ends, so that the weights cannot be set after their restore.
        saved.withLock { saved in
            guard let taken = saved else { return }
            saved = nil
            let outcome: String
            do throws(NUMAError) {
                if let lost = try InterleaveWeights.restore(taken) {
                    outcome = "the interleave weights are back; \(lost.message)"
                } else {
                    outcome = "the interleave weights are back as they were"
                }
            } catch {
                outcome = "the interleave weights were not put back: \(error.message)"
            }
            StandardStreams.report("membench: \(name) ended the run; \(outcome)\n")
            Self.endBy(signal)
        }
        Self.endBy(signal)
    }

    /// Ends the process by `signal`'s default action, or, should that not end it, with exit
    /// status 128 + the signal.
    private static func endBy(_ signal: Int32) -> Never {
        Glibc.signal(signal, SIG_DFL)
        var only = sigset_t()
        sigemptyset(&only)
        sigaddset(&only, signal)
        pthread_sigmask(SIG_UNBLOCK, &only, nil)
        raise(signal)
        _exit(128 + signal)
    }
}
