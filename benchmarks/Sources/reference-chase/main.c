// A plain C pointer chase, the yardstick for membench's fidelity.
//
//   reference-chase SIZE_BYTES STRIDE_BYTES GROUP_BYTES SECONDS [LOADS_PER_SAMPLE [random|zero]]
//
// It maps SIZE bytes of 4 KiB pages (MADV_NOHUGEPAGE), links one slot every STRIDE bytes into a
// random cycle (groups of GROUP bytes in random order, slots shuffled within each group), walks
// it untimed for 0.25 s, then times batches of dependent loads for SECONDS and prints one CSV
// line: size,stride,group,samples,mean_ns,stddev_ns.
//
// Each slot sits at a multiple of 8 bytes inside its stride: slot x (numbered in address order)
// takes entry x mod 64 of a table of 64 offsets, each drawn from a random permutation of the
// stride's positions, as multichase lays out one thread's chase; "zero" puts every slot at
// offset 0.
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t state = 0x1234567;
static uint64_t next_random(void) {
    state += 0x9E3779B97F4A7C15ull;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void shuffle(size_t *items, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = next_random() % i;
        size_t t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
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

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: reference-chase SIZE STRIDE GROUP SECONDS [LOADS_PER_SAMPLE]\n");
        return 64;
    }
    size_t size = strtoull(argv[1], NULL, 10), stride = strtoull(argv[2], NULL, 10);
    size_t group = strtoull(argv[3], NULL, 10);
    double seconds = atof(argv[4]);
    size_t loads = argc > 5 ? strtoull(argv[5], NULL, 10) : 1024;
    int zero_offsets = argc > 6 && strcmp(argv[6], "zero") == 0;
    if (argc > 6 && !zero_offsets && strcmp(argv[6], "random") != 0) {
        fprintf(stderr, "reference-chase: offsets are random or zero\n");
        return 64;
    }
    if (stride < sizeof(void *) || group < stride || size < group || loads % 8 || seconds <= 0) {
        fprintf(stderr, "reference-chase: bad arguments\n");
        return 64;
    }
    size_t groups = size / group, per_group = group / stride;
    char *base = mmap(NULL, groups * group, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) { perror("mmap"); return 1; }
    madvise(base, groups * group, MADV_NOHUGEPAGE);
    memset(base, 0, groups * group);

    // The offset table: entry k is element 0 of its own random permutation of the positions.
    size_t positions = stride / sizeof(void *), offsets[64];
    size_t *permutation = malloc(positions * sizeof *permutation);
    for (size_t k = 0; k < 64; k++) {
        for (size_t i = 0; i < positions; i++) permutation[i] = i;
        shuffle(permutation, positions);
        offsets[k] = zero_offsets ? 0 : permutation[0] * sizeof(void *);
    }
    free(permutation);

    size_t *group_order = malloc(groups * sizeof *group_order);
    size_t *slot_order = malloc(per_group * sizeof *slot_order);
    for (size_t g = 0; g < groups; g++) group_order[g] = g;
    shuffle(group_order, groups);
    void **first = NULL, **previous = NULL;
    for (size_t g = 0; g < groups; g++) {
        for (size_t s = 0; s < per_group; s++) slot_order[s] = s;
        shuffle(slot_order, per_group);
        for (size_t s = 0; s < per_group; s++) {
            size_t x = group_order[g] * per_group + slot_order[s];
            void **slot = (void **)(base + group_order[g] * group + slot_order[s] * stride + offsets[x % 64]);
            if (previous) *previous = slot; else first = slot;
            previous = slot;
        }
    }
    *previous = first;

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
    printf("%zu,%zu,%zu,%zu,%.4f,%.4f\n", groups * group, stride, group, n, mean, n > 1 ? sqrt(m2 / (double)(n - 1)) : 0.0);
    return p == NULL;  // keeps the walk live
}
