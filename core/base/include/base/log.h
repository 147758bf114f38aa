/* base/log.h — leveled logging to stderr.
 *
 * Each line reads "[   12.345678] 4242 sched W: message": seconds on the monotonic clock,
 * pid, module, level letter.  A line is written with one write(2), so lines from several
 * processes sharing stderr never interleave mid-line.  The level comes from
 * PRISM_LOG_LEVEL (error, warn, info, debug, trace, or 0-4) read on first use; the
 * default is warn.  A message above the level costs one load and one branch, its
 * arguments are not evaluated.
 *
 * Thread safety: all functions are thread-safe.  Messages longer than 1 KiB are cut.
 */
#ifndef PRISM_BASE_LOG_H
#define PRISM_BASE_LOG_H

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

enum prism_log_level {
	PRISM_LOG_ERROR = 0,
	PRISM_LOG_WARN = 1,
	PRISM_LOG_INFO = 2,
	PRISM_LOG_DEBUG = 3,
	PRISM_LOG_TRACE = 4,
};

/* Internal: the current level; -1 until PRISM_LOG_LEVEL has been read. */
extern int prism__log_level;
int prism__log_level_init(void);

static inline int prism_log_enabled(int level)
{
	int cur = __atomic_load_n(&prism__log_level, __ATOMIC_RELAXED);
	if (PRISM_UNLIKELY(cur < 0))
		cur = prism__log_level_init();
	return level <= cur;
}

/* Override the level (tests, --log-level flags). */
void prism_log_set_level(int level);
/* Parse "warn", "debug", "3"...; -EINVAL for anything else. */
int prism_log_parse_level(const char *s, int *level);

/* Write one line; module is a short static string ("ring", "sched"). */
void prism_log_write(int level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define PRISM_LOG(level, module, ...)                                \
	do {                                                         \
		if (prism_log_enabled(level))                        \
			prism_log_write(level, module, __VA_ARGS__); \
	} while (0)
#define PRISM_LOG_E(module, ...) PRISM_LOG(PRISM_LOG_ERROR, module, __VA_ARGS__)
#define PRISM_LOG_W(module, ...) PRISM_LOG(PRISM_LOG_WARN, module, __VA_ARGS__)
#define PRISM_LOG_I(module, ...) PRISM_LOG(PRISM_LOG_INFO, module, __VA_ARGS__)
#define PRISM_LOG_D(module, ...) PRISM_LOG(PRISM_LOG_DEBUG, module, __VA_ARGS__)
#define PRISM_LOG_T(module, ...) PRISM_LOG(PRISM_LOG_TRACE, module, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
