// Plain C loops of membench bandwidth's kernels, the yardstick for its fidelity.
//
//   reference-bandwidth KERNEL SIZE_BYTES CPU[,CPU...] SECONDS
//
// KERNEL is read, copy, triad, write or nt-write. One thread per CPU, pinned, each with its own
// SIZE bytes (4 KiB pages, MADV_NOHUGEPAGE) split into the kernel's arrays as membench lays them
// out (BandwidthKernel.layout: whole 256-byte blocks, array i at i * (length + 8 KiB)), first
// touched by its thread. Every thread makes one untimed pass, then all start
// together and make passes for SECONDS; it prints the total bytes read and written per second
// over all threads: kernel,size,threads,bytes_per_s. The loops are plain C at -O2; the compiler
// picks the instructions (nt-write alone uses an intrinsic, there being no plain C for it, and
// read an empty asm that takes each loaded vector, there being no plain C for a load whose value
// nothing uses).
#define _GNU_SOURCE
#include <emmintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static int kernel;  // 0 read, 1 copy, 2 triad, 3 write, 4 nt-write
static size_t size;
static double seconds;
static atomic_int waiting;
static volatile uint64_t sink;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint64_t pass(char *base, size_t length, size_t step) {
    uint64_t *a = (uint64_t *)base, *b = (uint64_t *)(base + step);
    double *x = (double *)base, *y = (double *)(base + step), *z = (double *)(base + 2 * step);
    size_t n = length / 8;
    switch (kernel) {
    case 0: {
        // Loads that nothing waits on, as membench's read: 16-byte vectors through the compiler's
        // vector extension, a line's four handed to an empty asm so that the loads must happen
        // (one vector a turn spent three loop instructions on every load).
        typedef long long v2 __attribute__((vector_size(16)));
        const v2 *v = (const v2 *)base;
        for (size_t i = 0; i < length / 16; i += 4) __asm__ volatile("" : : "x"(v[i]), "x"(v[i + 1]), "x"(v[i + 2]), "x"(v[i + 3]));
        return a[n - 1];
    }
    case 1: for (size_t i = 0; i < n; i++) a[i] = b[i]; return a[n - 1];
    case 2: for (size_t i = 0; i < n; i++) x[i] = y[i] + 3.0 * z[i]; return (uint64_t)x[n - 1];
    case 3: for (size_t i = 0; i < n; i++) a[i] = length; return a[0];
    default:
        for (size_t i = 0; i < length / 16; i++) _mm_stream_si128((__m128i *)base + i, _mm_set1_epi64x((long long)length));
        _mm_sfence();
        return a[0];
    }
}

struct worker { int cpu; double bytes_per_s; };

static void *run(void *argument) {
    struct worker *w = argument;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); exit(1); }
    static const int arrays[] = {1, 2, 3, 1, 1};
    const size_t gap = 8192;  // BandwidthKernel.arrayGap
    size_t length = (size - (arrays[kernel] - 1) * gap) / arrays[kernel] / 256 * 256, step = length + gap;
    char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) { perror("mmap"); exit(1); }
    madvise(base, size, MADV_NOHUGEPAGE);
    memset(base, 1, size);
    uint64_t keep = pass(base, length, step);
    atomic_fetch_sub(&waiting, 1);
    while (atomic_load(&waiting) > 0) sched_yield();
    uint64_t began = now_ns(), deadline = began + (uint64_t)(seconds * 1e9), t = began;
    size_t passes = 0;
    while (t < deadline) {
        keep += pass(base, length, step);
        passes++;
        t = now_ns();
    }
    sink += keep;
    w->bytes_per_s = (double)(length * arrays[kernel]) * (double)passes / ((double)(t - began) / 1e9);
    munmap(base, size);
    return NULL;
}

int main(int argc, char **argv) {
    static const char *names[] = {"read", "copy", "triad", "write", "nt-write"};
    if (argc != 5) {
        fprintf(stderr, "usage: reference-bandwidth KERNEL SIZE CPU[,CPU...] SECONDS\n");
        return 64;
    }
    kernel = -1;
    for (int k = 0; k < 5; k++) if (strcmp(argv[1], names[k]) == 0) kernel = k;
    size = strtoull(argv[2], NULL, 10);
    seconds = atof(argv[4]);
    struct worker workers[256];
    int count = 0;
    for (char *cpu = strtok(argv[3], ","); cpu && count < 256; cpu = strtok(NULL, ",")) workers[count++].cpu = atoi(cpu);
    if (kernel < 0 || size < 768 + 2 * 8192 || count == 0 || seconds <= 0) {
        fprintf(stderr, "reference-bandwidth: bad arguments\n");
        return 64;
    }
    atomic_store(&waiting, count);
    pthread_t threads[256];
    for (int i = 0; i < count; i++) pthread_create(&threads[i], NULL, run, &workers[i]);
    double total = 0;
    for (int i = 0; i < count; i++) {
        pthread_join(threads[i], NULL);
        total += workers[i].bytes_per_s;
    }
    printf("%s,%zu,%d,%.0f\n", names[kernel], size, count, total);
    return 0;
}
