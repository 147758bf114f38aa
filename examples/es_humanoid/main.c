/* es_humanoid — evolution strategies (Salimans et al. 2017) on the MuJoCo humanoid, with
 * prism: the algorithm and simulation of prism_es (es.h), its evaluations spread over
 * actors.  The OpenMPI peer bench/peers/es_mpi.c runs the same algorithm with the same
 * options; `prism-bench es` runs both for the same budget.
 *
 *   es_humanoid [--timesteps N] [--workers N] [--json] [--save PATH] ...   (--help)
 *
 * How the work moves:
 *   - The driver fills the noise table (25M floats, 100 MB by default) once and puts it
 *     into the object store.  Every call names it by ref, and every actor reads it where
 *     it lies in the store (a pointer into the node's shared arena): nothing copies it.
 *   - Workers are actors of class EsWorker, one process each, each holding a MuJoCo model
 *     and an es_worker (one environment, one policy).  The constructor loads the model.
 *   - Each generation the driver puts theta (108 KB for the default 2 x 64 MLP) into the
 *     store, and beside it one small object holding the generation's header, the
 *     observation normalisation and the tasks (noise offset and episode seed per pair).
 *     Then it hands out slices of the pairs, keeping two calls queued per actor so that
 *     none waits for the driver between slices; whichever actor finishes first gets the
 *     next slice, so a worker that drew long episodes does not hold up the generation
 *     the way a static split does.  Slices are guided: the pairs left over twice the
 *     actors, so calls are few while much is left and one pair each at the end
 *     (--pairs-per-call fixes their size instead).  Each call answers with its
 *     pair results and its observation sums (inline: a few KB), which the driver merges.
 *   - The master update (centred ranks, gradient from the noise table, Adam) runs in the
 *     driver, as es_generation() does it for the MPI peer too.
 * A run is determined by its seed whatever evaluates it, up to the order in which the
 * observation sums are added.
 *
 * prism_init() starts an embedded node, or attaches to PRISM_ADDRESS when it is set.
 *
 * Output: a line per generation and a summary, or with --json one JSON object per line
 * (../../../shared/BENCHMARKS.md): es/prism_timesteps_per_s (with the timesteps, episodes,
 * wall and setup seconds, episodes/s, the time breakdown and the reward curve: the mean
 * return of each generation) and es/prism_episodes_per_s.  Exit status 0; 2 for bad
 * options; 1 for anything else (a missing model names the Debian package).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "es.h"
#include "prism.h"

#define TAG "es_humanoid"
#define ERR_LEN 512
#define MAX_WORKERS 256             /* actor handles a process may hold */
#define DEPTH 2                     /* calls queued per actor */
#define CALL_TIMEOUT_NS (600 * NS)  /* one slice: at most pairs x 2 x max_steps steps */
#define SETUP_TIMEOUT_NS (120 * NS) /* an actor loading its model */
#define NS 1000000000LL
#define MIB (1024ull * 1024)

/* ---- what travels ------------------------------------------------------------------- */

/* EsWorker's first constructor argument; the second is the model path, NUL-terminated. */
struct actor_cfg {
	uint32_t obs; /* ES_OBS_* */
	uint32_t layers, width;
	uint32_t pad;
	uint64_t nparams; /* what the driver's policy has: checked */
};

/* The head of a generation's meta object; then mean[obs_dim] and std[obs_dim] when
 * has_norm, then tasks[npairs].  40 bytes, so the tasks stay 8-byte aligned. */
struct gen_meta {
	uint64_t generation;
	uint64_t nparams;
	uint32_t obs_dim, npairs, max_steps, has_norm;
	float sigma;
	uint32_t pad;
};

/* What eval is asked: pairs [first, first + count) of the generation. */
struct slice {
	uint32_t first, count;
};

/* The head of eval's answer; then results[count], then nstat doubles of observation
 * sums (es_obstat_raw's layout; 0 when the generation has no normalisation). */
struct reply_hdr {
	uint32_t first, count;
	uint32_t nstat, pad;
	uint64_t busy_ns; /* spent in es_worker_eval */
};

