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
    /// process meanwhile (`SignalWatcher`, whose signals stay blocked in the calling thread and
    /// the threads it starts until `body` ends). Without weights it runs `body` alone.
    ///
    /// Another process that changes the weights (a second run, `tiers --apply`) waits for this
    /// one's lock (`InterleaveWeights.Lock`), after a line saying so. Only weights that differ
    /// from the kernel's are written; when the kernel chooses them itself (`auto`) and could not
    /// choose them again, a warning says so before the run. Setting weights needs root.
    public func withInterleaveWeights<T>(_ body: () throws -> T) throws -> T {
        guard let interleaveWeights else { return try body() }
        let watcher = try SignalWatcher()
        defer { watcher.stop() }
        let lock: InterleaveWeights.Lock
        do {
            lock = try InterleaveWeights.lockSayingWhenWaiting()
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
            let restored = watcher.restore()
            if let failure = restored.failure {
                StandardStreams.report("membench: warning: the interleave weights were not put back: \(failure)\n")
            } else if let lost = restored.automaticModeLost {
                StandardStreams.report("membench: warning: the interleave weights are back; \(lost)\n")
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
    /// Takes the weights' lock (`Lock`), saying on stderr when it waits for another process.
    public static func lockSayingWhenWaiting() throws(NUMAError) -> Lock {
        try Lock {
            StandardStreams.report("membench: waiting for another process that has set interleave weights (a membench run or tiers --apply) to end\n")
        }
    }

    /// Warns, before anything is written, when writing `weights` turns off the kernel's `auto`
    /// mode and the kernel could not turn it back on.
    public static func warnIfAutomaticModeIsLost(by weights: [Int: Int]) {
        guard isAutomatic == true, !changes(weights).isEmpty, !canRestoreAutomatic else { return }
        StandardStreams.report("membench: warning: setting interleave weights turns off the kernel's automatic weights, which it cannot turn back on here (no node has firmware bandwidth data); they stay off until reboot\n")
    }
}

/// Watches, on a thread of its own (sigwaitinfo(2)), every signal whose default is to end the
/// process and that can arrive from outside: SIGHUP, SIGINT, SIGQUIT, SIGABRT, SIGUSR1,
/// SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,
/// SIGPWR and the real-time signals, less those the process ignores (as under nohup). Such a
/// signal puts back the interleave weights set (`set`), says so, and then ends the process by
/// the signal's default action, so that a parent sees it end by that signal (a shell reports
/// 128 + its number) and no result of the interrupted run is written. A crash inside the
/// process (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS) and SIGKILL cannot be watched.
///
/// The signals are blocked in the thread that makes the watcher and in every thread it starts
/// afterwards, until `stop`.
public final class SignalWatcher: @unchecked Sendable {
    // @unchecked: `saved` is a lock-protected value; `thread` and `previous` are written by the
    // making thread before the watcher thread starts and read by it in `stop` only; `stopping`
    // is atomic.
    /// The weights to put back, under the lock the watcher takes to restore them, so that a
    /// signal while they are being written waits for them and then puts them all back.
    private let saved = Locked<InterleaveWeights.Saved?>(nil)
    private var thread = pthread_t()
    private var previous = sigset_t()
    private let stopping = Atomic<Bool>(false)

    /// The signals that end a process by default and can come from outside, by name.
    static let fatal: [(Int32, String)] = [
        (SIGHUP, "SIGHUP"), (SIGINT, "SIGINT"), (SIGQUIT, "SIGQUIT"), (SIGABRT, "SIGABRT"), (SIGUSR1, "SIGUSR1"),
        (SIGUSR2, "SIGUSR2"), (SIGPIPE, "SIGPIPE"), (SIGALRM, "SIGALRM"), (SIGTERM, "SIGTERM"),
        (SIGSTKFLT, "SIGSTKFLT"), (SIGXCPU, "SIGXCPU"), (SIGXFSZ, "SIGXFSZ"), (SIGVTALRM, "SIGVTALRM"),
        (SIGPROF, "SIGPROF"), (SIGIO, "SIGIO"), (SIGPWR, "SIGPWR"),
    ] + (__libc_current_sigrtmin()...__libc_current_sigrtmax()).map { ($0, "SIGRTMIN+\($0 - __libc_current_sigrtmin())") }

    /// The signals watched: `fatal` less those the process ignores. SIGUSR2 stays, as what
    /// `stop` sends the watcher's thread.
    private let signals: [Int32] = fatal.map(\.0).filter { $0 == SIGUSR2 || !isIgnored($0) }
    /// Whether the process ignored SIGUSR2: one from outside is then ignored.
    private let ignoresUSR2 = isIgnored(SIGUSR2)

    /// Whether the process ignores `signal` (SIG_IGN).
    static func isIgnored(_ signal: Int32) -> Bool {
        handler(signal) == unsafeBitCast(SIG_IGN, to: Int.self)
    }

    /// Whether `signal` has a handler of its own (neither SIG_DFL nor SIG_IGN).
    static func hasHandler(_ signal: Int32) -> Bool {
        let handler = handler(signal)
        return handler != unsafeBitCast(SIG_DFL, to: Int.self) && handler != unsafeBitCast(SIG_IGN, to: Int.self)
    }

    /// The address of `signal`'s handler: C function pointers compare by address (SIG_IGN is 1).
    private static func handler(_ signal: Int32) -> Int {
        var action = sigaction()
        sigaction(signal, nil, &action)
        return unsafeBitCast(action.__sigaction_handler.sa_handler, to: Int.self)
    }

    /// Readies a command-line process, first thing in `main`, for signals to end a run: every
    /// signal of `fatal` is unblocked (a blocked mask is inherited across exec, and a blocked
    /// SIGINT or SIGQUIT did nothing), and SIGQUIT gets its default action back (the Swift
    /// runtime's crash reporter catches it, prints a backtrace and lets the run go on, with the
    /// stalled part in its results). Ignored signals stay ignored.
    public static func prepareProcess() {
        if !isIgnored(SIGQUIT) { Glibc.signal(SIGQUIT, SIG_DFL) }
        var unblocked = sigset_t()
        sigemptyset(&unblocked)
        for (signal, _) in fatal { sigaddset(&unblocked, signal) }
        pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
    }

    /// Blocks the signals in this thread and starts the watcher's thread.
    init() throws(MembenchError) {
        var blocked = sigset_t()
        sigemptyset(&blocked)
        for signal in signals { sigaddset(&blocked, signal) }
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { context in
            Unmanaged<SignalWatcher>.fromOpaque(context!).takeRetainedValue().watch()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<SignalWatcher>.fromOpaque(context).release()
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            throw .refused("cannot start a thread to watch for signals: \(String(cString: strerror(rc)))")
        }
    }

    /// Ends the watch (SIGUSR2 to the watcher's thread) and unblocks the signals; call once.
    func stop() {
        stopping.store(true, ordering: .releasing)
        pthread_kill(thread, SIGUSR2)
        pthread_join(thread, nil)
        pthread_sigmask(SIG_SETMASK, &previous, nil)
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

    private func watch() {
        var waited = sigset_t()
        sigemptyset(&waited)
        for signal in signals { sigaddset(&waited, signal) }
        var signal: Int32 = 0
        var info = siginfo_t()
        while true {
            signal = sigwaitinfo(&waited, &info)
            guard signal > 0 else { continue }
            // A signal this process sent itself is not a request to end: `stop`'s SIGUSR2, or
            // the Swift runtime's crash reporter, which sends SIGUSR1 to every thread (tgkill,
            // which glibc reports as SI_USER) and waits for its handler to read the thread's
            // stack; that one goes to the handler as if this thread had not blocked it.
            let sent = (info.si_code == SI_USER || info.si_code == SI_TKILL) && info._sifields._kill.si_pid == getpid()
            if sent {
                if signal == SIGUSR2 && stopping.load(ordering: .acquiring) { return }
                if Self.hasHandler(signal) {
                    var only = sigset_t()
                    sigemptyset(&only)
                    sigaddset(&only, signal)
                    pthread_kill(pthread_self(), signal)
                    pthread_sigmask(SIG_UNBLOCK, &only, nil)
                    pthread_sigmask(SIG_BLOCK, &only, nil)
                }
                continue
            }
            if signal == SIGUSR2 && ignoresUSR2 { continue }
            break
        }
        let name = Self.fatal.first { $0.0 == signal }?.1 ?? "signal \(signal)"
        // Held until the process ends, so that the weights cannot be set after their restore.
        saved.withLock { saved in
            if let taken = saved {
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
            }
            Self.endBy(signal)
        }
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
