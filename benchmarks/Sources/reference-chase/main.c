// A plain C pointer chase, the yardstick for membench's fidelity.
//
//   reference-chase SIZE_BYTES STRIDE_BYTES GROUP_BYTES SECONDS LOADS_PER_SAMPLE random|zero SEED
//   reference-chase --chain FILE SECONDS LOADS_PER_SAMPLE
//
// It maps SIZE bytes (rounded down to whole groups) of 4 KiB pages (MADV_NOHUGEPAGE, faulted in
// with MADV_POPULATE_WRITE as membench does), writes the very chain that one thread of
// `membench run --pool direct` writes for the same stride, TLB locality (GROUP), slot offsets
// and seed, walks it untimed for 0.25 s, then times
// batches of dependent loads for SECONDS and prints one CSV line:
// size,stride,group,samples,mean_ns,stddev_ns,layout.
//
// The chain is MembenchKit's, step for step: SplitMix64 with its `next(below:)` (Lemire's bounded
// draw) and `shuffle`, the slot offset table of `SlotLayout` (each slot at a multiple of
// 8 bytes inside its stride, from a table of the stride's positions in random order, as
// multichase's mixer, balanced) and the Sattolo cycles of `Chain.build` (groups in random order,
// slots within a group in random order). At sizes near the last-level cache, which runs stay in
// the cache depends on the slot layout, so the two must walk the same one. `layout` is an
// FNV-1a hash of every slot's offset from the start of the buffer, in walking order, which
// `chain-fingerprint` computes from MembenchKit itself; benchmarks/run checks the two agree.
//
// With --chain, it walks a chain given as FILE instead: each slot's byte offset from the start
// of the buffer, in walking order, as little-endian 64-bit words (benchmarks/run writes
// multichase's own chain so, read from the running multichase). The buffer is the smallest
// whole number of pages that holds every slot; size, stride and group print as the buffer's
// size and 0.
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef struct { uint64_t state; } splitmix64;

