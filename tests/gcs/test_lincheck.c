/* The linearizability checker the GCS tests rely on, checked itself: it must accept
 * every history a linearizable register can produce and reject the classic violations,
 * or a passing GCS test would prove nothing. */
#include <criterion/criterion.h>

#include "lincheck.h"

#define STEPS 10000000ull

static lin_op W(int64_t a, int64_t b, int64_t v)
{
	return (lin_op){.invoke = a, .response = b, .write = true, .value = v};
}

static lin_op R(int64_t a, int64_t b, int64_t v)
{
	return (lin_op){.invoke = a, .response = b, .write = false, .value = v};
}

Test(lincheck, accepts_sequential_and_overlapping_histories)
{
	lin_op seq[] = {W(0, 1, 5), R(2, 3, 5), W(4, 5, 7), R(6, 7, 7)};
	cr_assert_eq(lin_check(seq, 4, 0, STEPS), 1);
	/* A read overlapping a write may see either value. */
	lin_op old[] = {W(0, 10, 5), R(1, 2, 0)}, neu[] = {W(0, 10, 5), R(1, 2, 5)};
	cr_assert_eq(lin_check(old, 2, 0, STEPS), 1);
	cr_assert_eq(lin_check(neu, 2, 0, STEPS), 1);
	/* A write whose answer never came may have happened... */
	lin_op pend_seen[] = {W(0, LIN_PENDING, 9), R(5, 6, 9), R(7, 8, 9)};
	cr_assert_eq(lin_check(pend_seen, 3, 0, STEPS), 1);
	/* ...or not. */
	lin_op pend_unseen[] = {W(0, LIN_PENDING, 9), R(5, 6, 0)};
	cr_assert_eq(lin_check(pend_unseen, 2, 0, STEPS), 1);
}

Test(lincheck, rejects_the_classic_violations)
{
	/* A value nobody wrote. */
	lin_op ghost[] = {W(0, 1, 5), R(2, 3, 6)};
	cr_assert_eq(lin_check(ghost, 2, 0, STEPS), 0);
	/* A stale read: the write finished before the read began. */
	lin_op stale[] = {W(0, 1, 5), R(2, 3, 0)};
	cr_assert_eq(lin_check(stale, 2, 0, STEPS), 0);
	/* A lost acknowledged write: two later reads see the value before it. */
	lin_op lost[] = {W(0, 1, 1), W(2, 3, 2), R(4, 5, 1)};
	cr_assert_eq(lin_check(lost, 3, 0, STEPS), 0);
	/* Reads going back in time: the new value, then the old one. */
	lin_op back[] = {W(0, 10, 5), R(1, 2, 5), R(3, 4, 0)};
	cr_assert_eq(lin_check(back, 3, 0, STEPS), 0);
	/* A pending write seen, then unseen. */
	lin_op flicker[] = {W(0, LIN_PENDING, 9), R(5, 6, 9), R(7, 8, 0)};
	cr_assert_eq(lin_check(flicker, 3, 0, STEPS), 0);
}

/* Random histories of 4 clients on a real register, each operation taking effect at a
 * random instant inside its interval: always accepted.  Corrupting one read to a value
 * never written: always rejected. */
Test(lincheck, random_linearizable_histories_pass_and_corrupted_ones_fail)
{
	uint64_t x = 0x243f6a8885a308d3ull;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
	for (int round = 0; round < 200; round++) {
		enum { CLIENTS = 4, PER = 12, N = CLIENTS * PER };
		lin_op ops[N];
		int64_t at[N]; /* linearization instants */
		int64_t t[CLIENTS] = {0};
		for (int c = 0; c < CLIENTS; c++)
			for (int k = 0; k < PER; k++) {
				lin_op *o = &ops[c * PER + k];
				o->invoke = t[c] + (int64_t)(RND() % 5);
				o->response = o->invoke + 1 + (int64_t)(RND() % 20);
				at[c * PER + k] =
					o->invoke +
					(int64_t)(RND() % (uint64_t)(o->response - o->invoke));
				o->write = RND() % 2;
				o->value = o->write ? (int64_t)(round * 1000 + c * PER + k + 1)
						    : 0;
				t[c] = o->response + 1;
			}
		/* Replay in instant order on a register to fill in what reads saw. */
		int order[N];
		for (int i = 0; i < N; i++)
			order[i] = i;
		for (int i = 1; i < N; i++)
			for (int j = i; j > 0 && at[order[j]] < at[order[j - 1]]; j--) {
				int tmp = order[j];
				order[j] = order[j - 1];
				order[j - 1] = tmp;
			}
		/* Equal instants on different clients are ordered arbitrarily but consistently. */
		int64_t reg = 0;
		for (int i = 0; i < N; i++) {
			lin_op *o = &ops[order[i]];
			if (o->write)
				reg = o->value;
			else
				o->value = reg;
		}
		cr_assert_eq(lin_check(ops, N, 0, STEPS), 1, "round %d", round);
		for (int i = 0; i < N; i++)
			if (!ops[i].write) {
				ops[i].value = -7;
				cr_assert_eq(lin_check(ops, N, 0, STEPS), 0,
					     "round %d corrupted", round);
				break;
			}
	}
#undef RND
}