/* ---- the actor ---------------------------------------------------------------------- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

struct es_actor {
	es_env_model *model;
	es_worker *w;
	/* A view of the store's table, set by every call: prism pins an argument's bytes
	 * only while the call runs, so the view is not used between calls. */
	struct es_noise noise;
	es_obstat *obstat;
	size_t nparams;
	uint32_t obs_dim;
	uint8_t *reply;
	size_t reply_cap;
};

static void actor_free(void *state)
{
	struct es_actor *a = state;
	if (!a)
		return;
	free(a->reply);
	es_obstat_destroy(a->obstat);
	es_worker_destroy(a->w);
	es_env_model_destroy(a->model);
	free(a);
}

/* Model, worker and statistics for cfg; the reason of a failure into err. */
static int actor_build(struct es_actor *a, const struct actor_cfg *cfg, const char *path,
		       char *err, size_t errsz)
{
	struct es_env_config ec;
	struct es_policy_arch arch;
	es_env_config_default(&ec);
	ec.model_path = path;
	ec.obs = cfg->obs;
	int rc = es_env_model_load(&ec, &a->model, err, errsz);
	if (rc)
		return rc;
	es_arch_for_env(a->model, cfg->layers, cfg->width, &arch);
	if ((rc = es_worker_create(a->model, &arch, &a->noise, &a->w)) < 0) {
		snprintf(err, errsz, "cannot create a worker: %s", prism_strerror(rc));
		return rc;
	}
	a->nparams = es_policy_nparams(es_worker_policy(a->w));
	a->obs_dim = arch.obs_dim;
	if (a->nparams != cfg->nparams) {
		snprintf(err, errsz,
			 "the policy has %zu parameters here, %" PRIu64 " in the driver",
			 a->nparams, cfg->nparams);
		return -EINVAL;
	}
	if ((rc = es_obstat_create(a->obs_dim, &a->obstat)) < 0)
		snprintf(err, errsz, "no memory for observation statistics");
	return rc;
}

/* EsWorker(cfg, model_path). */
static int actor_new(prism_task_ctx *ctx, const prism_arg *args, size_t nargs, void **state)
{
	struct actor_cfg cfg;
	char err[ERR_LEN] = "";
	if (nargs != 2 || args[0].len != sizeof(cfg) || args[1].len < 2 ||
	    ((const char *)args[1].data)[args[1].len - 1] != '\0')
		return prism_fail(ctx, "want (struct actor_cfg, model path)");
	memcpy(&cfg, args[0].data, sizeof(cfg));
	struct es_actor *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	int rc = actor_build(a, &cfg, args[1].data, err, sizeof(err));
	if (rc) {
		actor_free(a);
		return prism_fail(ctx, "%s", err);
	}
	*state = a;
	return 0;
}

/* ready(): the parameter count, once the constructor has run. */
static int ready(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct es_actor *a = state;
	uint64_t n = a->nparams;
	(void)args;
	(void)nargs;
	return prism_return(ctx, 0, &n, sizeof(n));
}

/* The generation in a meta object (borrowed bytes) and theta, checked against the
 * worker, into *in. */
static int read_gen(const struct es_actor *a, const prism_arg *theta, const prism_arg *meta,
		    struct es_gen_input *in)
{
	struct gen_meta h;
	if (meta->len < sizeof(h) || (uintptr_t)meta->data % 8 || (uintptr_t)theta->data % 4)
		return -EINVAL;
	memcpy(&h, meta->data, sizeof(h));
	size_t norm = h.has_norm ? 2 * (size_t)h.obs_dim * sizeof(float) : 0;
	if (h.nparams != a->nparams || h.obs_dim != a->obs_dim || h.has_norm > 1 ||
	    theta->len != a->nparams * sizeof(float) ||
	    meta->len != sizeof(h) + norm + (size_t)h.npairs * sizeof(struct es_task))
		return -EINVAL;
	const uint8_t *p = (const uint8_t *)meta->data + sizeof(h);
	*in = (struct es_gen_input){.generation = h.generation,
				    .theta = theta->data,
				    .nparams = a->nparams,
				    .ob_mean = h.has_norm ? (const float *)p : NULL,
				    .ob_std = h.has_norm ? (const float *)p + h.obs_dim : NULL,
				    .obs_dim = h.obs_dim,
				    .tasks = (const struct es_task *)(p + norm),
				    .npairs = h.npairs,
				    .sigma = h.sigma,
				    .max_steps = h.max_steps};
	return 0;
}

