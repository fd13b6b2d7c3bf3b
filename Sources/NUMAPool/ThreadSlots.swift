import CNuma
import NUMA
#if canImport(Glibc)
import Glibc
#endif

/// A pool that keeps state per thread in the slot tables (`CNuma_slots`): `LocalPool`'s block
/// caches and `ObjectPool`'s object caches. Calls come without `CNuma_slots_lock` held (an
/// object's deinit may well use a pool), after the entry was taken out of the table or, for a
/// move, while the caller holds the owner alive.
protocol SlotOwner: AnyObject, Sendable {
    /// The thread that owns `state` is exiting: give back what it holds and free it.
    func retire(_ state: UnsafeMutableRawPointer)
    /// The thread that owned `state` does not exist: this process is the child of a fork(2)
    /// made while that thread ran. Count what it held as lost, never hand it out, free it.
    func writeOff(_ state: UnsafeMutableRawPointer)
    /// The calling thread, which owns `state`, restricted itself to other CPUs
    /// (`ThreadAffinity`): move the state to the thread's node now.
    func threadMoved(_ state: UnsafeMutableRawPointer)
    /// Whether `state`, whose owner is claimed by another thread, holds anything to give back
    /// (with `idleOnly`, only if its owner has also been idle for the owner's idle time).
    func wantsReclaim(_ state: UnsafeMutableRawPointer, idleOnly: Bool) -> Bool
    /// The thread that owns `state` is parked (blocked in a system call) and claimed by the
    /// calling thread: give back what the state holds. The state stays the owner's.
    func reclaim(_ state: UnsafeMutableRawPointer)
}

/// The slots of the per-thread tables: which pool owns each slot, and the lifecycle of the
/// state that pools keep in them.
///
/// - A pool claims a slot when it is made; its fast path reads the calling thread's entry with
///   one thread-local load (`CNuma_slot`). An entry without state points at
///   `CNuma_empty_state`, which every fast path reads as "take the slow path".
/// - A thread's table joins the process-wide list the first time a pool installs state in it;
///   at thread exit (pthread_key_create(3)'s destructor) each pool retires its state.
/// - When a pool ends, its slot is cleared in every listed table before the slot is reused, so
///   a table never holds another pool's state, and the fast paths need no check of ownership.
/// - After a fork, the tables of threads that were not copied into the child are written off
///   by their pools at the next slow path (`reapIfForked`).
enum ThreadSlots {
    // nonisolated(unsafe): read and written only with CNuma_slots_lock held.
    /// The owner of each slot. Slot 0 is never handed out.
    nonisolated(unsafe) private static var owners: [(any SlotOwner)?] = [nil]
    nonisolated(unsafe) private static var freeSlots: [Int] = []
    nonisolated(unsafe) private static var started = false
    // nonisolated(unsafe): created once under CNuma_slots_lock, then only read.
    nonisolated(unsafe) private static var exitKey = pthread_key_t()

