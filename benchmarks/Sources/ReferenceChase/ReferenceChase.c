#include "ReferenceChase.h"

const void *ReferenceChase_chase(const void *start, size_t loads) {
    const void *const *p = (const void *const *)start;
    size_t blocks = loads / 16;
    while (blocks--) {
        p = (const void *const *)*p; p = (const void *const *)*p; p = (const void *const *)*p; p = (const void *const *)*p;
        p = (const void *const *)*p; p = (const void *const *)*p; p = (const void *const *)*p; p = (const void *const *)*p;
        p = (const void *const *)*p; p = (const void *const *)*p; p = (const void *const *)*p; p = (const void *const *)*p;
        p = (const void *const *)*p; p = (const void *const *)*p; p = (const void *const *)*p; p = (const void *const *)*p;
    }
    for (size_t rest = loads % 16; rest; rest--) p = (const void *const *)*p;
    return p;
}
