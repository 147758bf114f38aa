/* param_server — an asynchronous parameter server, after the one in Ray's documentation.
 *
 * One actor, ParamServer, holds the weights of a linear model of house prices,
 *     price_k = w * (size_sqft / 1000) + b,
 * and K worker tasks train it at once: each step a worker pulls the weights, computes the
 * gradient of the mean squared error on a mini-batch of its shard of the data, and pushes
 * the gradient, which the actor applies at once (SGD).  There is no barrier: each worker
 * goes at its own pace, its gradient may be a few pushes stale by the time it lands, and
 * the model converges anyway.  The size is in thousands of square feet so that one
 * learning rate suits both weights.
 *
 * Two things keep the answer steady whatever the OS scheduler does with the workers.
 * Each shard pulls the weights toward its own least-squares line, so a worker that
 * falls far behind (on 2 CPUs one sometimes gets a fraction of the others' share) would
 * leave its shard under-weighted: the server bounds the delay, as parameter servers do,
 * and a worker more than SLACK steps ahead of the slowest naps until that one catches
 * up.  And the learning rate decays, lr = lr0 / (1 + pushes / T), so the weights settle
 * as an average over many mini-batches rather than jitter with the last few.
 *
 * The driver loads the data (examples/data/houses.csv, or argv[1]), puts it in the object
 * store once for all workers, and computes the least-squares fit itself.  While the
 * workers run it pulls the weights now and then and prints the loss over the whole data
 * set; at the end it compares the learned line with the least-squares one, and exits 0
 * only if the slope is within 1% and the intercept within 5% of it.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prism.h"

#ifndef PRISM_EXAMPLE_DATA
#define PRISM_EXAMPLE_DATA "examples/data/houses.csv"
#endif

#define WORKERS 4 /* worker tasks (at most MAX_WORKERS) */
#define MAX_WORKERS 64
#define STEPS 5000       /* steps per worker */
#define SLACK 32         /* steps a worker may be ahead of the slowest */
#define NAP_NS 50000     /* how long a worker ahead waits before it looks again */
#define BATCH 64         /* mini-batch size */
#define LR0 0.01         /* learning rate at first */
#define LR_DECAY 1000    /* T: the rate halves after T pushes, thirds after 2T... */
#define SIZE_UNIT 1000.0 /* the feature is the size in thousands of square feet */
#define SLOPE_TOL 0.01   /* relative tolerances against least squares */
#define INTERCEPT_TOL 0.05
#define MS 1000000LL              /* nanoseconds */
#define CALL_TIMEOUT (10000 * MS) /* for one actor call */
#define RUN_TIMEOUT (60000 * MS)  /* for the whole training */

struct house {
	double size_sqft;
	double price_k;
};

/* What pull and push return. */
struct weights {
	double w;         /* k$ per 1000 sqft */
	double b;         /* k$ */
	uint64_t pushes;  /* gradients applied */
	uint64_t slowest; /* the fewest any worker has pushed */
};

struct grad {
	double dw;
	double db;
	uint32_t worker; /* from whom: 0..workers-1 */
	uint32_t pad;
};

/* ---- the parameter server ------------------------------------------------------------ */

/* ParamServer's constructor argument. */
struct ps_config {
	double lr0;
	double decay;
	uint32_t workers;
	uint32_t pad;
};

struct param_server {
	struct weights cur;
	struct ps_config cfg;
	uint64_t pushed[MAX_WORKERS]; /* gradients from each worker */
};

/* ParamServer(config): weights start at zero. */
static int ps_new(prism_task_ctx *ctx, const prism_arg *args, size_t nargs, void **state)
{
	struct param_server *ps;
	struct ps_config cfg;
	if (nargs != 1 || args[0].len != sizeof(cfg))
		return prism_fail(ctx, "want a struct ps_config");
	memcpy(&cfg, args[0].data, sizeof(cfg));
	if (cfg.workers < 1 || cfg.workers > MAX_WORKERS || !(cfg.decay > 0))
		return prism_fail(ctx, "bad config");
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	ps->cfg = cfg;
	*state = ps;
	return 0;
}

static void ps_free(void *state)
{
	free(state);
}

/* The fewest gradients any worker has pushed. */
static uint64_t slowest(const struct param_server *ps)
{
	uint64_t min = UINT64_MAX;
	for (uint32_t i = 0; i < ps->cfg.workers; i++)
		if (ps->pushed[i] < min)
			min = ps->pushed[i];
	return min;
}

