/* parallel_map — the same N independent pieces of work run in the driver, one after the
 * other, and then as N tasks on the node's workers: the results must match, and the
 * tasks finish sooner by up to the number of CPUs.
 *
 * The work: count the primes in N consecutive ranges of integers (trial division, so it
 * is honest CPU work with no shared state).  Exits 1 if the two answers differ.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "prism.h"

#define CHUNK 150000

static int64_t count_primes(int64_t lo, int64_t hi)
{
	int64_t count = 0;
	for (int64_t n = lo < 2 ? 2 : lo; n < hi; n++) {
		int prime = 1;
		for (int64_t d = 2; d * d <= n; d++)
			if (n % d == 0) {
				prime = 0;
				break;
			}
		count += prime;
	}
	return count;
}

static int primes_in(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	int64_t chunk;
	(void)nargs;
	if (args[0].len != sizeof(chunk))
		return prism_fail(ctx, "want an 8-byte chunk index");
	chunk = *(const int64_t *)args[0].data;
	int64_t c = count_primes(chunk * CHUNK, (chunk + 1) * CHUNK);
	return prism_return(ctx, 0, &c, sizeof(c));
}
PRISM_REMOTE_ARITY(primes_in, 1);

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	int64_t n = argc > 1 ? atoll(argv[1]) : 16;
	if (n < 1 || n > 4096) {
		fprintf(stderr, "usage: parallel_map [CHUNKS (1-4096, default 16)]\n");
		return 2;
	}
	int rc = prism_init(NULL);
	if (rc) {
		fprintf(stderr, "parallel_map: prism_init: %s (%s)\n", prism_strerror(rc),
			prism_last_error());
		return 1;
	}
	double t0 = now_s();
	int64_t local = 0;
	for (int64_t i = 0; i < n; i++)
		local += count_primes(i * CHUNK, (i + 1) * CHUNK);
	double t_local = now_s() - t0;

	prism_ref *refs = calloc((size_t)n, sizeof(*refs));
	t0 = now_s();
	for (int64_t i = 0; i < n && refs; i++) {
		prism_value a = prism_bytes(&i, sizeof(i));
		rc = prism_submit("primes_in", &a, 1, NULL, &refs[i]);
		if (rc) {
			fprintf(stderr, "submit: %s\n", prism_last_error());
			return 1;
		}
	}
	int64_t remote = 0;
	for (int64_t i = 0; i < n && refs; i++) {
		const void *v;
		size_t len;
		rc = prism_get(refs[i], -1, &v, &len);
		if (rc) {
			fprintf(stderr, "get: %s\n",
				rc == PRISM_E_TASK_FAILED ? (const char *)v
							  : prism_strerror(rc));
			return 1;
		}
		remote += *(const int64_t *)v;
		prism_ref_release(refs[i]);
	}
	double t_remote = now_s() - t0;
	free(refs);
	prism_shutdown();
	printf("primes below %lld: %lld in the driver (%.2f s), %lld as %lld tasks (%.2f s): "
	       "speed-up %.2fx\n",
	       (long long)(n * CHUNK), (long long)local, t_local, (long long)remote,
	       (long long)n, t_remote, t_local / t_remote);
	return local == remote ? 0 : 1;
}
