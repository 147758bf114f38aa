/* lincheck.h — a linearizability checker for histories of one register (one GCS key),
 * for the GCS tests.  Wing and Gong's search with Lowe's memoisation (the approach of
 * Knossos and Porcupine): repeatedly pick an operation that may take effect next (no
 * other pending operation finished before it began), apply it to a model register, and
 * backtrack when a read disagrees; configurations (which operations took effect, the
 * register's value) already explored are not explored again.  Linearizability is local,
 * so a history of many keys is checked key by key.
 *
 * An operation whose answer never came (the client gave up, the replica died) has
 * response LIN_PENDING: it may have taken effect at any point after it began, or never.
 * Reads that failed carry no information and should be left out.
 *
 * Header-only (static functions) so each test file that needs it includes it.
 */
#ifndef PRISM_TESTS_LINCHECK_H
#define PRISM_TESTS_LINCHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LIN_PENDING INT64_MAX

typedef struct lin_op {
	int64_t invoke;   /* when the client sent it */
	int64_t response; /* when the answer arrived, or LIN_PENDING */
	bool write;
	int64_t value; /* written, or read */
} lin_op;

typedef struct lin_cache {
	uint64_t *keys; /* per slot: words bitset words, then the value */
	uint8_t *used;
	size_t cap, n, words;
} lin_cache;

static uint64_t lin_hash(const uint64_t *bits, size_t words, int64_t value)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)value;
	for (size_t i = 0; i < words; i++) {
		h ^= bits[i] + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
		h *= 0xff51afd7ed558ccdull;
	}
	return h ^ (h >> 29);
}

/* Insert; false when it was there already.  Grows at half full. */
static bool lin_cache_add(lin_cache *c, const uint64_t *bits, int64_t value)
{
	size_t stride = c->words + 1;
	if ((c->n + 1) * 2 > c->cap) {
		lin_cache g = {.cap = c->cap ? c->cap * 2 : 1024, .words = c->words};
		g.keys = calloc(g.cap * stride, sizeof(uint64_t));
		g.used = calloc(g.cap, 1);
		if (!g.keys || !g.used)
			abort();
		for (size_t i = 0; i < c->cap; i++)
			if (c->used[i])
				lin_cache_add(&g, &c->keys[i * stride],
					      (int64_t)c->keys[i * stride + c->words]);
		free(c->keys);
		free(c->used);
		*c = g;
	}
	for (size_t i = lin_hash(bits, c->words, value) & (c->cap - 1);;
	     i = (i + 1) & (c->cap - 1)) {
		uint64_t *k = &c->keys[i * stride];
		if (!c->used[i]) {
			memcpy(k, bits, c->words * sizeof(uint64_t));
			k[c->words] = (uint64_t)value;
			c->used[i] = 1;
			c->n++;
			return true;
		}
		if (k[c->words] == (uint64_t)value &&
		    !memcmp(k, bits, c->words * sizeof(uint64_t)))
			return false;
	}
}

typedef struct lin_search {
	const lin_op *ops;
	size_t n, words, must; /* must: operations that finished */
	lin_cache seen;
	uint64_t steps, max_steps;
} lin_search;

static bool lin_done(const uint64_t *bits, size_t i)
{
	return bits[i / 64] >> (i % 64) & 1;
}

/* Depth-first: can the operations not in bits be linearized from value? */
static int lin_dfs(lin_search *s, uint64_t *bits, size_t ndone_finished, int64_t value)
{
	if (ndone_finished == s->must)
		return 1;
	if (++s->steps > s->max_steps)
		return -1; /* gave up: too big to decide */
	if (!lin_cache_add(&s->seen, bits, value))
		return 0;
	int64_t min_resp = LIN_PENDING;
	for (size_t i = 0; i < s->n; i++)
		if (!lin_done(bits, i) && s->ops[i].response < min_resp)
			min_resp = s->ops[i].response;
	for (size_t i = 0; i < s->n; i++) {
		const lin_op *o = &s->ops[i];
		if (lin_done(bits, i) || o->invoke > min_resp)
			continue;
		if (!o->write && o->value != value)
			continue;
		bits[i / 64] |= 1ull << (i % 64);
		int r = lin_dfs(s, bits, ndone_finished + (o->response != LIN_PENDING),
				o->write ? o->value : value);
		bits[i / 64] &= ~(1ull << (i % 64));
		if (r)
			return r;
	}
	return 0;
}

/* 1: linearizable; 0: not; -1: undecided within max_steps configurations. */
static int lin_check(const lin_op *ops, size_t n, int64_t initial, uint64_t max_steps)
{
	lin_search s = {.ops = ops, .n = n, .words = (n + 63) / 64, .max_steps = max_steps};
	for (size_t i = 0; i < n; i++)
		s.must += ops[i].response != LIN_PENDING;
	s.seen.words = s.words;
	uint64_t *bits = calloc(s.words ? s.words : 1, sizeof(uint64_t));
	if (!bits)
		abort();
	int r = lin_dfs(&s, bits, 0, initial);
	free(bits);
	free(s.seen.keys);
	free(s.seen.used);
	return r;
}

#endif
