/* Logging: level parsing, filtering, and the line format. */
#include <criterion/criterion.h>
#include <errno.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

Test(log, parse_levels)
{
	int lvl = -1;
	cr_assert_eq(prism_log_parse_level("debug", &lvl), 0);
	cr_assert_eq(lvl, PRISM_LOG_DEBUG);
	cr_assert_eq(prism_log_parse_level("WARN", &lvl), 0);
	cr_assert_eq(lvl, PRISM_LOG_WARN);
	cr_assert_eq(prism_log_parse_level("4", &lvl), 0);
	cr_assert_eq(lvl, PRISM_LOG_TRACE);
	cr_assert_eq(prism_log_parse_level("verbose", &lvl), -EINVAL);
	cr_assert_eq(prism_log_parse_level("5", &lvl), -EINVAL);
	cr_assert_eq(prism_log_parse_level("", &lvl), -EINVAL);
}

Test(log, filters_and_formats, .init = cr_redirect_stderr)
{
	prism_log_set_level(PRISM_LOG_INFO);
	PRISM_LOG_D("test", "hidden %d", 1);
	PRISM_LOG_I("test", "shown %d", 2);
	fflush(stderr);
	char expect[64];
	snprintf(expect, sizeof(expect), "%d test I: shown 2\n", (int)getpid());
	/* The timestamp varies; the rest of the line is fixed. */
	FILE *f = cr_get_redirected_stderr();
	char line[256] = {0};
	cr_assert_not_null(fgets(line, sizeof(line), f));
	cr_assert_eq(line[0], '[');
	cr_assert(strstr(line, expect), "line was: %s", line);
	cr_assert_null(fgets(line, sizeof(line), f), "the debug line must be filtered");
}

Test(log, env_level_is_read, .init = cr_redirect_stderr)
{
	/* A fresh process would read PRISM_LOG_LEVEL on first use; emulate it. */
	setenv("PRISM_LOG_LEVEL", "error", 1);
	prism__log_level = -1;
	cr_assert(prism_log_enabled(PRISM_LOG_ERROR));
	cr_assert_not(prism_log_enabled(PRISM_LOG_WARN));
	setenv("PRISM_LOG_LEVEL", "nonsense", 1);
	prism__log_level = -1;
	cr_assert(prism_log_enabled(PRISM_LOG_WARN), "a bad value falls back to warn");
	fflush(stderr);
	char line[256] = {0};
	cr_assert_not_null(fgets(line, sizeof(line), cr_get_redirected_stderr()));
	cr_assert(strstr(line, "PRISM_LOG_LEVEL='nonsense'"), "line was: %s", line);
}
