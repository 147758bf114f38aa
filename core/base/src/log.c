/* log.c — leveled logging; see base/log.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"

int prism__log_level = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};
static const char level_letters[] = "EWIDT";

int prism_log_parse_level(const char *s, int *level)
{
	if (!s || !*s)
		return -EINVAL;
	for (int i = 0; i < (int)PRISM_ARRAY_LEN(level_names); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*level = i;
			return 0;
		}
	}
	if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0') {
		*level = s[0] - '0';
		return 0;
	}
	return -EINVAL;
}

int prism__log_level_init(void)
{
	int level = PRISM_LOG_WARN;
	const char *env = getenv("PRISM_LOG_LEVEL");
	if (env && prism_log_parse_level(env, &level) != 0) {
		level = PRISM_LOG_WARN;
		__atomic_store_n(&prism__log_level, level, __ATOMIC_RELAXED);
		prism_log_write(PRISM_LOG_WARN, "log",
				"PRISM_LOG_LEVEL='%s' is not one of error, warn, info, debug, "
				"trace, 0-4; using warn",
				env);
		return level;
	}
	__atomic_store_n(&prism__log_level, level, __ATOMIC_RELAXED);
	return level;
}

void prism_log_set_level(int level)
{
	if (level < PRISM_LOG_ERROR)
		level = PRISM_LOG_ERROR;
	if (level > PRISM_LOG_TRACE)
		level = PRISM_LOG_TRACE;
	__atomic_store_n(&prism__log_level, level, __ATOMIC_RELAXED);
}

void prism_log_write(int level, const char *module, const char *fmt, ...)
{
	char line[1024 + 64];
	uint64_t now = prism_now_ns();
	int lvl = level < 0 ? 0 : level > 4 ? 4 : level;
	int n = snprintf(line, sizeof(line), "[%5llu.%06llu] %d %s %c: ",
			 (unsigned long long)(now / PRISM_NS_PER_SEC),
			 (unsigned long long)(now % PRISM_NS_PER_SEC / 1000), (int)getpid(),
			 module ? module : "-", level_letters[lvl]);
	if (n < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2; /* cut: vsnprintf truncated the message */
	line[len++] = '\n';
	/* One write per line keeps lines whole between processes; a short write on a
	 * pipe is possible only above PIPE_BUF (4 KiB), which a line never reaches. */
	ssize_t w;
	do
		w = write(STDERR_FILENO, line, len);
	while (w < 0 && errno == EINTR);
}