static int reply_reserve(struct es_actor *a, size_t len)
{
	if (len <= a->reply_cap)
		return 0;
	uint8_t *r = realloc(a->reply, len);
	if (!r)
		return -ENOMEM;
	a->reply = r;
	a->reply_cap = len;
	return 0;
}

/* eval(noise, theta, meta, slice): the slice's pairs, answered with a reply_hdr, the
 * results and the observation sums.  The noise table and theta are read in the store. */
static int eval(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct es_actor *a = state;
	struct es_gen_input in;
	struct slice s;
	if (nargs != 4 || args[3].len != sizeof(s) || args[0].len % sizeof(float) ||
	    (uintptr_t)args[0].data % sizeof(float))
		return prism_fail(ctx, "want (noise, theta, meta, slice)");
	if (read_gen(a, &args[1], &args[2], &in) < 0)
		return prism_fail(ctx, "theta or the generation does not fit this worker");
	memcpy(&s, args[3].data, sizeof(s));
	es_noise_view(args[0].data, args[0].len / sizeof(float), &a->noise);
	size_t nstat = 0;
	if (in.ob_mean)
		es_obstat_raw(a->obstat, &nstat);
	size_t res_len = (size_t)s.count * sizeof(struct es_pair_result);
	size_t len = sizeof(struct reply_hdr) + res_len + nstat * sizeof(double);
	if (s.count > in.npairs || reply_reserve(a, len) < 0)
		return prism_fail(ctx, "bad slice, or no memory for %zu bytes", len);
	es_obstat_clear(a->obstat);
	int64_t t0 = now_ns();
	int rc = es_worker_eval(a->w, &in, s.first, s.count,
				(struct es_pair_result *)(a->reply + sizeof(struct reply_hdr)),
				in.ob_mean ? a->obstat : NULL);
	if (rc < 0)
		return prism_fail(ctx, "pairs %u+%u: %s", s.first, s.count, prism_strerror(rc));
	struct reply_hdr h = {.first = s.first,
			      .count = s.count,
			      .nstat = (uint32_t)nstat,
			      .busy_ns = (uint64_t)(now_ns() - t0)};
	memcpy(a->reply, &h, sizeof(h));
	if (nstat)
		memcpy(a->reply + sizeof(h) + res_len, es_obstat_raw(a->obstat, &nstat),
		       nstat * sizeof(double));
	return prism_return(ctx, 0, a->reply, len);
}

PRISM_ACTOR(EsWorker, actor_new, actor_free);
PRISM_METHOD(EsWorker, ready);
PRISM_METHOD(EsWorker, eval);

/* ---- options ------------------------------------------------------------------------ */

/* The options shared with es_mpi (cli.h), and this driver's own. */
struct opts {
	struct es_cli_opts c;
	uint32_t workers;
	uint32_t pairs_per_call; /* 0: guided (slices shrink as the generation ends) */
};

static void usage(FILE *f)
{
	static const struct es_cli_usage_line own[] = {
		{.after = "--timesteps",
		 .text = "  --workers N            actors evaluating perturbations "
			 "(default: one per CPU)\n"},
		{.after = "--pairs-per-gen",
		 .text = "  --pairs-per-call N     pairs per actor call "
			 "(default: guided, the pairs left\n"
			 "                         over 2 x workers, "
			 "so the last calls take one pair)\n"},
	};
	fputs("usage: es_humanoid [options]\n", f);
	es_cli_usage(f, own, sizeof(own) / sizeof(own[0]));
	fputs("Runs on an embedded node, or on the node at PRISM_ADDRESS when it is set.\n", f);
}

/* This driver's own options, as es_cli_parse() answers: 1 when the option took val,
 * -EINVAL for a bad or missing val, -ENOENT when opt is not one of them. */
static int parse_own(const char *opt, const char *val, struct opts *o)
{
	int rc;
	if (strcmp(opt, "--workers") == 0)
		rc = es_cli_parse_u32(val, 1, MAX_WORKERS, &o->workers);
	else if (strcmp(opt, "--pairs-per-call") == 0)
		rc = es_cli_parse_u32(val, 1, 1u << 20, &o->pairs_per_call);
	else
		return -ENOENT;
	return rc ? rc : 1;
}

