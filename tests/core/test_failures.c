/* Failures: workers killed mid-task, drivers that crash holding leases.  Nothing may
 * hang, results must be retried or become error objects, workers must be reused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "prism.h"

/* Dies by SIGKILL the first time it runs for a given marker path, succeeds after. */
static int die_once(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	char path[256];
	(void)nargs;
	snprintf(path, sizeof(path), "%.*s", (int)args[0].len, (const char *)args[0].data);
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0600);
	if (fd >= 0) {
		close(fd);
		raise(SIGKILL);
	}
	int32_t pid = (int32_t)getpid();
	return prism_return(ctx, 0, &pid, sizeof(pid));
}
PRISM_REMOTE_ARITY(die_once, 1);

static int die_always(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)ctx;
	(void)args;
	(void)nargs;
	raise(SIGKILL);
	return 0;
}
PRISM_REMOTE(die_always);

static int pid_of_worker(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	int32_t pid = (int32_t)getpid();
	return prism_return(ctx, 0, &pid, sizeof(pid));
}
PRISM_REMOTE(pid_of_worker);

static int nap(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	int64_t ms;
	memcpy(&ms, args[0].data, 8);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
	int32_t pid = (int32_t)getpid();
	return prism_return(ctx, 0, &pid, sizeof(pid));
}
PRISM_REMOTE_ARITY(nap, 1);

/* The crashing driver: this binary run again with PRISM_TEST_CRASH_DRIVER=address.  It
 * takes both workers with long tasks, then dies by SIGKILL without a word. */
__attribute__((constructor(200))) static void crash_driver(void)
{
	const char *addr = getenv("PRISM_TEST_CRASH_DRIVER");
	if (!addr || getenv("PRISM_WORKER"))
		return;
	unsetenv("PRISM_TEST_CRASH_DRIVER");
	prism_opts o = {.address = addr, .log_level = -1};
	if (prism_init(&o) != 0)
		_exit(3);
	int64_t ms = 400;
	prism_value a = prism_bytes(&ms, 8);
	prism_ref r[4];
	for (int i = 0; i < 4; i++)
		if (prism_submit("nap", &a, 1, NULL, &r[i]) != 0)
			_exit(4);
	/* Make sure the tasks reached the workers before dying. */
	const void *v;
	size_t n;
	prism_get(r[0], 100 * (int64_t)PRISM_NS_PER_MS, &v, &n);
	raise(SIGKILL);
}

static void start(void)
{
	prism_opts o = {.num_workers = 2, .log_level = -1};
	cr_assert_eq(prism_init(&o), 0, "prism_init: %s", prism_last_error());
}

TestSuite(failures, .init = start, .fini = prism_shutdown, .timeout = 120);

static void marker(char *path, size_t len, const char *tag)
{
	snprintf(path, len, "/tmp/prism-test-%s-%d-%llu", tag, (int)getpid(),
		 (unsigned long long)prism_now_ns());
}

Test(failures, worker_killed_mid_task_is_retried)
{
	char path[256];
	marker(path, sizeof(path), "once");
	prism_value a = prism_bytes(path, strlen(path));
	prism_ref r;
	cr_assert_eq(prism_submit("die_once", &a, 1, NULL, &r), 0);
	const void *v;
	size_t n;
	int rc = prism_get(r, 60 * (int64_t)PRISM_NS_PER_SEC, &v, &n);
	cr_assert_eq(rc, 0, "retry failed: %s %s", prism_strerror(rc),
		     rc == PRISM_E_TASK_FAILED ? (const char *)v : "");
	cr_assert_eq(n, 4);
	unlink(path);
	prism_ref_release(r);
	/* The node replaced the dead worker: work goes on. */
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(prism_submit("pid_of_worker", NULL, 0, NULL, &r), 0);
		cr_assert_eq(prism_get(r, 30 * (int64_t)PRISM_NS_PER_SEC, &v, &n), 0);
		prism_ref_release(r);
	}
}

