// CNuma: the per-thread slot tables of the pools, and the locks that fork(2) keeps usable.
#ifndef CNUMA_THREADS_H
#define CNUMA_THREADS_H

#include <pthread.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: locks that survive fork(2)

/// A pthread mutex in the process's list of locks that fork(2) keeps usable. pthread_atfork(3)
/// handlers take every listed lock, in the order the locks were made, before a fork, release
/// them in the parent after it, and reinitialise them in the child, so that no lock is left
/// held by a thread that does not exist there. Two rules follow: a thread that holds two
/// listed locks takes them in the order they were made, and no lock is made or ended while
/// its maker holds a listed lock.
typedef struct CNuma_lock {
    pthread_mutex_t mutex;
    struct CNuma_lock *_Nullable prev;
    struct CNuma_lock *_Nullable next;
} CNuma_lock;

/// pthread_mutex_init(3) and joins the list (installing the fork handlers on first use).
/// Returns 0 or an errno value.
int CNuma_lock_init(CNuma_lock *_Nonnull lock);

/// Leaves the list; pthread_mutex_destroy(3). The lock must not be held.
void CNuma_lock_destroy(CNuma_lock *_Nonnull lock);

// MARK: per-thread slot tables

/// Slots per thread: how many pools may keep per-thread state at once (slot 0 is never used).
enum { CNUMA_SLOT_COUNT = 256 };

/// One thread's table of per-thread pool state. `home[slot]` is the state of the pool that
/// holds `slot`, or `CNuma_empty_state`; only the owning thread uses it, but for a pool's end,
/// the thread's exit and a fork child. `active[slot]` is what the pool's fast path reads: the
/// same state, or `CNuma_empty_state` after another thread deactivated it (`LocalPool.trim()`
/// does, so that every thread looks at the arena again before it takes or accepts a block);
/// the owner's next slow path activates it again. An initial-exec thread-local, so that a fast
/// path reaches its state with one %fs-relative load and no call. Every entry of a new thread
/// starts at `CNuma_empty_state`, never NULL, so the fast path needs no NULL test: an empty
/// state reads as a cache with nothing in it and no room, which sends every operation to the
/// slow path. Tables that hold state are linked into a process-wide list under
/// `CNuma_slots_lock`, so that a pool that ends can clear its slot in every thread.
typedef struct CNuma_slot_table {
    void *_Nonnull active[CNUMA_SLOT_COUNT];
    void *_Nonnull home[CNUMA_SLOT_COUNT];
    struct CNuma_slot_table *_Nullable prev;
    struct CNuma_slot_table *_Nullable next;
    int linked;
    /// The owning thread's id (gettid(2)), set when the table is linked.
    int32_t tid;
    /// Who holds the thread's pool state: 0 nobody, else a process id shifted left by 2, or'ed
    /// with 1 (the owner, in a slow path) or 2 (another thread reclaiming it while the owner is
    /// parked). Atomic; see `CNuma_slots_claim`.
    uint64_t holder;
    /// How deeply the owner's claims nest (the owner's only).
    int32_t depth;
} CNuma_slot_table;

extern __thread CNuma_slot_table CNuma_slots __attribute__((tls_model("initial-exec")));

/// Words of `CNuma_empty_state`: 24 KiB, enough for every line a fast path reads at a fixed
/// offset from its state (the heap's per-class caches lie up to 44 × 512 bytes in).
enum { CNUMA_EMPTY_STATE_WORDS = 3072 };

/// Zero bytes, aligned to a cache line: the state of a slot that holds none. Read-only.
extern const uint64_t CNuma_empty_state[CNUMA_EMPTY_STATE_WORDS] __attribute__((aligned(64)));

/// Entries of `CNuma_heap_cache_offsets`: one per 16 bytes of size, up to 64 KiB.
enum { CNUMA_HEAP_CLASS_TABLE = 4097 };

/// For each size rounded up to 16 bytes (index: (size + 15) / 16), the offset of its size
/// class's cache in a thread's heap cache (class × 512), 0 for size 0. Written once, before the
/// first heap is made, by `NUMAHeap`; read by its fast path.
extern uint16_t CNuma_heap_cache_offsets[CNUMA_HEAP_CLASS_TABLE];

