/* helpers.h — shared by the objstore tests: regions, ids, byte patterns, children. */
#ifndef TESTS_OBJSTORE_HELPERS_H
#define TESTS_OBJSTORE_HELPERS_H

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/id.h"
#include "objstore/objstore.h"

/* A zeroed, page-aligned region, shared with children forked after it is made. */
struct region {
	void *mem;
	size_t size;
};

static inline struct region region_new(size_t arena, uint32_t max_objects)
{
	struct region r = {.size = objstore_region_size(arena, max_objects)};
	cr_assert_neq(r.size, 0);
	r.mem = mmap(NULL, r.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(r.mem, MAP_FAILED);
	cr_assert_eq(objstore_format(r.mem, r.size, arena, max_objects), 0);
	return r;
}

static inline void region_free(struct region *r)
{
	if (r->mem)
		munmap(r->mem, r->size);
	r->mem = NULL;
}

static inline objstore *attach(const struct region *r, uint32_t slot)
{
	objstore *os = NULL;
	cr_assert_eq(objstore_attach(r->mem, r->size, slot, &os), 0);
	return os;
}

/* Deterministic, non-nil ids: test_id(k) for k = 0, 1, 2, ... */
static inline prism_id test_id(uint64_t k)
{
	prism_id id;
	uint64_t a = 0x5eed5eed00000000ull ^ k, b = k * 0x9e3779b97f4a7c15ull + 1;
	memcpy(id.b, &a, 8);
	memcpy(id.b + 8, &b, 8);
	id.b[15] = PRISM_ID_OBJECT;
	return id;
}

/* The bytes of object `id`: a xorshift stream seeded by the id, so a reader can tell
 * whose bytes it got. */
static inline uint64_t pattern_seed(prism_id id)
{
	return prism_id_hash(id) | 1;
}

static inline void fill_pattern(void *p, size_t n, prism_id id)
{
	uint64_t x = pattern_seed(id);
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)x;
	}
}

static inline bool check_pattern(const void *p, size_t n, prism_id id)
{
	uint64_t x = pattern_seed(id);
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (b[i] != (uint8_t)x)
			return false;
	}
	return true;
}

/* Size of object k in the tests that derive sizes from ids. */
static inline size_t size_for(prism_id id, size_t max)
{
	return (size_t)(prism_id_hash(id) >> 20) % (max + 1);
}

/* Create, fill, seal; keeps the creator's pin unless `release`. */
static inline void put(objstore *os, prism_id id, size_t size, bool release)
{
	void *data = NULL;
	cr_assert_eq(objstore_create(os, id, size, &data), 0);
	fill_pattern(data, size, id);
	cr_assert_eq(objstore_seal(os, id), 0);
	if (release)
		cr_assert_eq(objstore_release(os, id), 0);
}

/* Small fast PRNG for tests. */
static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Wait for a child up to timeout_ms, then SIGKILL it.  Returns the wait status. */
static inline int reap_child(pid_t pid, int timeout_ms)
{
	int st = 0;
	uint64_t end = prism_now_ns() + (uint64_t)timeout_ms * PRISM_NS_PER_MS;
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return st;
		if (r < 0)
			return -1;
		if (prism_now_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return st;
		}
		usleep(1000);
	}
}

static inline bool exited_ok(int st)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

#endif