static uint32_t cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (uint32_t)n;
}

/* 0 to run, 1 for --help (printed), 2 for bad options (the reason printed). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.workers = cpus()};
	es_cli_defaults(&o->c);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 1;
		}
		int rc = parse_own(a, v, o);
		if (rc == -ENOENT)
			rc = es_cli_parse(&o->c, a, v);
		if (rc < 0) {
			es_cli_print_error(stderr, TAG, rc, a, v);
			usage(stderr);
			return 2;
		}
		i += rc;
	}
	return 0;
}

/* ---- the driver --------------------------------------------------------------------- */

/* A call in flight: its ref and whom it went to. */
struct flight {
	prism_ref ref;
	uint32_t actor;
};

struct driver {
	const struct opts *o;
	prism_actor *actors;
	uint32_t nactors;
	uint32_t per_call;   /* pairs per call, or 0: guided */
	prism_ref noise;     /* the table in the store, held for the whole run */
	struct es_noise tab; /* the driver's view of it (for the gradient) */
	uint8_t *meta;       /* the generation's meta object, assembled here */
	size_t meta_cap;
	struct flight *fl; /* nactors * DEPTH */
	prism_ref *wrefs;
	bool *wready;
	/* Time breakdown over the run. */
	uint64_t eval_ns; /* wall time inside the evaluation callback */
	uint64_t busy_ns; /* sum over calls of the actors' time in es_worker_eval */
	uint64_t calls;
};

static int fail_call(int rc, const void *data, size_t len, const char *what)
{
	if ((rc == PRISM_E_TASK_FAILED || rc == PRISM_E_ACTOR_DIED) && data)
		fprintf(stderr, TAG ": %s: %.*s\n", what, (int)len, (const char *)data);
	else
		fprintf(stderr, TAG ": %s: %s (%s)\n", what, prism_strerror(rc),
			prism_last_error());
	return rc;
}

/* Put theta and the generation's meta object into the store. */
static int publish(struct driver *d, const struct es_gen_input *in, prism_ref *theta,
		   prism_ref *meta)
{
	struct gen_meta h = {.generation = in->generation,
			     .nparams = in->nparams,
			     .obs_dim = in->obs_dim,
			     .npairs = in->npairs,
			     .max_steps = in->max_steps,
			     .has_norm = in->ob_mean != NULL,
			     .sigma = in->sigma};
	size_t norm = h.has_norm ? (size_t)in->obs_dim * sizeof(float) : 0;
	size_t len = sizeof(h) + 2 * norm + (size_t)in->npairs * sizeof(struct es_task);
	if (len > d->meta_cap) {
		uint8_t *m = realloc(d->meta, len);
		if (!m)
			return -ENOMEM;
		d->meta = m;
		d->meta_cap = len;
	}
	memcpy(d->meta, &h, sizeof(h));
	if (norm) {
		memcpy(d->meta + sizeof(h), in->ob_mean, norm);
		memcpy(d->meta + sizeof(h) + norm, in->ob_std, norm);
	}
	memcpy(d->meta + sizeof(h) + 2 * norm, in->tasks, len - sizeof(h) - 2 * norm);
	int rc = prism_put(in->theta, in->nparams * sizeof(float), theta);
	if (rc)
		return fail_call(rc, NULL, 0, "cannot put theta");
	if ((rc = prism_put(d->meta, len, meta)) != 0) {
		prism_ref_release(*theta);
		return fail_call(rc, NULL, 0, "cannot put the generation");
	}
	return 0;
}