Test(failures, retries_run_out_into_an_error_object)
{
	prism_call_opts o = {.max_retries = 2};
	prism_ref r;
	cr_assert_eq(prism_submit("die_always", NULL, 0, &o, &r), 0);
	const void *v;
	size_t n;
	cr_assert_eq(prism_get(r, 60 * (int64_t)PRISM_NS_PER_SEC, &v, &n), PRISM_E_TASK_FAILED);
	cr_log_info("error object: %s", (const char *)v);
	cr_assert(strstr((const char *)v, "die_always"), "names the function: %s",
		  (const char *)v);
	cr_assert(strstr((const char *)v, "3 attempts"), "says how often: %s", (const char *)v);
	prism_ref_release(r);
	/* No retries at all. */
	prism_call_opts none = {.max_retries = -1};
	cr_assert_eq(prism_submit("die_always", NULL, 0, &none, &r), 0);
	cr_assert_eq(prism_get(r, 60 * (int64_t)PRISM_NS_PER_SEC, &v, &n), PRISM_E_TASK_FAILED);
	cr_assert(strstr((const char *)v, "1 attempt"), "%s", (const char *)v);
	prism_ref_release(r);
}

/* The set of worker processes: naps long enough that both workers take some. */
static int worker_pids(int32_t *out, int max)
{
	int64_t ms = 30;
	prism_value a = prism_bytes(&ms, 8);
	prism_ref naps[8];
	int n = 0;
	for (int i = 0; i < 8; i++)
		cr_assert_eq(prism_submit("nap", &a, 1, NULL, &naps[i]), 0);
	for (int i = 0; i < 8; i++) {
		const void *v;
		size_t len;
		int32_t pid;
		cr_assert_eq(prism_get(naps[i], 30 * (int64_t)PRISM_NS_PER_SEC, &v, &len), 0);
		memcpy(&pid, v, 4);
		bool seen = false;
		for (int k = 0; k < n; k++)
			seen |= out[k] == pid;
		if (!seen && n < max)
			out[n++] = pid;
		prism_ref_release(naps[i]);
	}
	return n;
}

static int cmp_pid(const void *a, const void *b)
{
	return *(const int32_t *)a - *(const int32_t *)b;
}

Test(failures, crashed_driver_gives_back_its_leases_and_workers_are_reused)
{
	int32_t before[8], after[8];
	int nb = worker_pids(before, 8);
	cr_assert_eq(nb, 2, "two workers serve before the crash");
	char exe[4096], var[4200];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	cr_assert_gt(len, 0);
	exe[len] = '\0';
	snprintf(var, sizeof(var), "PRISM_TEST_CRASH_DRIVER=%s", prism_node_address());
	char *argv[] = {exe, NULL};
	char *envp[] = {var, NULL};
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, exe, NULL, NULL, argv, envp), 0);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		  "the crash driver must crash (%d)", st);
	/* Its leases come back once the workers finish the task they are in (<= 400 ms),
	 * and the same two processes serve us again: no worker was lost or replaced. */
	uint64_t t0 = prism_now_ns();
	int na = 0;
	while (prism_now_ns() - t0 < 10 * PRISM_NS_PER_SEC) {
		int32_t more[8];
		int nm = worker_pids(more, 8);
		for (int i = 0; i < nm; i++) {
			bool seen = false;
			for (int k = 0; k < na; k++)
				seen |= after[k] == more[i];
			if (!seen && na < 8)
				after[na++] = more[i];
		}
		if (na >= nb)
			break;
	}
	cr_log_info("work resumed after %.0f ms", (double)(prism_now_ns() - t0) / 1e6);
	qsort(before, (size_t)nb, sizeof(int32_t), cmp_pid);
	qsort(after, (size_t)na, sizeof(int32_t), cmp_pid);
	cr_assert_eq(na, nb);
	cr_assert_arr_eq(before, after, (size_t)nb * sizeof(int32_t),
			 "the workers from before the crash must be the ones serving");
}
