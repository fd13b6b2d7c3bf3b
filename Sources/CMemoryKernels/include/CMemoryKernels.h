#ifndef CMEMORYKERNELS_H
#define CMEMORYKERNELS_H

#include <stddef.h>
#include <stdint.h>

// Streaming kernels for membench bandwidth. Every pointer is 64-byte aligned and every length
// a multiple of 64 bytes. Each kernel makes one pass and returns a value that depends on the
// memory it read (or wrote), so that the caller can keep it and no pass can be dropped.

/// Reads `bytes` from `a`: 16-byte aligned loads whose values nothing waits on; returns the sum
/// of the last 64-byte line's words.
uint64_t CMemoryKernels_read(const void *a, size_t bytes);
/// Copies `bytes` from `b` to `a` (one read, one write per 16 bytes).
uint64_t CMemoryKernels_copy(void *a, const void *b, size_t bytes);
/// a[i] = b[i] + 3 * c[i] over `bytes` of each, as doubles (two reads, one write).
uint64_t CMemoryKernels_triad(void *a, const void *b, const void *c, size_t bytes);
/// Writes `bytes` of `a` with ordinary stores.
uint64_t CMemoryKernels_write(void *a, size_t bytes, uint64_t value);
/// Writes `bytes` of `a` with non-temporal stores that bypass the caches, then fences.
/// Returns 0 and does nothing where the target has no such stores (see has_nontemporal).
uint64_t CMemoryKernels_write_nontemporal(void *a, size_t bytes, uint64_t value);
/// 1 where CMemoryKernels_write_nontemporal streams, 0 where it is not available.
int CMemoryKernels_has_nontemporal(void);

/// What a load generator does to each line.
typedef enum CMemoryKernels_load_kind {
    CMemoryKernels_load_read = 0,
    CMemoryKernels_load_write = 1,
    CMemoryKernels_load_copy = 2,
} CMemoryKernels_load_kind;

/// A load generator's walk: over `bytes` of `a` (and of `b` for a copy), one 64-byte line at a
/// time, reads, writes or copies b to a a line, as `kind` says, then waits `delay` turns of an
/// empty loop (about a cycle each) before the next line. With a delay, after each line it
/// adds the bytes moved (64 a line, 128 for a copy) to `*moved`, which only this thread writes
/// and others may read (CMemoryKernels_counter_load), and it looks at `*state` after every
/// 1024 turns of the delay; without one, it does both after every 4 KiB. It stops once
/// `*state` no longer holds `expected`, so that a change of state is seen on time whatever
/// the delay. Returns the bytes of `a` walked; `*sum` takes a value that
/// depends on the memory.
size_t CMemoryKernels_load_lines(CMemoryKernels_load_kind kind, void *a, const void *b, size_t bytes, uint64_t delay,
                                 uint64_t *moved, const int64_t *state, int64_t expected, uint64_t *sum);

/// Reads a counter that CMemoryKernels_load_lines adds to from another thread (relaxed).
static inline uint64_t CMemoryKernels_counter_load(const uint64_t *counter) {
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}
/// Reads the state that CMemoryKernels_load_lines watches (relaxed).
static inline int64_t CMemoryKernels_state_load(const int64_t *state) {
    return __atomic_load_n(state, __ATOMIC_RELAXED);
}
/// Sets the state that CMemoryKernels_load_lines watches (relaxed).
static inline void CMemoryKernels_state_store(int64_t *state, int64_t value) {
    __atomic_store_n(state, value, __ATOMIC_RELAXED);
}

/// Follows `count` pointers from `p` and returns where it stopped (the cache-to-cache chase).
const void *CMemoryKernels_chase(const void *p, size_t count);
/// Evicts every line of `[a, a + bytes)` from every cache (clflush), then fences.
/// Returns 0 where the target has no such instruction.
int CMemoryKernels_flush(const void *a, size_t bytes);
/// Reads one word of every 64-byte line of `[a, a + bytes)`, leaving the lines clean.
uint64_t CMemoryKernels_touch_lines(const void *a, size_t bytes);
/// Loads and stores back one word of every line, leaving the lines modified.
void CMemoryKernels_dirty_lines(void *a, size_t bytes);

#endif