/* Send the next slice of pairs from *next to actor k, as in-flight entry *f. */
static int dispatch(struct driver *d, prism_ref theta, prism_ref meta, uint32_t npairs,
		    uint32_t *next, uint32_t k, struct flight *f)
{
	/* Guided: the pairs left over twice the actors (each has DEPTH calls queued), so
	 * calls are few while much is left and a single pair at the end, when an uneven
	 * finish would leave actors idle. */
	uint32_t left = npairs - *next;
	struct slice s = {.first = *next,
			  .count = (left + 2 * d->nactors - 1) / (2 * d->nactors)};
	if (d->per_call)
		s.count = d->per_call < left ? d->per_call : left;
	prism_value args[] = {prism_refval(d->noise), prism_refval(theta), prism_refval(meta),
			      prism_bytes(&s, sizeof(s))};
	int rc = prism_actor_call(d->actors[k], "eval", args, 4, NULL, &f->ref);
	if (rc)
		return fail_call(rc, NULL, 0, "cannot call a worker");
	f->actor = k;
	*next += s.count;
	d->calls++;
	return 0;
}

/* Take a finished call's answer into out and obstat (NULL without normalisation). */
static int absorb(struct driver *d, prism_ref ref, uint32_t npairs, struct es_pair_result *out,
		  es_obstat *obstat)
{
	const void *data;
	size_t len, nstat = 0;
	struct reply_hdr h;
	int rc = prism_get(ref, CALL_TIMEOUT_NS, &data, &len);
	if (rc)
		return fail_call(rc, data, len, "a worker failed");
	double *sum = obstat ? es_obstat_raw(obstat, &nstat) : NULL;
	if (len < sizeof(h))
		return PRISM_E_CORRUPT;
	memcpy(&h, data, sizeof(h));
	size_t res_len = (size_t)h.count * sizeof(*out);
	if (h.first > npairs || h.count > npairs - h.first || h.nstat != nstat ||
	    len != sizeof(h) + res_len + nstat * sizeof(double))
		return PRISM_E_CORRUPT;
	const uint8_t *p = (const uint8_t *)data + sizeof(h);
	memcpy(out + h.first, p, res_len);
	for (size_t i = 0; i < nstat; i++) {
		double v;
		memcpy(&v, p + res_len + i * sizeof(double), sizeof(v));
		sum[i] += v;
	}
	d->busy_ns += h.busy_ns;
	return 0;
}

/* Wait for at least one call in flight; the finished ones are absorbed, their actors
 * given the next slices, and the list compacted. */
static int collect_some(struct driver *d, prism_ref theta, prism_ref meta, uint32_t npairs,
			uint32_t *next, uint32_t *nfl, struct es_pair_result *out,
			es_obstat *obstat)
{
	for (uint32_t i = 0; i < *nfl; i++)
		d->wrefs[i] = d->fl[i].ref;
	int n = prism_wait(d->wrefs, *nfl, 1, CALL_TIMEOUT_NS, d->wready);
	if (n <= 0)
		return fail_call(n ? n : PRISM_E_TIMEOUT, NULL, 0, "waiting for the workers");
	uint32_t keep = 0;
	int rc = 0;
	for (uint32_t i = 0; i < *nfl; i++) {
		struct flight f = d->fl[i];
		if (!d->wready[i] || rc) {
			d->fl[keep++] = f;
			continue;
		}
		rc = absorb(d, f.ref, npairs, out, obstat);
		prism_ref_release(f.ref);
		if (!rc && *next < npairs)
			rc = dispatch(d, theta, meta, npairs, next, f.actor, &d->fl[keep++]);
	}
	*nfl = keep;
	return rc;
}

/* es_eval_fn: the generation's pairs over the actors, DEPTH calls queued on each. */
static int prism_eval(void *ctx, const struct es_gen_input *in, struct es_pair_result *out,
		      es_obstat *obstat)
{
	struct driver *d = ctx;
	prism_ref theta, meta;
	int64_t t0 = now_ns();
	int rc = publish(d, in, &theta, &meta);
	if (rc)
		return rc;
	uint32_t next = 0, nfl = 0;
	for (uint32_t r = 0; r < DEPTH && !rc; r++)
		for (uint32_t k = 0; k < d->nactors && next < in->npairs && !rc; k++)
			if ((rc = dispatch(d, theta, meta, in->npairs, &next, k,
					   &d->fl[nfl])) == 0)
				nfl++;
	while (nfl && !rc)
		rc = collect_some(d, theta, meta, in->npairs, &next, &nfl, out, obstat);
	for (uint32_t i = 0; i < nfl; i++) /* only after a failure */
		prism_ref_release(d->fl[i].ref);
	prism_ref_release(meta);
	prism_ref_release(theta);
	d->eval_ns += (uint64_t)(now_ns() - t0);
	return rc;
}

