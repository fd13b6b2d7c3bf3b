// The hot loops of membench bandwidth and c2c. On x86-64 they are written with SSE2
// intrinsics, so that the instructions are fixed (aligned 16-byte loads and stores,
// mulpd/addpd, movntdq), not whatever the optimiser picks: a plain copy loop may become a
// memcpy call, and a loop whose result is unused may vanish. Elsewhere they are plain C loops
// over volatile-free 64-bit words with the same results (read's loads go to an empty asm).
#include "CMemoryKernels.h"

#if defined(__x86_64__)
#include <emmintrin.h>

uint64_t CMemoryKernels_read(const void *a, size_t bytes) {
    const __m128i *p = (const __m128i *)a;
    __m128i x0 = _mm_setzero_si128(), x1 = x0, x2 = x0, x3 = x0;
    for (size_t i = 0; i < bytes / 16; i += 4) {
        x0 = _mm_load_si128(p + i);
        x1 = _mm_load_si128(p + i + 1);
        x2 = _mm_load_si128(p + i + 2);
        x3 = _mm_load_si128(p + i + 3);
        // The loads must happen, and nothing waits on them: an add per load holds a place in the
        // core's window until its line arrives, which cut a core's read bandwidth by a fifth.
        __asm__ volatile("" : : "x"(x0), "x"(x1), "x"(x2), "x"(x3));
    }
    __m128i s = _mm_add_epi64(_mm_add_epi64(x0, x1), _mm_add_epi64(x2, x3));
    return (uint64_t)_mm_cvtsi128_si64(s) + (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s));
}

uint64_t CMemoryKernels_copy(void *a, const void *b, size_t bytes) {
    __m128i *d = (__m128i *)a;
    const __m128i *s = (const __m128i *)b;
    for (size_t i = 0; i < bytes / 16; i += 4) {
        __m128i x0 = _mm_load_si128(s + i), x1 = _mm_load_si128(s + i + 1);
        __m128i x2 = _mm_load_si128(s + i + 2), x3 = _mm_load_si128(s + i + 3);
        _mm_store_si128(d + i, x0);
        _mm_store_si128(d + i + 1, x1);
        _mm_store_si128(d + i + 2, x2);
        _mm_store_si128(d + i + 3, x3);
    }
    return (uint64_t)_mm_cvtsi128_si64(_mm_load_si128(d + bytes / 16 - 1));
}

uint64_t CMemoryKernels_triad(void *a, const void *b, const void *c, size_t bytes) {
    double *x = (double *)a;
    const double *y = (const double *)b, *z = (const double *)c;
    const __m128d scalar = _mm_set1_pd(3.0);
    for (size_t i = 0; i < bytes / 8; i += 4) {
        __m128d r0 = _mm_add_pd(_mm_load_pd(y + i), _mm_mul_pd(scalar, _mm_load_pd(z + i)));
        __m128d r1 = _mm_add_pd(_mm_load_pd(y + i + 2), _mm_mul_pd(scalar, _mm_load_pd(z + i + 2)));
        _mm_store_pd(x + i, r0);
        _mm_store_pd(x + i + 2, r1);
    }
    uint64_t last;
    __builtin_memcpy(&last, x + bytes / 8 - 1, sizeof last);
    return last;
}

uint64_t CMemoryKernels_write(void *a, size_t bytes, uint64_t value) {
    __m128i *d = (__m128i *)a;
    const __m128i v = _mm_set1_epi64x((long long)value);
    for (size_t i = 0; i < bytes / 16; i += 4) {
        _mm_store_si128(d + i, v);
        _mm_store_si128(d + i + 1, v);
        _mm_store_si128(d + i + 2, v);
        _mm_store_si128(d + i + 3, v);
    }
    return (uint64_t)_mm_cvtsi128_si64(_mm_load_si128(d));
}

uint64_t CMemoryKernels_write_nontemporal(void *a, size_t bytes, uint64_t value) {
    __m128i *d = (__m128i *)a;
    const __m128i v = _mm_set1_epi64x((long long)value);
    for (size_t i = 0; i < bytes / 16; i += 4) {
        _mm_stream_si128(d + i, v);
        _mm_stream_si128(d + i + 1, v);
        _mm_stream_si128(d + i + 2, v);
        _mm_stream_si128(d + i + 3, v);
    }
    _mm_sfence();
    return (uint64_t)_mm_cvtsi128_si64(_mm_load_si128(d));
}

int CMemoryKernels_has_nontemporal(void) { return 1; }

int CMemoryKernels_flush(const void *a, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64) _mm_clflush((const char *)a + i);
    _mm_mfence();
    return 1;
}

#else

uint64_t CMemoryKernels_read(const void *a, size_t bytes) {
    const uint64_t *p = (const uint64_t *)a;
    uint64_t x0 = 0, x1 = 0;
    for (size_t i = 0; i < bytes / 8; i += 2) {
        x0 = p[i];
        x1 = p[i + 1];
        __asm__ volatile("" : : "r"(x0), "r"(x1));
    }
    uint64_t s = 0;
    for (size_t i = bytes >= 64 ? bytes / 8 - 8 : 0; i < bytes / 8; i++) s += p[i];
    return s;
}