static uint64_t next_random(splitmix64 *g) {
    g->state += 0x9E3779B97F4A7C15ull;
    uint64_t z = g->state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// SplitMix64.next(below:): a draw in [0, bound), Lemire's nearly divisionless method.
static uint64_t next_below(splitmix64 *g, uint64_t bound) {
    unsigned __int128 m = (unsigned __int128)next_random(g) * bound;
    if ((uint64_t)m < bound) {
        uint64_t t = (0 - bound) % bound;
        while ((uint64_t)m < t) m = (unsigned __int128)next_random(g) * bound;
    }
    return (uint64_t)(m >> 64);
}

// SplitMix64.shuffle: from the front, each position swapped with a later one (or itself).
static void shuffle(size_t *items, size_t n, splitmix64 *g) {
    for (size_t i = 0, amount = n; amount > 1; i++) {
        size_t j = i + next_below(g, amount);
        amount--;
        size_t t = items[i];
        items[i] = items[j];
        items[j] = t;
    }
}

// Chain.sattoloOrder: one random n-cycle, walked from item 0 into a visiting order.
static void sattolo_order(uint32_t *order, uint32_t *next, size_t n, splitmix64 *g) {
    for (size_t i = 0; i < n; i++) next[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = next_below(g, i);
        uint32_t t = next[i];
        next[i] = next[j];
        next[j] = t;
    }
    uint32_t item = 0;
    for (size_t k = 0; k < n; k++) {
        order[k] = item;
        item = next[item];
    }
}

// A whole decimal number, all of `text`.
static int whole64(const char *text, uint64_t *value) {
    char *end;
    if (*text < '0' || *text > '9') return 0;
    *value = strtoull(text, &end, 10);
    return *end == 0;
}

static int whole(const char *text, size_t *value) {
    uint64_t v;
    if (!whole64(text, &v)) return 0;
    *value = (size_t)v;
    return 1;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void *__attribute__((noinline)) walk(void *p, size_t loads) {
    void **q = (void **)p;
    for (size_t i = 0; i < loads; i += 8) {
        q = (void **)*q; q = (void **)*q; q = (void **)*q; q = (void **)*q;
        q = (void **)*q; q = (void **)*q; q = (void **)*q; q = (void **)*q;
    }
    return q;
}

// Maps `bytes` of 4 KiB pages (MADV_NOHUGEPAGE), faulted in with MADV_POPULATE_WRITE as
// membench does.
static char *map_buffer(size_t bytes) {
    char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) { perror("mmap"); exit(1); }
    madvise(base, bytes, MADV_NOHUGEPAGE);
    if (madvise(base, bytes, MADV_POPULATE_WRITE)) memset(base, 0, bytes);
    return base;
}

// Links the slots at `offsets` (bytes from `base`, in walking order) into one cycle.
static void **link_offsets(char *base, const uint64_t *offsets, size_t n) {
    for (size_t i = 0; i < n; i++) *(void **)(base + offsets[i]) = base + offsets[(i + 1) % n];
    return (void **)(base + offsets[0]);
}

// Reads a chain file (see the top): its offsets, each checked to be a word of a buffer of at
// most 1 TiB, and in *bytes the buffer size they need. That they form one cycle is checked
// once they are linked.
static uint64_t *read_chain(const char *path, size_t *n, size_t *bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    if (fseek(f, 0, SEEK_END) || ftell(f) <= 0 || ftell(f) % 8) {
        fprintf(stderr, "reference-chase: %s is not a list of 64-bit offsets\n", path);
        exit(1);
    }
    *n = (size_t)ftell(f) / 8;
    rewind(f);
    uint64_t *offsets = malloc(*n * sizeof *offsets), highest = 0;
    if (!offsets || fread(offsets, 8, *n, f) != *n) { fprintf(stderr, "reference-chase: cannot read %s\n", path); exit(1); }
    fclose(f);
    for (size_t i = 0; i < *n; i++) {
        if (offsets[i] % 8 || offsets[i] > (1ull << 40)) {
            fprintf(stderr, "reference-chase: %s: offset %llu is not a word of a buffer\n", path, (unsigned long long)offsets[i]);
            exit(1);
        }
        if (offsets[i] > highest) highest = offsets[i];
    }
    *bytes = (size_t)((highest + 8 + 4095) & ~4095ull);
    return offsets;
}

int main(int argc, char **argv) {
    char *base;
    void **first;
    size_t slots, size, stride, group, loads = 1024;
    double seconds;
    char *end;
    if (argc == 5 && strcmp(argv[1], "--chain") == 0) {
        seconds = strtod(argv[3], &end);
        if (*end || !(seconds > 0 && seconds < 1e6) || !whole(argv[4], &loads) || loads < 8 || loads % 8) {
            fprintf(stderr, "reference-chase: bad arguments\n");
            return 64;
        }
        uint64_t *offsets = read_chain(argv[2], &slots, &size);
        base = map_buffer(size);
        first = link_offsets(base, offsets, slots);
        // Every slot once before the walk comes back, or the file is not one cycle.
        void **slot = first;
        for (size_t i = 1; i < slots; i++) {
            slot = (void **)*slot;
            if (slot == first) { fprintf(stderr, "reference-chase: %s repeats a slot\n", argv[2]); return 1; }
        }
        if ((void **)*slot != first) { fprintf(stderr, "reference-chase: %s is not one cycle\n", argv[2]); return 1; }
        free(offsets);
        stride = group = 0;
    } else {
        if (argc != 8) {
            fprintf(stderr, "usage: reference-chase SIZE STRIDE GROUP SECONDS LOADS_PER_SAMPLE random|zero SEED\n");
            return 64;
        }
        uint64_t seed = 0;
        seconds = strtod(argv[4], &end);
        int ok = whole(argv[1], &size) && whole(argv[2], &stride) && whole(argv[3], &group) && *end == 0
                 && whole(argv[5], &loads) && whole64(argv[7], &seed);
        int zero_offsets = strcmp(argv[6], "zero") == 0;
        if (!zero_offsets && strcmp(argv[6], "random") != 0) {
            fprintf(stderr, "reference-chase: offsets are random or zero\n");
            return 64;
        }
        // What membench accepts: a stride of whole words up to 1 MiB, groups of whole strides.
        if (!ok || stride < sizeof(void *) || stride % sizeof(void *) || stride > (1u << 20) || group < stride
            || group % stride || size < group || loads < 8 || loads % 8 || !(seconds > 0 && seconds < 1e6)) {
            fprintf(stderr, "reference-chase: bad arguments\n");
            return 64;
        }
        size_t groups = size / group, per_group = group / stride;
        base = map_buffer(groups * group);

        // SlotLayout(stride:offsets:.random, thread: 0, threads: 1, seed:): a table of `count`
        // entries (a power of two, at least 64), the stride's positions shuffled, then the entries.
        size_t positions = stride / sizeof(void *), count = 64;
        while (count < (positions < 4096 ? positions : 4096)) count <<= 1;
        size_t *offsets = calloc(count, sizeof *offsets);
        if (!zero_offsets && positions > 1) {
            splitmix64 table_random = { seed ^ 0x6D69786572ull };
            size_t *order = malloc(positions * sizeof *order), *classes = malloc(count * sizeof *classes);
            for (size_t i = 0; i < positions; i++) order[i] = i;
            shuffle(order, positions, &table_random);
            for (size_t i = 0; i < count; i++) classes[i] = i;
            shuffle(classes, count, &table_random);
            for (size_t i = 0; i < count; i++) offsets[i] = order[classes[i] % positions] * sizeof(void *);
            free(order);
            free(classes);
        } else {
            count = 1;
        }

        // Chain.build(pattern: .chase, seed:): groups in a Sattolo order (none drawn for one group),
        // then each group's slots in a Sattolo order of their own.
        splitmix64 chain_random = { seed };
        uint32_t *group_order = malloc(groups * sizeof *group_order), *group_next = malloc(groups * sizeof *group_next);
        uint32_t *slot_order = malloc(per_group * sizeof *slot_order), *slot_next = malloc(per_group * sizeof *slot_next);
        if (groups > 1) sattolo_order(group_order, group_next, groups, &chain_random); else group_order[0] = 0;
        void **previous = NULL;
        first = NULL;
        for (size_t gi = 0; gi < groups; gi++) {
            size_t g = group_order[gi];
            sattolo_order(slot_order, slot_next, per_group, &chain_random);
            for (size_t s = 0; s < per_group; s++) {
                size_t k = slot_order[s], x = g * per_group + k;
                void **slot = (void **)(base + g * group + k * stride + offsets[x & (count - 1)]);
                if (previous) *previous = slot; else first = slot;
                previous = slot;
            }
        }
        *previous = first;
        slots = groups * per_group;
        size = groups * group;
    }

    // The layout's fingerprint: FNV-1a over each slot's offset from the base, in walking order.
    uint64_t layout = 0xcbf29ce484222325ull;
    void **slot = first;
    for (size_t i = 0; i < slots; i++) {
        uint64_t offset = (uint64_t)((char *)slot - base);
        for (int b = 0; b < 8; b++) {
            layout ^= (offset >> (8 * b)) & 0xff;
            layout *= 0x100000001b3ull;
        }
        slot = (void **)*slot;
    }

    void *p = first;
    uint64_t warm = now_ns() + 250000000ull;
    while (now_ns() < warm) p = walk(p, loads);

    double mean = 0, m2 = 0;
    size_t n = 0;
    uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9);
    for (uint64_t t1 = 0; t1 < deadline;) {
        uint64_t t0 = now_ns();
        p = walk(p, loads);
        t1 = now_ns();
        double x = (double)(t1 - t0) / (double)loads;
        n++;
        double d = x - mean;
        mean += d / (double)n;
        m2 += d * (x - mean);
    }
    printf("%zu,%zu,%zu,%zu,%.4f,%.4f,%016llx\n", size, stride, group, n, mean, n > 1 ? sqrt(m2 / (double)(n - 1)) : 0.0,
           (unsigned long long)layout);
    return p == NULL;  // keeps the walk live
}
