/* base/api.h — compiler attributes shared by every prism module.
 *
 * PRISM_API marks a symbol that libprism exports; everything else is hidden (the build
 * compiles with -fvisibility=hidden).  The branch hints and the cache-line size are here
 * so that hot-path code in every module spells them the same way.  No state, no
 * dependencies; safe to include anywhere.
 */
#ifndef PRISM_BASE_API_H
#define PRISM_BASE_API_H

#define PRISM_API __attribute__((visibility("default")))

#define PRISM_LIKELY(x) __builtin_expect(!!(x), 1)
#define PRISM_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* 64 bytes on x86-64 and most arm64 parts; producer and consumer state of shared
 * structures sit on separate lines so they do not bounce between cores. */
#define PRISM_CACHE_LINE 64
#define PRISM_CACHE_ALIGNED __attribute__((aligned(PRISM_CACHE_LINE)))

#define PRISM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ALWAYS()/NEVER() in the manner of SQLite: conditions that cannot happen but that the
 * code still handles.  Debug builds abort so the impossible is seen; release builds take
 * the recovery path. */
#ifdef NDEBUG
#define PRISM_ALWAYS(x) (x)
#define PRISM_NEVER(x) (x)
#else
#include <assert.h>
#define PRISM_ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#define PRISM_NEVER(x) ((x) ? (assert(!#x), 1) : 0)
#endif

#endif