    /// Runs `body` with `CNuma_slots_lock` held.
    private static func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        CNuma_slots_acquire()
        defer { CNuma_slots_release() }
        return try body()
    }

    /// Claims a slot for `owner`.
    static func claim(_ owner: some SlotOwner) throws(PoolError) -> Int {
        let slot = try withLock { () throws(PoolError) -> Int in
            if !started {
                started = true
                let rc = pthread_key_create(&exitKey) { _ in ThreadSlots.threadExit() }
                precondition(rc == 0, "pthread_key_create failed: \(rc)")
            }
            if let slot = freeSlots.popLast() {
                owners[slot] = owner
                return slot
            }
            guard owners.count < Int(CNUMA_SLOT_COUNT) else { throw .tooManyPools(limit: Int(CNUMA_SLOT_COUNT) - 1) }
            owners.append(owner)
            return owners.count - 1
        }
        _ = observeMovesOnce
        return slot
    }

    /// Moves the caller's state when it moves itself through `ThreadAffinity`.
    private static let observeMovesOnce: Void = ThreadAffinity.observeMoves { ThreadSlots.threadMoved() }

    /// Ends `slot`: clears it in every table and returns its owner, which the caller lets go
    /// after this returns (an owner may own locks, which must not end under this lock).
    static func release(_ slot: Int) -> (any SlotOwner)? {
        withLock { () -> (any SlotOwner)? in
            for dead in [false, true] {
                var table = dead ? CNuma_slots_next_dead(nil) : CNuma_slots_next(nil)
                while let current = table {
                    CNuma_slot_set(current, slot, nil)
                    table = dead ? CNuma_slots_next_dead(current) : CNuma_slots_next(current)
                }
            }
            let owner = owners[slot]
            owners[slot] = nil
            freeSlots.append(slot)
            return owner
        }
    }

    /// Puts `state` in the calling thread's entry for `slot`.
    static func install(_ state: UnsafeMutableRawPointer, slot: Int) {
        withLock {
            CNuma_slots_link()
            CNuma_slot_set(CNuma_slots_self(), slot, state)
        }
        // Any non-nil value: the destructor runs at exit only for threads that set one.
        if pthread_getspecific(exitKey) == nil { pthread_setspecific(exitKey, UnsafeRawPointer(bitPattern: 1)) }
    }

    /// The calling thread's state in `slot`, made active again if a trim deactivated it; nil
    /// when the thread has none.
    static func ownState(_ slot: Int) -> UnsafeMutableRawPointer? {
        let home = CNuma_slot_get(CNuma_slots_self(), slot)
        guard !isEmpty(home) else { return nil }
        if CNuma_slot(slot) != home { CNuma_slot_activate(slot) }
        return home
    }

    /// The calling thread's state in `slot`, not made active; nil when it has none.
    static func homeState(_ slot: Int) -> UnsafeMutableRawPointer? {
        let home = CNuma_slot_get(CNuma_slots_self(), slot)
        return isEmpty(home) ? nil : home
    }

    /// Makes the calling thread's state in `slot` active again, if it was deactivated.
    static func activate(_ slot: Int) {
        if CNuma_slot(slot) != CNuma_slot_get(CNuma_slots_self(), slot) { CNuma_slot_activate(slot) }
    }

    /// Deactivates `slot` in every other thread's table: their next call on the pool takes the
    /// slow path, which activates it again (`ownState`).
    static func deactivateOthers(_ slot: Int) {
        withLock {
            let own = CNuma_slots_self()
            var table = CNuma_slots_next(nil)
            while let current = table {
                if current != own { CNuma_slot_deactivate(current, slot) }
                table = CNuma_slots_next(current)
            }
        }
    }

    /// Whether `state` is the empty state (the entry holds none).
    @inline(__always)
    static func isEmpty(_ state: UnsafeMutableRawPointer) -> Bool { CNuma_slot_is_empty(state) != 0 }

    /// The entries of `table` that hold state, with their owners (held, so that a pool that
    /// ends meanwhile keeps its core until the call is done). With `clear`, they are emptied.
    private static func states(in table: UnsafeMutablePointer<CNuma_slot_table>, clear: Bool)
        -> [(owner: any SlotOwner, state: UnsafeMutableRawPointer)] {
        var found: [(owner: any SlotOwner, state: UnsafeMutableRawPointer)] = []
        for slot in 1..<owners.count {
            let state = CNuma_slot_get(table, slot)
            guard !isEmpty(state), let owner = owners[slot] else { continue }
            found.append((owner, state))
            if clear { CNuma_slot_set(table, slot, nil) }
        }
        return found
    }

    /// The calling thread exits: every pool retires its state. A pool used while another
    /// retires (an object's deinit freeing a block, say) installs state again, and the key's
    /// destructor runs again for it.
    private static func threadExit() {
        // Claimed first, so that a thread reclaiming this table's states finishes before they
        // go (and the table with the thread).
        enter()
        defer { leave() }
        let found = withLock {
            let found = states(in: CNuma_slots_self(), clear: true)
            CNuma_slots_unlink()
            return found
        }
        for (owner, state) in found { owner.retire(state) }
    }

    /// The calling thread restricted itself to other CPUs.
    private static func threadMoved() {
        enter()
        defer { leave() }
        let found = withLock { states(in: CNuma_slots_self(), clear: false) }
        for (owner, state) in found { owner.threadMoved(state) }
    }

    // MARK: Claims

    /// What a claim by the calling thread as owner, or as reclaimer, stores in a holder.
    private static func holder(reclaiming: Bool) -> UInt64 { UInt64(getpid()) << 2 | (reclaiming ? 2 : 1) }

    /// Claims the calling thread's own states for a slow path; nested claims count. Waits while
    /// another thread reclaims them; a claim left by a thread of the parent process (in a fork
    /// child) is taken over.
    static func enter() {
        let table = CNuma_slots_self()
        if table.pointee.depth > 0 {
            table.pointee.depth += 1
            return
        }
        let mine = holder(reclaiming: false)
        var found: UInt64 = 0
        while CNuma_slots_claim(table, mine, &found) == 0 {
            if found >> 2 != UInt64(getpid()) { CNuma_slots_drop_claim(table, found) } else { sched_yield() }
        }
        table.pointee.depth = 1
    }

    /// Ends a claim `enter` made.
    static func leave() {
        let table = CNuma_slots_self()
        table.pointee.depth -= 1
        if table.pointee.depth == 0 { CNuma_slots_unclaim(table) }
    }

    /// Runs `body` with the calling thread's states claimed.
    static func claimed<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        enter()
        defer { leave() }
        return try body()
    }

    /// Whether other threads' states may be reclaimed while they are parked. Not under
    /// ThreadSanitizer: what orders an owner's last fast path before the reclaim is the kernel's
    /// (the owner is blocked in a system call), which it cannot see.
    private static let reclaimsParked = dlsym(nil, "__tsan_init") == nil  // nil: RTLD_DEFAULT

    /// Gives back the states in `slot` of the other threads that are parked now (blocked in a
    /// system call: sleeping, waiting on a lock, a condition or I/O), through their pool's
    /// `reclaim`. With `idleOnly`, only states the pool says are idle. For each thread: claim
    /// its table (skipped while it is in a slow path), deactivate its entry (its next call
    /// takes the slow path, which waits for the claim), then read `/proc/self/task/TID/syscall`:
    /// a thread blocked in a system call is in none of the fast paths, which make none, and
    /// when it comes back its next call sees the deactivated entry. The claim also keeps the
    /// table alive: an ending thread claims its own first. Returns how many were reclaimed.
    @discardableResult
    static func reclaimParked(_ slot: Int, idleOnly: Bool) -> Int {
        guard reclaimsParked else { return 0 }
        let reclaimer = holder(reclaiming: true)
        let (owner, claimedTables) = withLock { () -> ((any SlotOwner)?, [UnsafeMutablePointer<CNuma_slot_table>]) in
            guard let owner = owners[slot] else { return (nil, []) }
            let own = CNuma_slots_self()
            var claimed: [UnsafeMutablePointer<CNuma_slot_table>] = []
            var table = CNuma_slots_next(nil)
            var found: UInt64 = 0
            while let current = table {
                if current != own && !isEmpty(CNuma_slot_get(current, slot)) && CNuma_slots_claim(current, reclaimer, &found) != 0 {
                    claimed.append(current)
                }
                table = CNuma_slots_next(current)
            }
            return (owner, claimed)
        }
        guard let owner else { return 0 }
        var reclaimed = 0
        for table in claimedTables {
            defer { CNuma_slots_unclaim(table) }
            let state = CNuma_slot_get(table, slot)
            guard !isEmpty(state), owner.wantsReclaim(state, idleOnly: idleOnly) else { continue }
            CNuma_slot_deactivate(table, slot)
            guard isBlockedInSystemCall(table.pointee.tid) else { continue }
            owner.reclaim(state)
            reclaimed += 1
        }
        return reclaimed
    }

    /// Whether thread `tid` of this process is blocked in a system call: the first field of
    /// `/proc/self/task/TID/syscall` is a system call number (not `running`, and not -1, which
    /// means blocked outside a system call, such as in a page fault).
    static func isBlockedInSystemCall(_ tid: Int32) -> Bool {
        let fd = open("/proc/self/task/\(tid)/syscall", O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return false }
        let text = String(decoding: buffer[0..<count], as: UTF8.self)
        guard let first = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first, let number = Int(first) else { return false }
        return number >= 0
    }

    /// In a fork child: the pools write off the state of the threads that were not copied.
    /// Cheap when there is nothing to do (one relaxed load); the pools call it on their slow
    /// paths and before a snapshot.
    @inline(__always)
    static func reapIfForked() {
        if CNuma_slots_have_dead() != 0 { reap() }
    }

    private static func reap() {
        let found = withLock {
            var found: [(owner: any SlotOwner, state: UnsafeMutableRawPointer)] = []
            while let table = CNuma_slots_next_dead(nil) {
                found += states(in: table, clear: true)
                CNuma_slots_forget_dead(table)
            }
            return found
        }
        for (owner, state) in found { owner.writeOff(state) }
    }
}
