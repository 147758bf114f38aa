/* The growable FIFO: order across growth and wrap-around, in-place access, pop on empty,
 * and a failed allocation leaving the queue as it was. */
#include <criterion/criterion.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fifo.h"

Test(fifo, keeps_order_across_growth_and_wraparound)
{
	prism_fifo q;
	prism_fifo_init(&q, sizeof(uint64_t));
	uint64_t next_in = 0, next_out = 0, v;
	cr_assert_not(prism_fifo_pop(&q, &v), "empty");
	/* Interleave pushes and pops so the ring wraps, and grow it past 256 twice. */
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < 50 + round * 10; i++) {
			cr_assert_eq(prism_fifo_push(&q, &next_in), 0);
			next_in++;
		}
		for (int i = 0; i < 40; i++) {
			cr_assert(prism_fifo_pop(&q, &v));
			cr_assert_eq(v, next_out++);
		}
		cr_assert_eq(*(uint64_t *)prism_fifo_at(&q, 0), next_out, "at(0) is the head");
		cr_assert_eq(*(uint64_t *)prism_fifo_at(&q, q.len - 1), next_in - 1);
	}
	while (prism_fifo_pop(&q, &v))
		cr_assert_eq(v, next_out++);
	cr_assert_eq(next_out, next_in);
	prism_fifo_free(&q);
}

Test(fifo, failed_growth_changes_nothing)
{
	prism_fifo q;
	prism_fifo_init(&q, sizeof(int));
	for (int i = 0; i < 256; i++)
		cr_assert_eq(prism_fifo_push(&q, &i), 0);
	prism_fault_arm(1);
	int x = 256;
	cr_assert_eq(prism_fifo_push(&q, &x), -ENOMEM);
	prism_fault_arm(0);
	cr_assert_eq(q.len, 256);
	for (int i = 0; i < 256; i++) {
		int v;
		cr_assert(prism_fifo_pop(&q, &v));
		cr_assert_eq(v, i);
	}
	prism_fifo_free(&q);
}