/* push(grad): one SGD step; returns the new weights. */
static int push(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct param_server *ps = state;
	struct grad g;
	if (nargs != 1 || args[0].len != sizeof(g))
		return prism_fail(ctx, "want a gradient {dw, db, worker}");
	memcpy(&g, args[0].data, sizeof(g));
	if (g.worker >= ps->cfg.workers)
		return prism_fail(ctx, "no worker %u", g.worker);
	double lr = ps->cfg.lr0 / (1 + (double)ps->cur.pushes / ps->cfg.decay);
	ps->cur.w -= lr * g.dw;
	ps->cur.b -= lr * g.db;
	ps->cur.pushes++;
	ps->pushed[g.worker]++;
	ps->cur.slowest = slowest(ps);
	return prism_return(ctx, 0, &ps->cur, sizeof(ps->cur));
}

/* pull(): the weights. */
static int pull(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct param_server *ps = state;
	(void)args;
	(void)nargs;
	return prism_return(ctx, 0, &ps->cur, sizeof(ps->cur));
}

PRISM_ACTOR(ParamServer, ps_new, ps_free);
PRISM_METHOD(ParamServer, push);
PRISM_METHOD(ParamServer, pull);

/* ---- the model ----------------------------------------------------------------------- */

static double predict(const struct weights *m, const struct house *h)
{
	return m->w * (h->size_sqft / SIZE_UNIT) + m->b;
}

/* Mean squared error over all n houses, in k$^2. */
static double loss(const struct house *houses, size_t n, const struct weights *m)
{
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		double e = predict(m, &houses[i]) - houses[i].price_k;
		sum += e * e;
	}
	return sum / (double)n;
}

/* A 64-bit LCG; the top 31 bits modulo n. */
static size_t pick(uint64_t *rng, size_t n)
{
	*rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
	return (size_t)(*rng >> 33) % n;
}

/* The gradient of the MSE over BATCH houses drawn from houses[0..n). */
static struct grad batch_grad(const struct house *houses, size_t n, uint64_t *rng,
			      const struct weights *m)
{
	struct grad g = {0, 0, 0, 0};
	for (int i = 0; i < BATCH; i++) {
		const struct house *h = &houses[pick(rng, n)];
		double e = predict(m, h) - h->price_k;
		g.dw += 2 * e * (h->size_sqft / SIZE_UNIT) / BATCH;
		g.db += 2 * e / BATCH;
	}
	return g;
}

/* ---- actor calls --------------------------------------------------------------------- */

/* Wait for a call that returns weights, and release its ref. */
static int read_weights(prism_ref r, struct weights *out)
{
	const void *data;
	size_t len;
	int rc = prism_get(r, CALL_TIMEOUT, &data, &len);
	if (rc == 0 && len != sizeof(*out))
		rc = -EPROTO;
	if (rc == 0)
		memcpy(out, data, sizeof(*out));
	prism_ref_release(r);
	return rc;
}

static int pull_weights(prism_actor ps, struct weights *out)
{
	prism_ref r;
	int rc = prism_actor_call(ps, "pull", NULL, 0, NULL, &r);
	return rc ? rc : read_weights(r, out);
}

/* ---- the worker ---------------------------------------------------------------------- */

static int arg_u32(const prism_arg *a, uint32_t *out)
{
	if (a->len != sizeof(*out))
		return -EINVAL;
	memcpy(out, a->data, sizeof(*out));
	return 0;
}

/* Wait a little for the slowest worker; PRISM_E_TIMEOUT once waited CALL_TIMEOUT in a
 * row. */
static int nap(int64_t *napped)
{
	struct timespec ts = {0, NAP_NS};
	nanosleep(&ts, NULL);
	*napped += NAP_NS;
	return *napped < CALL_TIMEOUT ? 0 : PRISM_E_TIMEOUT;
}

/* One step on weights m: a gradient on a mini-batch of the shard, pushed.  The push is
 * not waited for: the worker's next pull runs after it (one caller's calls keep their
 * order).  *last is the previous push's ref, replaced by this one's. */
static int step(prism_actor ps, const struct house *shard, size_t n, uint32_t worker,
		uint64_t *rng, const struct weights *m, prism_ref *last, bool first)
{
	struct grad g = batch_grad(shard, n, rng, m);
	g.worker = worker;
	prism_value v = prism_bytes(&g, sizeof(g));
	if (!first)
		prism_ref_release(*last);
	return prism_actor_call(ps, "push", &v, 1, NULL, last);
}

/* Pull and step, `steps` times, while other workers' calls interleave freely.  Only a
 * worker more than SLACK steps ahead of the slowest waits (naps, and pulls again). */
