/* slow_fast — futures decouple submission from completion (the Ray walk-through in
 * seeds/): two slow calls (0.5 s each) and 100 fast ones are submitted together, and
 * every fast result is there while the slow ones are still running.
 *
 * The slow calls sleep rather than compute, so each asks for half a CPU, as one would
 * for I/O-bound work: on a 2-CPU machine they leave a CPU for the fast calls.
 * Exits 1 if a fast result was not ready before the slow ones finished.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "prism.h"

static int slow(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	struct timespec ts = {0, 500 * 1000 * 1000};
	nanosleep(&ts, NULL);
	return prism_return(ctx, 0, args[0].data, args[0].len);
}
PRISM_REMOTE_ARITY(slow, 1);

static int fast(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)nargs;
	int x = *(const int *)args[0].data * 2;
	return prism_return(ctx, 0, &x, sizeof(x));
}
PRISM_REMOTE_ARITY(fast, 1);

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "slow_fast: %s: %s (%s)\n", what, prism_strerror(rc),
			prism_last_error());
		exit(1);
	}
}

int main(void)
{
	enum { NSLOW = 2, NFAST = 100 };
	prism_ref s[NSLOW], f[NFAST];
	check(prism_init(NULL), "prism_init");
	/* Warm the workers so the timings below are about scheduling, not start-up. */
	int one = 1;
	prism_value warm = prism_bytes(&one, sizeof(one));
	prism_ref w;
	check(prism_submit("fast", &warm, 1, NULL, &w), "submit");
	const void *v;
	size_t n;
	check(prism_get(w, -1, &v, &n), "warm-up");
	prism_ref_release(w);

	double t0 = now_ms();
	prism_call_opts half = {.num_cpus = 0.5};
	for (int i = 0; i < NSLOW; i++) {
		prism_value a = prism_bytes(&i, sizeof(i));
		check(prism_submit("slow", &a, 1, &half, &s[i]), "submit slow");
	}
	for (int i = 0; i < NFAST; i++) {
		prism_value a = prism_bytes(&i, sizeof(i));
		check(prism_submit("fast", &a, 1, NULL, &f[i]), "submit fast");
	}
	printf("submitted %d slow and %d fast calls in %.2f ms\n", NSLOW, NFAST, now_ms() - t0);

	check(prism_wait(f, NFAST, NFAST, -1, NULL), "wait fast");
	double t_fast = now_ms() - t0;
	bool ready[NSLOW];
	int slow_ready = prism_wait(s, NSLOW, 0, 0, ready);
	long sum = 0;
	for (int i = 0; i < NFAST; i++) {
		check(prism_get(f[i], -1, &v, &n), "get fast");
		sum += *(const int *)v;
		prism_ref_release(f[i]);
	}
	printf("all %d fast results after %6.1f ms (sum %ld); slow calls done by then: %d of "
	       "%d\n",
	       NFAST, t_fast, sum, slow_ready, NSLOW);
	check(prism_wait(s, NSLOW, NSLOW, -1, NULL), "wait slow");
	printf("both slow results after   %6.1f ms\n", now_ms() - t0);
	for (int i = 0; i < NSLOW; i++)
		prism_ref_release(s[i]);
	prism_shutdown();
	if (slow_ready != 0 || sum != NFAST * (NFAST - 1)) {
		printf("FAILED: the fast results should all come before the slow ones\n");
		return 1;
	}
	printf("fast results did not wait for slow ones\n");
	return 0;
}
