/* place.c — the global scheduler's placement rule and the local scheduler's keep rule;
 * the contract and the estimate's formula are in sched/place.h. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "sched/place.h"

typedef unsigned __int128 u128;

#define NS_PER_SEC 1000000000u

static uint64_t sat64(u128 x)
{
	return x > UINT64_MAX ? UINT64_MAX : (uint64_t)x;
}

static bool fits(const uint64_t *have, const uint64_t *demand, uint32_t nres)
{
	for (uint32_t r = 0; r < nres; r++)
		if (have[r] < demand[r])
			return false;
	return true;
}

/* No demand at or above nres: a resource the caller's table has no name for. */
static bool demand_named(const struct sched_place_task *t, uint32_t nres)
{
	for (uint32_t r = nres; r < SCHED_PLACE_MAX_RES; r++)
		if (t->demand_milli[r])
			return false;
	return true;
}

/* Every holder list strictly ascending and inside the view; the sum of the input sizes
 * in *bytes. */
static int check_inputs(const struct sched_place_task *t, uint32_t nnodes, u128 *bytes)
{
	if (t->ninputs > SCHED_PLACE_MAX_INPUTS || (t->ninputs && !t->inputs))
		return -EINVAL;
	*bytes = 0;
	for (uint32_t k = 0; k < t->ninputs; k++) {
		const struct sched_place_input *in = &t->inputs[k];
		if (in->nholders && !in->holders)
			return -EINVAL;
		for (uint32_t h = 0; h < in->nholders; h++)
			if (in->holders[h] >= nnodes ||
			    (h && in->holders[h] <= in->holders[h - 1]))
				return -EINVAL;
		*bytes += in->size;
	}
	return 0;
}

/* Bytes of t's inputs held by node j.  cur[k] walks input k's holders; j only grows from
 * one call to the next, so each list is walked once over a whole pass. */
static u128 held_bytes(const struct sched_place_task *t, uint32_t *cur, uint32_t j)
{
	u128 held = 0;
	for (uint32_t k = 0; k < t->ninputs; k++) {
		const struct sched_place_input *in = &t->inputs[k];
		while (cur[k] < in->nholders && in->holders[cur[k]] < j)
			cur[k]++;
		if (cur[k] < in->nholders && in->holders[cur[k]] == j)
			held += in->size;
	}
	return held;
}

/* a * b / d rounded down, saturating; 64-bit arithmetic unless the product overflows
 * (a 128-bit division is a library call, several times slower). */
static uint64_t muldiv(uint64_t a, uint64_t b, uint64_t d)
{
	uint64_t p;
	if (!__builtin_mul_overflow(a, b, &p))
		return p / d;
	return sat64((u128)a * b / d);
}

/* The expected start on n of a task demanding `demand` that lacks `missing` bytes there. */
static uint64_t estimate(const struct sched_place_node *n, const uint64_t *demand,
			 uint32_t nres, u128 missing)
{
	uint64_t ahead = (uint64_t)n->queue_len + (fits(n->avail_milli, demand, nres) ? 0 : 1);
	uint64_t wait = ahead ? muldiv(ahead, n->mean_task_ns, n->slots) : 0, move = 0;
	if (missing > UINT64_MAX)
		move = sat64(missing * NS_PER_SEC / n->bandwidth);
	else if (missing)
		move = muldiv((uint64_t)missing, NS_PER_SEC, n->bandwidth);
	return wait > UINT64_MAX - move ? UINT64_MAX : wait + move;
}

int sched_place_pick(const struct sched_place_view *v, const struct sched_place_task *t,
		     uint32_t start, uint32_t *node, uint64_t *est_ns)
{
	if (!v || !t || !node || v->nres > SCHED_PLACE_MAX_RES || (v->nnodes && !v->nodes) ||
	    !demand_named(t, v->nres))
		return -EINVAL;
	u128 bytes;
	int rc = check_inputs(t, v->nnodes, &bytes);
	if (rc)
		return rc;
	uint32_t cur[SCHED_PLACE_MAX_INPUTS] = {0};
	uint32_t n = v->nnodes, s = n ? start % n : 0, best = UINT32_MAX, best_rank = 0;
	uint64_t best_est = 0;
	/* Index order, so that the cursors only move forward; the tie-break compares each
	 * node's rank in the rotation that begins at s. */
	for (uint32_t j = 0; j < n; j++) {
		const struct sched_place_node *nd = &v->nodes[j];
		if (!nd->alive)
			continue;
		if (nd->slots == 0 || nd->bandwidth == 0)
			return -EINVAL;
		if (!fits(nd->total_milli, t->demand_milli, v->nres))
			continue;
		u128 missing = bytes - held_bytes(t, cur, j);
		uint64_t est = estimate(nd, t->demand_milli, v->nres, missing);
		uint32_t rank = j >= s ? j - s : j + (n - s);
		if (best == UINT32_MAX || est < best_est ||
		    (est == best_est && rank < best_rank)) {
			best = j;
			best_est = est;
			best_rank = rank;
		}
	}
	if (best == UINT32_MAX)
		return PRISM_E_INFEASIBLE;
	*node = best;
	if (est_ns)
		*est_ns = best_est;
	return 0;
}

bool sched_place_local_ok(const struct sched_place_node *self, uint32_t nres,
			  const struct sched_place_task *t, uint32_t queue_max)
{
	if (!self || !t || nres > SCHED_PLACE_MAX_RES || !self->alive || !demand_named(t, nres))
		return false;
	uint64_t limit = queue_max ? queue_max
				   : (uint64_t)SCHED_PLACE_LOCAL_QUEUE_PER_SLOT *
					     (self->slots ? self->slots : 1);
	return self->queue_len < limit && fits(self->avail_milli, t->demand_milli, nres);
}
