#ifndef REFERENCE_CHASE_H
#define REFERENCE_CHASE_H
#include <stddef.h>

/// Follows a pointer chain for `loads` dependent loads and returns where it stopped: the loop
/// of a plain C pointer chase, for comparison with MembenchKit's Swift loop on the same chain.
const void *ReferenceChase_chase(const void *start, size_t loads);

#endif
