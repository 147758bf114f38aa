/* Allocation wrapper and the fault injector. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

Test(alloc, basic_allocations_work)
{
	char *s = prism_strdup("prism");
	cr_assert_str_eq(s, "prism");
	int *z = prism_calloc(16, sizeof(int));
	for (int i = 0; i < 16; i++)
		cr_assert_eq(z[i], 0);
	int *g = prism_realloc(z, 1024 * sizeof(int));
	cr_assert_not_null(g);
	cr_assert_eq(g[15], 0);
	void *a = prism_aligned_alloc(4096, 100);
	cr_assert_eq((uintptr_t)a % 4096, 0);
	prism_free(a);
	prism_free(g);
	prism_free(s);
	prism_free(NULL);
}

Test(alloc, nth_fault_point_fails_once)
{
	prism_fault_arm(3);
	void *a = prism_malloc(8), *b = prism_malloc(8), *c = prism_malloc(8);
	void *d = prism_malloc(8);
	cr_assert_not_null(a);
	cr_assert_not_null(b);
	cr_assert_null(c, "the 3rd allocation must fail");
	cr_assert_not_null(d, "the injector disarms after firing");
	cr_assert(prism_fault_fired());
	prism_free(a);
	prism_free(b);
	prism_free(d);
}

Test(alloc, failed_realloc_keeps_block)
{
	char *p = prism_strdup("keep");
	prism_fault_arm(1);
	char *q = prism_realloc(p, 1 << 20);
	cr_assert_null(q);
	cr_assert_str_eq(p, "keep");
	prism_free(p);
}

Test(alloc, disarmed_injector_never_fires)
{
	prism_fault_arm(0);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(prism_fault_point(), 0);
	cr_assert_not(prism_fault_fired());
}