/* ---- setup -------------------------------------------------------------------------- */

struct run {
	struct opts o;
	es_env_model *model; /* the driver's: dimensions, bounds, the saved policy */
	es_policy *pol;
	size_t nparams;
	uint32_t obs_dim;
	struct driver d;
	double setup_s;
};

/* The model and the policy in the driver; failures are reported here.  1 for a failure
 * (the model), 2 for options that do not fit the policy. */
static int load_local(struct run *r)
{
	char err[ERR_LEN];
	struct es_env_config ec;
	struct es_policy_arch arch;
	es_env_config_default(&ec);
	ec.model_path = r->o.c.model;
	ec.obs = r->o.c.obs;
	if (es_env_model_load(&ec, &r->model, err, sizeof(err)) != 0) {
		fprintf(stderr, TAG ": %s\n", err);
		return 1;
	}
	es_arch_for_env(r->model, r->o.c.layers, r->o.c.width, &arch);
	uint32_t na = es_env_act_dim(r->model);
	float *b = malloc(2 * (size_t)na * sizeof(float));
	int rc = b ? 0 : -ENOMEM;
	if (b)
		es_env_ctrlrange(r->model, b, b + na);
	if (!rc)
		rc = es_policy_create(&arch, b, b + na, &r->pol);
	free(b);
	if (rc) {
		fprintf(stderr, TAG ": cannot create the policy: %s\n", prism_strerror(rc));
		return 1;
	}
	r->nparams = es_policy_nparams(r->pol);
	r->obs_dim = arch.obs_dim;
	if (r->o.c.noise_floats < r->nparams) {
		fprintf(stderr,
			TAG ": --noise-floats %zu is less than the policy's %zu parameters\n",
			r->o.c.noise_floats, r->nparams);
		return 2;
	}
	return 0;
}

/* The noise table, filled here once and put into the store; the driver keeps a view. */
static int put_noise(struct run *r)
{
	struct es_noise own;
	const void *data;
	size_t len;
	int rc = es_noise_create(r->o.c.noise_floats, r->o.c.es.seed, &own);
	if (rc)
		return fail_call(rc, NULL, 0, "cannot make the noise table");
	rc = prism_put(own.data, own.n * sizeof(float), &r->d.noise);
	es_noise_destroy(&own);
	if (rc == PRISM_E_TOO_BIG || rc == PRISM_E_STORE_FULL)
		fprintf(stderr,
			TAG ": the noise table (%zu bytes) does not fit in the node's object "
			    "store: give the node more (prism start --object_store_memory) or "
			    "the table less (--noise-floats)\n",
			r->o.c.noise_floats * sizeof(float));
	if (rc)
		return fail_call(rc, NULL, 0, "cannot put the noise table in the object store");
	if ((rc = prism_get(r->d.noise, -1, &data, &len)) != 0)
		return fail_call(rc, data, len, "cannot read the noise table back");
	es_noise_view(data, len / sizeof(float), &r->d.tab);
	return 0;
}

/* The actors, each asked once whether it is up (its constructor loads the model). */
static int start_actors(struct run *r)
{
	struct driver *d = &r->d;
	const char *path = r->o.c.model ? r->o.c.model : es_env_default_model_path();
	struct actor_cfg cfg = {.obs = r->o.c.obs,
				.layers = r->o.c.layers,
				.width = r->o.c.width,
				.nparams = r->nparams};
	prism_value args[] = {prism_bytes(&cfg, sizeof(cfg)),
			      prism_bytes(path, strlen(path) + 1)};
	int rc = 0;
	for (uint32_t k = 0; k < d->nactors && !rc; k++)
		if ((rc = prism_actor_create("EsWorker", args, 2, NULL, &d->actors[k])) != 0)
			return fail_call(rc, NULL, 0, "cannot create a worker actor");
	for (uint32_t k = 0; k < d->nactors && !rc; k++)
		rc = prism_actor_call(d->actors[k], "ready", NULL, 0, NULL, &d->fl[k].ref);
	if (rc)
		return fail_call(rc, NULL, 0, "cannot call a worker");
	for (uint32_t k = 0; k < d->nactors; k++) {
		const void *data;
		size_t len;
		int grc = prism_get(d->fl[k].ref, SETUP_TIMEOUT_NS, &data, &len);
		if (grc && !rc)
			rc = fail_call(grc, data, len, "a worker did not start");
		prism_ref_release(d->fl[k].ref);
	}
	return rc;
}