/// `CNuma_heap_cache_offsets[index]`, for Swift (which sees a C array as a tuple). Inline.
static inline uint16_t CNuma_heap_cache_offset(uintptr_t index) { return CNuma_heap_cache_offsets[index]; }

/// Sets `CNuma_heap_cache_offsets[index]`.
static inline void CNuma_heap_cache_offset_set(uintptr_t index, uint16_t offset) { CNuma_heap_cache_offsets[index] = offset; }

/// The calling thread's active state in `slot` (never NULL): a relaxed atomic load, which on
/// x86-64 is one %fs-relative `mov`. Inline.
static inline void *_Nonnull CNuma_slot(intptr_t slot) {
    return __atomic_load_n(&CNuma_slots.active[slot], __ATOMIC_RELAXED);
}

/// Whether `state` is `CNuma_empty_state`.
static inline int CNuma_slot_is_empty(const void *_Nonnull state) { return state == (const void *)CNuma_empty_state; }

/// The calling thread's table.
static inline CNuma_slot_table *_Nonnull CNuma_slots_self(void) { return &CNuma_slots; }

/// The home entry `slot` of `table`.
static inline void *_Nonnull CNuma_slot_get(const CNuma_slot_table *_Nonnull table, intptr_t slot) {
    return table->home[slot];
}

/// Sets entry `slot` of `table`, home and active; NULL means `CNuma_empty_state`.
static inline void CNuma_slot_set(CNuma_slot_table *_Nonnull table, intptr_t slot, void *_Nullable state) {
    void *value = state ? state : (void *)CNuma_empty_state;
    table->home[slot] = value;
    __atomic_store_n(&table->active[slot], value, __ATOMIC_RELAXED);
}

/// Makes the calling thread's home state in `slot` active again.
static inline void CNuma_slot_activate(intptr_t slot) {
    __atomic_store_n(&CNuma_slots.active[slot], CNuma_slots.home[slot], __ATOMIC_RELAXED);
}

/// Deactivates entry `slot` of `table` (any thread): its fast path sees an empty state until
/// its owner activates it again.
static inline void CNuma_slot_deactivate(CNuma_slot_table *_Nonnull table, intptr_t slot) {
    __atomic_store_n(&table->active[slot], (void *)CNuma_empty_state, __ATOMIC_RELAXED);
}

/// Sets `table`'s holder from 0 to `holder` (acquire ordering); returns whether it did, and
/// the value found in `found`.
int CNuma_slots_claim(CNuma_slot_table *_Nonnull table, uint64_t holder, uint64_t *_Nonnull found);

/// Sets `table`'s holder from `expected` to 0 (relaxed): a claim left by a thread of the
/// parent process, taken over in a fork child.
void CNuma_slots_drop_claim(CNuma_slot_table *_Nonnull table, uint64_t expected);

/// Sets `table`'s holder to 0 (release ordering).
void CNuma_slots_unclaim(CNuma_slot_table *_Nonnull table);

/// Guards the list of tables and the pools' slot registry; the first lock in fork order.
extern CNuma_lock CNuma_slots_lock;

/// pthread_mutex_lock(3) and pthread_mutex_unlock(3) of CNuma_slots_lock.
void CNuma_slots_acquire(void);
void CNuma_slots_release(void);

/// Links the calling thread's table into the list (no-op when linked). Hold CNuma_slots_lock.
void CNuma_slots_link(void);

/// Unlinks the calling thread's table. Hold CNuma_slots_lock.
void CNuma_slots_unlink(void);

/// The linked table after `table`, or the first for NULL; NULL at the end. Hold CNuma_slots_lock.
CNuma_slot_table *_Nullable CNuma_slots_next(CNuma_slot_table *_Nullable table);

/// Tables of threads that did not survive a fork(2): in the child, every table but the
/// forking thread's moves to this list, which the pools then write off. The dead table after
/// `table`, or the first for NULL; NULL at the end. Hold CNuma_slots_lock.
CNuma_slot_table *_Nullable CNuma_slots_next_dead(CNuma_slot_table *_Nullable table);

/// Removes `table` from the dead list. Hold CNuma_slots_lock.
void CNuma_slots_forget_dead(CNuma_slot_table *_Nonnull table);

/// Whether the dead list holds tables (a relaxed atomic read; any thread).
int CNuma_slots_have_dead(void);

#ifdef __cplusplus
}
#endif

#endif
