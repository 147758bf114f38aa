/* pattern.h — deterministic test data shared by the core tests: the bytes of a value are
 * a function of (seed, length), so a test checks any value it gets back without keeping
 * a copy. */
#ifndef PRISM_TESTS_PATTERN_H
#define PRISM_TESTS_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* Generous for a get: a loaded 2-vCPU machine under ASan. */
#define WAIT_NS (120 * PRISM_NS_PER_SEC)

/* A deterministic byte pattern for (seed, length) (xorshift64). */
static inline void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

#endif
