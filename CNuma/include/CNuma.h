// CNuma: the C shim under the NUMA module.
//
// It wraps only what Swift cannot call directly: libnuma's weak error hooks, getcpu(2),
// sched_{get,set}affinity(2) over plain word masks (cpu_set_t is reached through macros), and
// hwloc's topology lifecycle and inline iterators, and the thread-local anchor of the pools'
// per-thread caches (Swift has no thread-local variables). libnuma's own functions (mbind,
// set_mempolicy, get_mempolicy, move_pages, numa_*) are called from Swift directly through the
// CLibNuma system module. Every symbol here is prefixed CNuma_.
// Each function says what it returns. Where a failure is -1, errno holds the reason; nothing
// here overwrites errno otherwise.
#ifndef CNUMA_H
#define CNUMA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include "CNumaThreads.h"

#ifdef __cplusplus
extern "C" {
#endif

/// getcpu(3): the CPU and node the calling thread runs on now (through the vDSO, no system
/// call, where the kernel offers one). Like any such answer it may be stale by the time it is
/// used. Returns 0 or -1 with errno.
int CNuma_getcpu(unsigned int *cpu, unsigned int *node);

/// sched_getaffinity(2) of the calling thread into `words` (64 CPUs per word).
/// Returns 0 or -1 with errno.
int CNuma_getaffinity(uint64_t *words, size_t nwords);

/// sched_setaffinity(2) of the calling thread from `words` (64 CPUs per word).
/// Returns 0 or -1 with errno.
int CNuma_setaffinity(const uint64_t *words, size_t nwords);

/// getrusage(2) with RUSAGE_THREAD (Linux, declared only under _GNU_SOURCE): the calling
/// thread's own usage. Returns 0 or -1 with errno.
int CNuma_getrusage_thread(struct rusage *usage);

/// memfd_create(2) with MFD_CLOEXEC: an anonymous file, for pages the heap maps in place of
/// memory it gave back. Returns the descriptor, or -1 with errno set.
int CNuma_memfd(const char *name);

/// mmap(2) of `length` bytes of `fd` from `offset`, read-only and shared, over
/// `[address, address + length)` (MAP_FIXED). Returns 0 or an errno value.
int CNuma_map_file_fixed(void *address, size_t length, int fd, long offset);

/// mmap(2) of fresh anonymous memory, readable and writable, private, over
/// `[address, address + length)` (MAP_FIXED). Returns 0 or an errno value.
int CNuma_map_anonymous_fixed(void *address, size_t length);

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

/// hwloc_memattr_get_initiators(3): the initiators hwloc knows for memory attribute
/// `attribute` (an HWLOC_MEMATTR_ID_* that has initiators: bandwidth and latency, and their
/// read and write forms) of the NUMA node with OS index `node`. Up to `max` of them,
/// each as a CPU list ("0-3") in `lists`, `list_size` bytes apiece, and its value in `values`;
/// an initiator whose list does not fit in `list_size` bytes is left out. Returns how many were
/// copied (0 when hwloc has none), or -1 with errno.
int CNuma_hwloc_memattr_initiators(CNuma_hwloc *topology, int attribute, int node, char *lists,
                                   size_t list_size, uint64_t *values, int max);

/// The largest OS index of a NUMA node hwloc sees, or -1 when it sees none.
int CNuma_hwloc_numa_max_index(CNuma_hwloc *topology);

#ifdef __cplusplus
}
#endif

#endif
