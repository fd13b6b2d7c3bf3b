#ifdef __linux__
#include "CNuma.h"

#include <errno.h>
#include <hwloc.h>
#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(sizeof(cpu_set_t) % sizeof(uint64_t) == 0, "cpu_set_t is a whole number of words");

static __thread char last_diagnostic[256];

static void capture(const char *fmt, va_list ap) {
    int saved = errno;
    vsnprintf(last_diagnostic, sizeof last_diagnostic, fmt, ap);
    errno = saved;
}

// libnuma declares these weak; these definitions keep it from printing or exiting.
void numa_error(char *where) {
    int saved = errno;
    snprintf(last_diagnostic, sizeof last_diagnostic, "%s: %s", where, strerror(saved));
    errno = saved;
}

void numa_warn(int number, char *where, ...) {
    (void)number;
    va_list ap;
    va_start(ap, where);
    capture(where, ap);
    va_end(ap);
}

const char *CNuma_last_diagnostic(void) { return last_diagnostic; }

int CNuma_node_configured(int node) {
    return numa_bitmask_isbitset(numa_nodes_ptr, (unsigned int)node);
}

int CNuma_getcpu(unsigned int *cpu, unsigned int *node) { return getcpu(cpu, node); }

int CNuma_getrusage_thread(struct rusage *usage) { return getrusage(RUSAGE_THREAD, usage); }

int CNuma_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

int CNuma_map_file_fixed(void *address, size_t length, int fd, long offset) {
    void *mapped = mmap(address, length, PROT_READ, MAP_SHARED | MAP_FIXED, fd, offset);
    return mapped == MAP_FAILED ? errno : 0;
}

int CNuma_map_anonymous_fixed(void *address, size_t length) {
    void *mapped = mmap(address, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    return mapped == MAP_FAILED ? errno : 0;
}

int CNuma_getaffinity(uint64_t *words, size_t nwords) {
    memset(words, 0, nwords * sizeof(uint64_t));
    return sched_getaffinity(0, nwords * sizeof(uint64_t), (cpu_set_t *)words);
}

int CNuma_setaffinity(const uint64_t *words, size_t nwords) {
    return sched_setaffinity(0, nwords * sizeof(uint64_t), (const cpu_set_t *)words);
}

// MARK: hwloc

struct CNuma_hwloc {
    hwloc_topology_t topology;
};

CNuma_hwloc *CNuma_hwloc_open(void) {
    CNuma_hwloc *handle = malloc(sizeof *handle);
    if (handle == NULL) return NULL;
    if (hwloc_topology_init(&handle->topology) != 0) {
        int saved = errno;
        free(handle);
        errno = saved;
        return NULL;
    }
    if (hwloc_topology_load(handle->topology) != 0) {
        int saved = errno;
        hwloc_topology_destroy(handle->topology);
        free(handle);
        errno = saved;
        return NULL;
    }
    return handle;
}

void CNuma_hwloc_close(CNuma_hwloc *handle) {
    if (handle == NULL) return;
    hwloc_topology_destroy(handle->topology);
    free(handle);
}

static const hwloc_obj_type_t cache_levels[] = {
    HWLOC_OBJ_L5CACHE, HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L1CACHE,
};

static hwloc_obj_type_t last_level(CNuma_hwloc *handle, int *found) {
    for (size_t i = 0; i < sizeof cache_levels / sizeof cache_levels[0]; i++) {
        if (hwloc_get_nbobjs_by_type(handle->topology, cache_levels[i]) > 0) {
            *found = 1;
            return cache_levels[i];
        }
    }
    *found = 0;
    return HWLOC_OBJ_L1CACHE;
}

uint64_t CNuma_hwloc_llc_size(CNuma_hwloc *handle, unsigned int *level) {
    int found;
    hwloc_obj_type_t type = last_level(handle, &found);
    if (!found) {
        if (level) *level = 0;
        return 0;
    }
    hwloc_obj_t obj = hwloc_get_next_obj_by_type(handle->topology, type, NULL);
    if (obj == NULL || obj->attr == NULL) return 0;
    if (level) *level = obj->attr->cache.depth;
    return obj->attr->cache.size;
}

int CNuma_hwloc_llc_count(CNuma_hwloc *handle) {
    int found;
    hwloc_obj_type_t type = last_level(handle, &found);
    return found ? hwloc_get_nbobjs_by_type(handle->topology, type) : 0;
}

int CNuma_hwloc_numa_count(CNuma_hwloc *handle) {
    return hwloc_get_nbobjs_by_type(handle->topology, HWLOC_OBJ_NUMANODE);
}

int CNuma_hwloc_package_count(CNuma_hwloc *handle) {
    return hwloc_get_nbobjs_by_type(handle->topology, HWLOC_OBJ_PACKAGE);
}
static hwloc_obj_t numa_node(CNuma_hwloc *handle, int node) {
    hwloc_obj_t obj = NULL;
    while ((obj = hwloc_get_next_obj_by_type(handle->topology, HWLOC_OBJ_NUMANODE, obj)) != NULL) {
        if ((int)obj->os_index == node) return obj;
    }
    return NULL;
}

int CNuma_hwloc_numa_max_index(CNuma_hwloc *handle) {
    int most = -1;
    hwloc_obj_t obj = NULL;
    while ((obj = hwloc_get_next_obj_by_type(handle->topology, HWLOC_OBJ_NUMANODE, obj)) != NULL) {
        if ((int)obj->os_index > most) most = (int)obj->os_index;
    }
    return most;
}

int CNuma_hwloc_memattr_initiators(CNuma_hwloc *handle, int attribute, int node, char *lists,
                                   size_t list_size, uint64_t *values, int max) {
    hwloc_obj_t target = numa_node(handle, node);
    if (target == NULL) return 0;
    unsigned count = 0;
    // A first call with no room asks how many there are.
    if (hwloc_memattr_get_initiators(handle->topology, (hwloc_memattr_id_t)attribute, target, 0, &count, NULL, NULL) != 0) {
        return errno == EINVAL ? 0 : -1;
    }
    if (count == 0) return 0;
    struct hwloc_location *initiators = calloc(count, sizeof *initiators);
    hwloc_uint64_t *found = calloc(count, sizeof *found);
    if (initiators == NULL || found == NULL) {
        free(initiators);
        free(found);
        errno = ENOMEM;
        return -1;
    }
    unsigned n = count;
    int result = -1;
    if (hwloc_memattr_get_initiators(handle->topology, (hwloc_memattr_id_t)attribute, target, 0, &n, initiators, found) == 0) {
        result = 0;
        for (unsigned i = 0; i < n && result < max; i++) {
            if (initiators[i].type != HWLOC_LOCATION_TYPE_CPUSET) continue;
            // A list that does not fit is left out rather than cut to a wrong CPU set.
            int length = hwloc_bitmap_list_snprintf(lists + (size_t)result * list_size, list_size, initiators[i].location.cpuset);
            if (length < 0 || (size_t)length >= list_size) continue;
            values[result++] = found[i];
        }
    }
    free(initiators);
    free(found);
    return result;
}

#endif