uint64_t CMemoryKernels_copy(void *a, const void *b, size_t bytes) {
    uint64_t *d = (uint64_t *)a;
    const uint64_t *s = (const uint64_t *)b;
    for (size_t i = 0; i < bytes / 8; i++) {
        __asm__ volatile("" ::: "memory");  // keeps the loop a loop, not a memcpy call
        d[i] = s[i];
    }
    return d[bytes / 8 - 1];
}

uint64_t CMemoryKernels_triad(void *a, const void *b, const void *c, size_t bytes) {
    double *x = (double *)a;
    const double *y = (const double *)b, *z = (const double *)c;
    for (size_t i = 0; i < bytes / 8; i++) x[i] = y[i] + 3.0 * z[i];
    uint64_t last;
    __builtin_memcpy(&last, x + bytes / 8 - 1, sizeof last);
    return last;
}

uint64_t CMemoryKernels_write(void *a, size_t bytes, uint64_t value) {
    uint64_t *d = (uint64_t *)a;
    for (size_t i = 0; i < bytes / 8; i++) {
        __asm__ volatile("" ::: "memory");  // keeps the loop a loop, not a memset call
        d[i] = value;
    }
    return d[0];
}

uint64_t CMemoryKernels_write_nontemporal(void *a, size_t bytes, uint64_t value) {
    (void)a; (void)bytes; (void)value;
    return 0;
}

int CMemoryKernels_has_nontemporal(void) { return 0; }

int CMemoryKernels_flush(const void *a, size_t bytes) {
    (void)a; (void)bytes;
    return 0;
}

#endif

const void *CMemoryKernels_chase(const void *p, size_t count) {
    const void *const *q = (const void *const *)p;
    for (size_t i = 0; i < count; i++) q = (const void *const *)*q;
    return q;
}

uint64_t CMemoryKernels_touch_lines(const void *a, size_t bytes) {
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes; i += 64) sum += *(const volatile uint64_t *)((const char *)a + i);
    return sum;
}

void CMemoryKernels_dirty_lines(void *a, size_t bytes) {
    for (size_t i = 0; i < bytes; i += 64) {
        volatile uint64_t *word = (volatile uint64_t *)((char *)a + i);
        *word = *word;
    }
}

/// One line of a load: read it (adding to `*sum`), write it, or copy `source` into it.
static inline void load_line(CMemoryKernels_load_kind kind, uint64_t *line, const uint64_t *source, size_t i, uint64_t *sum) {
    switch (kind) {
    case CMemoryKernels_load_read:
        *sum += line[0] + line[1] + line[2] + line[3] + line[4] + line[5] + line[6] + line[7];
        break;
    case CMemoryKernels_load_write:
        for (int w = 0; w < 8; w++) line[w] = i;
        break;
    case CMemoryKernels_load_copy:
        for (int w = 0; w < 8; w++) line[w] = source[w];
        break;
    }
}

/// Adds `bytes` to a count only this thread writes: a plain add, published with a relaxed store.
static inline void count(uint64_t *moved, uint64_t bytes) {
    __atomic_store_n(moved, __atomic_load_n(moved, __ATOMIC_RELAXED) + bytes, __ATOMIC_RELAXED);
}

size_t CMemoryKernels_load_lines(CMemoryKernels_load_kind kind, void *a, const void *b, size_t bytes, uint64_t delay,
                                 uint64_t *moved, const int64_t *state, int64_t expected, uint64_t *total) {
    uint64_t sum = 0;
    const uint64_t step = kind == CMemoryKernels_load_copy ? 128 : 64;
    size_t i = 0;
    if (delay == 0) {
        // No delay: a page (64 lines) at a time between looks at the state and updates of the
        // count, which cost a twentieth of the load's rate when done line by line.
        while (i < bytes) {
            size_t start = i, end = bytes - i < 4096 ? bytes : i + 4096;
            for (; i < end; i += 64) {
                load_line(kind, (uint64_t *)((char *)a + i), (const uint64_t *)((const char *)b + i), i, &sum);
            }
            count(moved, (i - start) / 64 * step);
            if (__atomic_load_n(state, __ATOMIC_RELAXED) != expected) break;
        }
    } else {
        // A delay: each line counts as soon as it is done, and the state is looked at after
        // every round of up to 1024 turns of the delay, so a step ends on time whatever it is.
        int stopped = 0;
        for (; i < bytes && !stopped; i += 64) {
            load_line(kind, (uint64_t *)((char *)a + i), (const uint64_t *)((const char *)b + i), i, &sum);
            count(moved, step);
            for (uint64_t d = 0; d < delay && !stopped; d += 1024) {
                uint64_t turns = delay - d < 1024 ? delay - d : 1024;
                for (uint64_t t = 0; t < turns; t++) __asm__ volatile("" ::: "memory");
                stopped = __atomic_load_n(state, __ATOMIC_RELAXED) != expected;
            }
        }
    }
    *total += sum + *(const volatile uint64_t *)a;
    return i;
}
