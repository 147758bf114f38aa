/* A process of another user is refused by the node, by its peer credentials, before the
 * node reads anything from it (DESIGN.md section 9), and the node carries on. */
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "prism.h"

static int one(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	int32_t v = 1;
	return prism_return(ctx, 0, &v, sizeof(v));
}
PRISM_REMOTE(one);

/* This binary run again with PRISM_TEST_OTHER_UID=address: become "nobody" and try to
 * attach.  Exit 0 when refused as expected. */
__attribute__((constructor(200))) static void other_uid_client(void)
{
	const char *addr = getenv("PRISM_TEST_OTHER_UID");
	if (!addr || getenv("PRISM_WORKER"))
		return;
	if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
		_exit(20);
	prism_opts o = {.address = addr, .log_level = 0};
	int rc = prism_init(&o);
	if (rc == 0)
		_exit(21); /* let in: the bug this test is for */
	if (rc != -EACCES) {
		fprintf(stderr, "other-uid client: %s (%s)\n", prism_strerror(rc),
			prism_last_error());
		_exit(22);
	}
	_exit(strstr(prism_last_error(), "another user") ? 0 : 23);
}

TestSuite(security, .timeout = 60);

Test(security, another_users_process_is_refused)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to run a client as another user");
	prism_opts o = {.num_workers = 1, .log_level = 0};
	cr_assert_eq(prism_init(&o), 0, "%s", prism_last_error());
	char addr[4096], dir[4096];
	snprintf(addr, sizeof(addr), "%s", prism_node_address());
	snprintf(dir, sizeof(dir), "%s", addr);
	char *d = dirname(dir);
	/* The socket lives in a 0700 directory and is 0700 itself, so the filesystem turns
	 * another user away first; open both so the node's own check is what answers. */
	struct stat dst;
	cr_assert_eq(stat(d, &dst), 0);
	cr_assert_eq(chmod(d, 0711), 0);
	cr_assert_eq(chmod(addr, 0777), 0);

	char exe[4096], var[4200];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert_gt(len, 0);
	exe[len] = '\0';
	snprintf(var, sizeof(var), "PRISM_TEST_OTHER_UID=%s", addr);
	char *argv[] = {exe, NULL};
	char *envp[] = {var, NULL};
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, exe, NULL, NULL, argv, envp), 0);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	chmod(d, dst.st_mode & 07777);
	chmod(addr, 0700);
	cr_assert(WIFEXITED(st), "status %d", st);
	cr_assert_eq(WEXITSTATUS(st), 0, "exit %d (21: let in; 22: wrong error; 23: no reason)",
		     WEXITSTATUS(st));

	/* The node is unaffected. */
	prism_ref r;
	const void *v;
	size_t n;
	cr_assert_eq(prism_submit("one", NULL, 0, NULL, &r), 0);
	cr_assert_eq(prism_get(r, 30 * (int64_t)PRISM_NS_PER_SEC, &v, &n), 0);
	prism_ref_release(r);
	prism_shutdown();
}