static int train(prism_actor ps, const struct house *shard, size_t n, uint32_t worker,
		 uint32_t steps)
{
	uint64_t rng = 0x9e3779b97f4a7c15ULL * (worker + 1);
	prism_ref last = {{{0}}};
	int64_t napped = 0;
	uint32_t s = 0;
	int rc = 0;
	while (s < steps && rc == 0) {
		struct weights m;
		rc = pull_weights(ps, &m);
		if (rc == 0 && s > m.slowest + SLACK) {
			rc = nap(&napped);
		} else if (rc == 0) {
			napped = 0;
			rc = step(ps, shard, n, worker, &rng, &m, &last, s++ == 0);
		}
	}
	struct weights end;
	if (s > 0 && rc == 0)
		return read_weights(last, &end); /* the last push landed */
	if (s > 0)
		prism_ref_release(last);
	return rc;
}

/* worker_step(handle, houses, shard, nshards, steps): returns the steps done (uint32). */
static int worker_step(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	prism_actor ps;
	uint32_t shard, nshards, steps;
	(void)nargs;
	if (args[0].len != sizeof(ps) || args[1].len % sizeof(struct house) ||
	    arg_u32(&args[2], &shard) || arg_u32(&args[3], &nshards) ||
	    arg_u32(&args[4], &steps) || shard >= nshards)
		return prism_fail(ctx, "bad arguments");
	memcpy(&ps, args[0].data, sizeof(ps));
	size_t n = args[1].len / sizeof(struct house);
	size_t lo = n * shard / nshards, hi = n * (shard + 1) / nshards;
	if (hi == lo)
		return prism_fail(ctx, "shard %u of %zu houses is empty", shard, n);
	struct house *mine = malloc((hi - lo) * sizeof(*mine)); /* an aligned copy */
	if (!mine)
		return -ENOMEM;
	memcpy(mine, (const struct house *)args[1].data + lo, (hi - lo) * sizeof(*mine));
	int rc = train(ps, mine, hi - lo, shard, steps);
	free(mine);
	if (rc)
		return prism_fail(ctx, "shard %u: %s (%s)", shard, prism_strerror(rc),
				  prism_last_error());
	return prism_return(ctx, 0, &steps, sizeof(steps));
}
PRISM_REMOTE_ARITY(worker_step, 5);

/* ---- the driver ---------------------------------------------------------------------- */

/* Read "size_sqft,price_k" rows after a header line into *out (malloc()ed). */
static int read_rows(FILE *f, struct house **out, size_t *n)
{
	size_t cap = 1024;
	struct house *h = malloc(cap * sizeof(*h));
	if (!h || fscanf(f, "%*[^\n]\n") != 0) /* the header */
		goto fail;
	while (fscanf(f, "%lf,%lf", &h[*n].size_sqft, &h[*n].price_k) == 2) {
		if (++*n < cap)
			continue;
		struct house *more = realloc(h, (cap *= 2) * sizeof(*h));
		if (!more)
			goto fail;
		h = more;
	}
	if (!feof(f) || *n < 2)
		goto fail;
	*out = h;
	return 0;
fail:
	free(h);
	return -EINVAL;
}

static int load_csv(const char *path, struct house **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int rc = read_rows(f, out, n);
	fclose(f);
	return rc;
}

/* The least-squares line, in the model's units. */
static struct weights least_squares(const struct house *h, size_t n)
{
	double mx = 0, my = 0, sxy = 0, sxx = 0;
	for (size_t i = 0; i < n; i++) {
		mx += h[i].size_sqft / SIZE_UNIT / (double)n;
		my += h[i].price_k / (double)n;
	}
	for (size_t i = 0; i < n; i++) {
		double dx = h[i].size_sqft / SIZE_UNIT - mx;
		sxy += dx * (h[i].price_k - my);
		sxx += dx * dx;
	}
	struct weights m = {.w = sxy / sxx, .b = my - sxy / sxx * mx};
	return m;
}

static int start_workers(prism_actor ps, prism_ref data, prism_ref *refs)
{
	/* The workers mostly wait on the actor, so two share a CPU: all run at once even
	 * on a small machine. */
	prism_call_opts o = {.num_cpus = 0.5};
	uint32_t k = WORKERS, steps = STEPS;
	for (uint32_t i = 0; i < k; i++) {
		prism_value a[] = {prism_bytes(&ps, sizeof(ps)), prism_refval(data),
				   prism_bytes(&i, sizeof(i)), prism_bytes(&k, sizeof(k)),
				   prism_bytes(&steps, sizeof(steps))};
		int rc = prism_submit("worker_step", a, 5, &o, &refs[i]);
		if (rc)
			return rc;
	}
	return 0;
}

