/* paths.c — where node sockets live; see sched/node.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sched/node.h"

int sched_socket_dir(char *dir, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(dir, len, "%s/prism-%u", tmp && *tmp ? tmp : "/tmp",
			 (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	/* Refuse a directory another user made to intercept our sockets. */
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return -EACCES;
	return 0;
}

int sched_default_socket(char *path, size_t len)
{
	char dir[4096];
	int rc = sched_socket_dir(dir, sizeof(dir));
	if (rc)
		return rc;
	int n = snprintf(path, len, "%s/node.sock", dir);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool sched_env_inherited(const char *var)
{
	return strncmp(var, "PRISM_", 6) != 0 || strncmp(var, "PRISM_LOG", 9) == 0;
}