static int setup(struct run *r)
{
	struct driver *d = &r->d;
	d->o = &r->o;
	d->nactors = r->o.workers;
	d->per_call = r->o.pairs_per_call;
	d->actors = calloc(d->nactors, sizeof(*d->actors));
	d->fl = calloc((size_t)d->nactors * DEPTH, sizeof(*d->fl));
	d->wrefs = calloc((size_t)d->nactors * DEPTH, sizeof(*d->wrefs));
	d->wready = calloc((size_t)d->nactors * DEPTH, sizeof(*d->wready));
	if (!d->actors || !d->fl || !d->wrefs || !d->wready) {
		fprintf(stderr, TAG ": out of memory\n");
		return -ENOMEM;
	}
	int64_t t0 = now_ns();
	int rc = put_noise(r);
	if (!rc)
		rc = start_actors(r);
	r->setup_s = (double)(now_ns() - t0) / 1e9;
	return rc;
}

static void teardown(struct run *r)
{
	struct driver *d = &r->d;
	/* The actors end with this process (their owner) at prism_shutdown(). */
	if (!prism_id_is_nil(d->noise.id))
		prism_ref_release(d->noise);
	free(d->wready);
	free(d->wrefs);
	free(d->fl);
	free(d->actors);
	free(d->meta);
	es_policy_destroy(r->pol);
	es_env_model_destroy(r->model);
}

/* ---- training and the report -------------------------------------------------------- */

struct curve {
	double *v;
	size_t n, cap;
};

static int curve_add(struct curve *c, double x)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		double *v = realloc(c->v, cap * sizeof(double));
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = x;
	return 0;
}

static void report_text(const struct run *r, const struct es_gen_stats *st,
			const struct curve *cv, double wall)
{
	const struct driver *d = &r->d;
	printf(TAG ": %u workers, %" PRIu64 " timesteps, %" PRIu64
		   " episodes, %zu generations in %.2f s (setup %.2f s apart)\n"
		   "        %.0f timesteps/s, %.1f episodes/s; mean return %.1f -> %.1f\n"
		   "        workers busy %.0f%% of the run; master %.3f s; %" PRIu64
		   " calls (%.1f pairs each)\n",
	       d->nactors, st->total_timesteps, st->total_episodes, cv->n, wall, r->setup_s,
	       (double)st->total_timesteps / wall, (double)st->total_episodes / wall, cv->v[0],
	       cv->v[cv->n - 1], 100.0 * (double)d->busy_ns / 1e9 / (wall * d->nactors),
	       wall - (double)d->eval_ns / 1e9, d->calls,
	       (double)r->o.c.es.pairs_per_gen * (double)cv->n / (double)d->calls);
}

static void report_json(const struct run *r, const struct es_gen_stats *st,
			const struct curve *cv, double wall)
{
	const struct driver *d = &r->d;
	double tps = (double)st->total_timesteps / wall;
	double eps = (double)st->total_episodes / wall;
	printf("{\"suite\":\"es\",\"case\":\"prism_timesteps_per_s\",\"unit\":\"timesteps/s\","
	       "\"value\":%.1f,\"peer\":\"prism\",\"workers\":%u,\"timesteps\":%" PRIu64
	       ",\"episodes\":%" PRIu64 ",\"generations\":%zu,\"wall_s\":%.3f,"
	       "\"setup_s\":%.3f,\"timesteps_per_s\":%.1f,\"episodes_per_s\":%.2f,"
	       "\"pairs_per_gen\":%u,\"pairs_per_call\":%.2f,\"nparams\":%zu,\"seed\":%" PRIu64
	       ",\"rollout_s\":%.3f,\"eval_wall_s\":%.3f,\"master_s\":%.3f,\"calls\":%" PRIu64
	       ",\"reward_curve\":[",
	       tps, d->nactors, st->total_timesteps, st->total_episodes, cv->n, wall,
	       r->setup_s, tps, eps, r->o.c.es.pairs_per_gen,
	       (double)r->o.c.es.pairs_per_gen * (double)cv->n / (double)d->calls, r->nparams,
	       r->o.c.es.seed, (double)d->busy_ns / 1e9, (double)d->eval_ns / 1e9,
	       wall - (double)d->eval_ns / 1e9, d->calls);
	for (size_t i = 0; i < cv->n; i++)
		printf("%s%.2f", i ? "," : "", cv->v[i]);
	printf("]}\n");
	printf("{\"suite\":\"es\",\"case\":\"prism_episodes_per_s\",\"unit\":\"episodes/s\","
	       "\"value\":%.2f,\"peer\":\"prism\",\"workers\":%u}\n",
	       eps, d->nactors);
}

