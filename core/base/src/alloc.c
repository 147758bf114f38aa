/* alloc.c — allocation wrapper and fault injector; see base/alloc.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

_Atomic long prism__fault_countdown;
static _Atomic bool fault_fired;

int prism__fault_slow(void)
{
	long left = atomic_fetch_sub_explicit(&prism__fault_countdown, 1, memory_order_relaxed);
	if (left == 1) {
		atomic_store(&fault_fired, true);
		return -ENOMEM;
	}
	if (left <= 0) /* raced with a disarm: undo and succeed */
		atomic_fetch_add_explicit(&prism__fault_countdown, 1, memory_order_relaxed);
	return 0;
}

void prism_fault_arm(long n)
{
	atomic_store(&fault_fired, false);
	atomic_store(&prism__fault_countdown, n > 0 ? n : 0);
}

bool prism_fault_fired(void)
{
	return atomic_load(&fault_fired);
}

void *prism_malloc(size_t size)
{
	if (prism_fault_point())
		return NULL;
	return malloc(size ? size : 1);
}

void *prism_calloc(size_t nmemb, size_t size)
{
	if (prism_fault_point())
		return NULL;
	return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *prism_realloc(void *ptr, size_t size)
{
	if (prism_fault_point())
		return NULL;
	return realloc(ptr, size ? size : 1);
}

void *prism_aligned_alloc(size_t align, size_t size)
{
	void *p = NULL;
	if (prism_fault_point())
		return NULL;
	if (posix_memalign(&p, align, size ? size : 1) != 0)
		return NULL;
	return p;
}

char *prism_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = prism_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void prism_free(void *ptr)
{
	free(ptr);
}
