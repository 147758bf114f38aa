/* base/alloc.h — the one allocation wrapper, with a fault-injection hook.
 *
 * All prism code allocates through these functions.  Library code returns -ENOMEM when
 * they return NULL; only executables in tools/ may abort.  Ownership is the caller's:
 * what prism_malloc() returns is freed with prism_free(), which accepts NULL.
 *
 * Fault injection (SQLite style).  A test arms the injector with N; the Nth "fault point"
 * after that fails, then the injector disarms itself.  Fault points are every allocation
 * here plus every resource-acquiring system call that prism wraps (memfd_create, mmap,
 * io_uring setup, eventfd, ...), which call prism_fault_point().  Looping N = 1, 2, 3, ...
 * until an operation succeeds proves that each failure path returns an error and, under
 * AddressSanitizer, that none leaks.
 *
 * Thread safety: all functions are thread-safe.  The injector is process-global; arm it
 * only from single-threaded test code.  When disarmed the cost on the hot path is one
 * relaxed atomic load.
 */
#ifndef PRISM_BASE_ALLOC_H
#define PRISM_BASE_ALLOC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Countdown to the failing fault point; 0 means disarmed.  Internal: use the functions. */
extern _Atomic long prism__fault_countdown;
int prism__fault_slow(void);

/* 0, or -ENOMEM when the armed injector chooses this point to fail. */
static inline int prism_fault_point(void)
{
	if (PRISM_LIKELY(atomic_load_explicit(&prism__fault_countdown, memory_order_relaxed) ==
			 0))
		return 0;
	return prism__fault_slow();
}

/* Arm: the nth fault point from now fails (n >= 1); n = 0 disarms. */
void prism_fault_arm(long n);
/* True once the armed fault fired since the last prism_fault_arm(). */
bool prism_fault_fired(void);

void *prism_malloc(size_t size);
void *prism_calloc(size_t nmemb, size_t size);
/* Like realloc(); on failure the old block stays valid and owned by the caller. */
void *prism_realloc(void *ptr, size_t size);
/* Aligned block; align is a power of two >= sizeof(void *). Freed with prism_free(). */
void *prism_aligned_alloc(size_t align, size_t size);
char *prism_strdup(const char *s);
void prism_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