static int save_policy(struct run *r, const es_state *s)
{
	char err[ERR_LEN];
	int rc = 0;
	if (es_state_obmean(s))
		rc = es_policy_set_obnorm(r->pol, es_state_obmean(s), es_state_obstd(s));
	if (!rc)
		rc = es_policy_save(r->pol, es_state_theta(s), r->o.c.save, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "bad normalisation: %s", prism_strerror(rc));
	if (rc)
		fprintf(stderr, TAG ": %s\n", err);
	return rc;
}

/* Generations until the budget is spent. */
static int train(struct run *r)
{
	float *theta0 = malloc(r->nparams * sizeof(float));
	struct curve cv = {0};
	struct es_gen_stats st = {0};
	es_state *s = NULL;
	int rc = theta0 ? 0 : -ENOMEM;
	if (!rc) {
		es_policy_init_params(r->pol, es_seed_mix(r->o.c.es.seed, 1), theta0);
		rc = es_state_create(&r->o.c.es, &r->d.tab, r->nparams, r->obs_dim, theta0, &s);
	}
	int64_t t0 = now_ns();
	while (!rc && st.total_timesteps < r->o.c.timesteps) {
		int64_t g0 = now_ns();
		if ((rc = es_generation(s, prism_eval, &r->d, &st)) < 0 ||
		    (rc = curve_add(&cv, st.ret_mean)) < 0)
			break;
		if (!r->o.c.json)
			printf("gen %4" PRIu64 "  timesteps %9" PRIu64
			       "  return mean %8.1f max %8.1f  length %6.1f  %7.0f steps/s\n",
			       st.generation, st.total_timesteps, st.ret_mean, st.ret_max,
			       st.len_mean,
			       (double)st.timesteps * 1e9 / (double)(now_ns() - g0));
	}
	double wall = (double)(now_ns() - t0) / 1e9;
	if (rc)
		fprintf(stderr, TAG ": generation failed: %s\n", prism_strerror(rc));
	else if (r->o.c.json)
		report_json(r, &st, &cv, wall);
	else
		report_text(r, &st, &cv, wall);
	if (!rc && r->o.c.save)
		rc = save_policy(r, s);
	es_state_destroy(s);
	free(cv.v);
	free(theta0);
	return rc;
}

int main(int argc, char **argv)
{
	struct run r = {0};
	int prc = parse_opts(argc, argv, &r.o);
	if (prc)
		return prc == 1 ? 0 : 2;
	if ((prc = load_local(&r)) != 0) {
		teardown(&r);
		return prc;
	}
	/* Room for the table and a margin for the generations' objects in flight. */
	uint64_t table = (uint64_t)r.o.c.noise_floats * sizeof(float);
	prism_opts po = {.object_store_bytes =
				 table + 64 * MIB < 256 * MIB ? 256 * MIB : table + 64 * MIB,
			 .log_level = -1};
	int rc = prism_init(&po);
	if (rc) {
		fprintf(stderr, TAG ": prism_init: %s (%s)\n", prism_strerror(rc),
			prism_last_error());
		teardown(&r);
		return 1;
	}
	rc = setup(&r);
	if (!rc)
		rc = train(&r);
	teardown(&r);
	prism_shutdown();
	return rc ? 1 : 0;
}
