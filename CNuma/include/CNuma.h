// CNuma: the C shim under the NUMA module.
//
// It wraps only what Swift cannot call directly: libnuma's weak error hooks, getcpu(2),
// sched_{get,set}affinity(2) over plain word masks (cpu_set_t is reached through macros), and
// hwloc's topology lifecycle and inline iterators, and the thread-local anchor of the pools'
// per-thread caches (Swift has no thread-local variables). libnuma's own functions (mbind,
// set_mempolicy, get_mempolicy, move_pages, numa_*) are called from Swift directly through the
// CLibNuma system module. Every symbol here is prefixed CNuma_.
// Functions that fail return -1 and leave the reason in errno, which nothing here overwrites.
#ifndef CNUMA_H
#define CNUMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// getcpu(2): the CPU and node the calling thread runs on now. Returns 0 or -1 with errno.
int CNuma_getcpu(unsigned int *cpu, unsigned int *node);

/// sched_getcpu(3).
int CNuma_sched_getcpu(void);

/// The cpu_id field of the calling thread's rseq area (struct rseq, kept current by the
/// kernel; glibc 2.35 registers it and exports __rseq_offset), or -1 where rseq is not
/// registered or not known at compile time. Inline: glibc's __rseq_size and __rseq_offset,
/// which a loop hoists, and one %fs-relative load. Like any getcpu, the answer may be stale by
/// the time it is used.
static inline int CNuma_rseq_cpu(void) {
#if defined(__x86_64__) && defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
    extern const ptrdiff_t __rseq_offset;
    extern const unsigned int __rseq_size;
    if (__rseq_size > 0) {
        return (int)*(volatile const uint32_t *)((const char *)__builtin_thread_pointer() + __rseq_offset + 4);
    }
#endif
    return -1;
}

/// The CPU the calling thread runs on: CNuma_rseq_cpu(), or sched_getcpu(3) where rseq is not
/// registered.
static inline int CNuma_current_cpu(void) {
    int cpu = CNuma_rseq_cpu();
    return cpu >= 0 ? cpu : CNuma_sched_getcpu();
}

/// The calling thread's table of pool caches: `slots[i]` is the cache of the pool in slot `i`,
/// or NULL. A C thread-local (initial-exec model: one %fs-relative load, no call), so that the
/// pools' fast paths reach their cache without pthread_getspecific(3). The NUMAPool module owns
/// the table's memory and sets it with CNuma_set_thread_caches.
typedef struct CNuma_cache_table {
    void **slots;
    intptr_t count;
} CNuma_cache_table;

extern __thread CNuma_cache_table CNuma_thread_caches __attribute__((tls_model("initial-exec")));

/// The calling thread's cache for `slot`, or NULL. Inline.
static inline void *CNuma_thread_cache(intptr_t slot) {
    const CNuma_cache_table *table = &CNuma_thread_caches;
    return (uintptr_t)slot < (uintptr_t)table->count ? table->slots[slot] : NULL;
}

/// Points the calling thread's table at `slots` (`count` entries); NULL and 0 clear it.
void CNuma_set_thread_caches(void **slots, intptr_t count);

/// sched_getaffinity(2) of the calling thread into `words` (64 CPUs per word).
/// Returns 0 or -1 with errno.
int CNuma_getaffinity(uint64_t *words, size_t nwords);

/// sched_setaffinity(2) of the calling thread from `words` (64 CPUs per word).
/// Returns 0 or -1 with errno.
int CNuma_setaffinity(const uint64_t *words, size_t nwords);

/// Whether libnuma lists `node` as configured (a bit of its global `numa_nodes_ptr`, which
/// strict concurrency keeps Swift from reading directly).
int CNuma_node_configured(int node);

/// The last libnuma error or warning text, captured by the numa_error/numa_warn overrides
/// instead of being printed. Empty when there was none.
const char *CNuma_last_diagnostic(void);

// MARK: hwloc

/// An opaque, loaded hwloc topology.
typedef struct CNuma_hwloc CNuma_hwloc;

/// hwloc_topology_init(3) + hwloc_topology_load(3). Returns NULL with errno on failure.
CNuma_hwloc *CNuma_hwloc_open(void);

/// hwloc_topology_destroy(3).
void CNuma_hwloc_close(CNuma_hwloc *topology);

/// The size in bytes of the last-level data or unified cache (the deepest level present,
/// L5 down to L1), and its level in `level`; 0 when hwloc knows no cache.
uint64_t CNuma_hwloc_llc_size(CNuma_hwloc *topology, unsigned int *level);

/// The number of cache objects at the last level (e.g. one L3 per socket or CCX).
int CNuma_hwloc_llc_count(CNuma_hwloc *topology);

/// The number of NUMA nodes hwloc sees (HWLOC_OBJ_NUMANODE).
int CNuma_hwloc_numa_count(CNuma_hwloc *topology);

/// The number of packages (sockets) hwloc sees.
int CNuma_hwloc_package_count(CNuma_hwloc *topology);

#ifdef __cplusplus
}
#endif

#endif