static void print_loss(const struct house *h, size_t n, const struct weights *m)
{
	printf("  after %5llu pushes: loss %9.1f k$^2\n", (unsigned long long)m->pushes,
	       loss(h, n, m));
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Until the workers end: pull every millisecond or so, and print the loss once past 25,
 * 100, 400... pushes.  Returns 0 when all ended in time. */
static int watch(prism_actor ps, const prism_ref *refs, const struct house *h, size_t n)
{
	uint64_t mark = 25;
	for (int64_t end = now_ns() + RUN_TIMEOUT; now_ns() < end;) {
		if (prism_wait(refs, WORKERS, WORKERS, MS, NULL) == WORKERS)
			return 0;
		struct weights m;
		int rc = pull_weights(ps, &m);
		if (rc)
			return rc;
		if (m.pushes < mark)
			continue;
		print_loss(h, n, &m);
		while (mark <= m.pushes)
			mark *= 4;
	}
	return PRISM_E_TIMEOUT;
}

/* Check every worker did all its steps. */
static int collect(const prism_ref *refs)
{
	int rc = 0;
	for (int i = 0; i < WORKERS; i++) {
		const void *d;
		size_t len;
		uint32_t steps = 0;
		int r = prism_get(refs[i], CALL_TIMEOUT, &d, &len);
		if (r == 0 && len == sizeof(steps))
			memcpy(&steps, d, sizeof(steps));
		if (r || steps != STEPS) {
			fprintf(stderr, "param_server: worker %d: %s\n", i,
				r == PRISM_E_TASK_FAILED ? (const char *)d : prism_strerror(r));
			rc = rc ? rc : r ? r : -EPROTO;
		}
	}
	return rc;
}

/* Print the learned line against least squares; true when within the tolerances. */
static bool report(const struct weights *m, const struct weights *ls)
{
	double ds = fabs(m->w - ls->w) / fabs(ls->w), di = fabs(m->b - ls->b) / fabs(ls->b);
	bool ok = ds <= SLOPE_TOL && di <= INTERCEPT_TOL;
	printf("learned: price = %.4f * size + %.1f ; least squares: price = %.4f * size + "
	       "%.1f\n",
	       m->w / SIZE_UNIT, m->b, ls->w / SIZE_UNIT, ls->b);
	printf("converged: %s (slope off by %.2f%%, intercept by %.2f%%; tolerance: slope "
	       "within %.0f%%, intercept within %.0f%% of least squares)\n",
	       ok ? "yes" : "no", 100 * ds, 100 * di, 100 * SLOPE_TOL, 100 * INTERCEPT_TOL);
	return ok;
}

/* Train with the data in houses[0..n); 0 when the model converged. */
static int run(const struct house *h, size_t n)
{
	struct weights ls = least_squares(h, n), m = {0, 0, 0, 0};
	struct ps_config cfg = {.lr0 = LR0, .decay = LR_DECAY, .workers = WORKERS};
	prism_value cv = prism_bytes(&cfg, sizeof(cfg));
	prism_actor ps;
	prism_ref data, refs[WORKERS];
	memset(refs, 0, sizeof(refs));
	int rc = prism_actor_create("ParamServer", &cv, 1, NULL, &ps);
	if (rc)
		return rc;
	rc = prism_put(h, n * sizeof(*h), &data);
	if (rc) {
		prism_actor_kill(ps);
		return rc;
	}
	printf("%zu houses; least-squares loss %.1f k$^2; %d workers x %d steps, batch %d, "
	       "learning rate %g / (1 + pushes / %d)\n",
	       n, loss(h, n, &ls), WORKERS, STEPS, BATCH, LR0, LR_DECAY);
	print_loss(h, n, &m);
	rc = start_workers(ps, data, refs);
	prism_ref_release(data); /* the tasks hold it now */
	if (rc == 0)
		rc = watch(ps, refs, h, n);
	if (rc == 0)
		rc = collect(refs);
	for (int i = 0; i < WORKERS; i++)
		prism_ref_release(refs[i]); /* a nil ref (not submitted) is refused, harmless */
	if (rc == 0)
		rc = pull_weights(ps, &m);
	if (rc == 0) {
		print_loss(h, n, &m);
		rc = report(&m, &ls) ? 0 : 1;
	}
	prism_actor_kill(ps);
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : PRISM_EXAMPLE_DATA;
	int rc = prism_init(NULL);
	if (rc) {
		fprintf(stderr, "param_server: prism_init: %s (%s)\n", prism_strerror(rc),
			prism_last_error());
		return 1;
	}
	struct house *h;
	size_t n;
	rc = load_csv(path, &h, &n);
	if (rc) {
		fprintf(stderr, "param_server: %s: %s\n", path,
			rc == -EINVAL ? "not a CSV of size_sqft,price_k rows" : strerror(-rc));
		prism_shutdown();
		return 1;
	}
	rc = run(h, n);
	if (rc < 0)
		fprintf(stderr, "param_server: %s (%s)\n", prism_strerror(rc),
			prism_last_error());
	free(h);
	prism_shutdown();
	return rc ? 1 : 0;
}
