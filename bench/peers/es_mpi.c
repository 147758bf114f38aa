/* es_mpi — the OpenMPI peer of `prism-bench es`: evolution strategies on the MuJoCo
 * humanoid with the algorithm and simulation of examples/es_humanoid, generations spread
 * over MPI ranks.  What it measures: environment timesteps per second over a fixed
 * budget of timesteps, with the same seed, batch and policy as the prism version.
 *
 *   mpirun -np 2 build/bin/es_mpi --timesteps 200000 [--json]
 *   (as root: mpirun --allow-run-as-root --oversubscribe -np 2 ..., or set
 *    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
 *
 * Every rank builds the same noise table from the seed (the original implementation
 * shared one through shared memory; building it costs each rank about a second and is
 * timed apart from the run), loads the model and holds one worker.  Rank 0 is the
 * master and evaluates too: on a machine with as many cores as ranks, a master that only
 * waited would leave a core idle.  Each generation the master draws the tasks (noise
 * offset and episode seed per antithetic pair), broadcasts theta, the observation
 * normalisation and the tasks; rank r evaluates the r-th contiguous share of the pairs;
 * the results (noise offset, return+, return-, steps+, steps-) are gathered to the
 * master and the observation statistics summed there; the master shapes, updates and
 * goes on until the budget of timesteps is spent, then tells the ranks to stop.
 *
 * Output: a line per generation and a summary, or with --json one JSON object per line
 * (../shared/BENCHMARKS.md): es/mpi_timesteps_per_s (with the timesteps, episodes, wall
 * seconds, episodes/s and the reward curve: the mean return of each generation) and
 * es/mpi_episodes_per_s.  Exit status 0, 2 for bad options, 1 for any other failure.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "cli.h"
#include "es.h"

#define TAG "es_mpi"
#define ERR_LEN 512

/* What the master broadcasts first each generation. */
enum { CMD_RUN = 1, CMD_STOP = 2 };
struct gen_header {
	uint32_t cmd;
	uint32_t npairs;
	uint32_t max_steps;
	uint32_t has_norm;
	uint64_t generation;
	float sigma;
	uint32_t pad;
};

/* One rank's share of the work and the buffers that carry it. */
struct rank_ctx {
	int rank, size;
	es_worker *w;
	es_obstat *obstat; /* this rank's observations of one generation */
	size_t nparams;
	uint32_t obs_dim, pairs;
	float *theta;               /* nparams (the workers' copy) */
	float *norm;                /* 2 * obs_dim: mean then std */
	struct es_task *tasks;      /* pairs */
	struct es_pair_result *res; /* this rank's share (not the master's) */
	int *counts, *displs;       /* per rank, in bytes, for the gather */
};

static void usage(FILE *f)
{
	fputs("usage: mpirun [--allow-run-as-root --oversubscribe] -np N es_mpi [options]\n",
	      f);
	es_cli_usage(f, NULL, 0);
}

/* 0 to run, 1 for --help (printed), 2 for bad options (the reason printed by rank 0).
 * Every option is a shared one (cli.h): the peer has none of its own. */
static int parse_opts(int argc, char **argv, struct es_cli_opts *o, bool say)
{
	es_cli_defaults(o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			if (say)
				usage(stdout);
			return 1;
		}
		int rc = es_cli_parse(o, a, v);
		if (rc < 0) {
			if (say) {
				es_cli_print_error(stderr, TAG, rc, a, v);
				usage(stderr);
			}
			return 2;
		}
		i += rc;
	}
	return 0;
}

/* ---- one generation across the ranks ------------------------------------------------- */

/* Pairs [first, first + count) are rank r's: contiguous, sizes differing by at most 1. */
static void share(uint32_t npairs, int size, int r, uint32_t *first, uint32_t *count)
{
	uint64_t a = (uint64_t)npairs * (uint64_t)r / (uint64_t)size;
	uint64_t b = (uint64_t)npairs * (uint64_t)(r + 1) / (uint64_t)size;
	*first = (uint32_t)a;
	*count = (uint32_t)(b - a);
}

/* Every rank: receive the generation (master: send it), evaluate its share, gather the
 * results and sum the observation statistics to the master.  in is the master's input
 * (NULL elsewhere); out and obstat are the master's destinations.  Returns the lowest
 * error of all ranks on the master, this rank's own elsewhere. */
static int run_share(struct rank_ctx *c, const struct gen_header *h,
		     const struct es_gen_input *in, struct es_pair_result *out,
		     es_obstat *obstat)
{
	struct es_gen_input mine = {.generation = h->generation,
				    .theta = c->theta,
				    .nparams = c->nparams,
				    .ob_mean = h->has_norm ? c->norm : NULL,
				    .ob_std = h->has_norm ? c->norm + c->obs_dim : NULL,
				    .obs_dim = c->obs_dim,
				    .tasks = c->tasks,
				    .npairs = h->npairs,
				    .sigma = h->sigma,
				    .max_steps = h->max_steps};
	if (in) { /* the master sends and evaluates straight from its own buffers */
		mine.theta = in->theta;
		mine.ob_mean = in->ob_mean;
		mine.ob_std = in->ob_std;
		mine.tasks = in->tasks;
	}
	MPI_Bcast((void *)mine.theta, (int)c->nparams, MPI_FLOAT, 0, MPI_COMM_WORLD);
	if (h->has_norm) {
		if (in) {
			memcpy(c->norm, in->ob_mean, c->obs_dim * sizeof(float));
			memcpy(c->norm + c->obs_dim, in->ob_std, c->obs_dim * sizeof(float));
		}
		MPI_Bcast(c->norm, 2 * (int)c->obs_dim, MPI_FLOAT, 0, MPI_COMM_WORLD);
	}
	MPI_Bcast((void *)mine.tasks, (int)(h->npairs * sizeof(struct es_task)), MPI_BYTE, 0,
		  MPI_COMM_WORLD);

	uint32_t first, count;
	share(h->npairs, c->size, c->rank, &first, &count);
	es_obstat *os = h->has_norm ? c->obstat : NULL;
	if (os)
		es_obstat_clear(os);
	/* The master's share is the head of out (displacement 0), where Gatherv's
	 * MPI_IN_PLACE wants it. */
	struct es_pair_result *dst = c->rank == 0 ? out : c->res;
	int rc = es_worker_eval(c->w, &mine, first, count, dst, os), all = rc;

	MPI_Gatherv(c->rank == 0 ? MPI_IN_PLACE : dst, (int)(count * sizeof(*dst)), MPI_BYTE,
		    out, c->counts, c->displs, MPI_BYTE, 0, MPI_COMM_WORLD);
	if (h->has_norm) {
		size_t n;
		double *local = es_obstat_raw(c->obstat, &n);
		double *sum = obstat ? es_obstat_raw(obstat, &n) : NULL;
		MPI_Reduce(local, sum, (int)n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
	}
	MPI_Reduce(&rc, &all, 1, MPI_INT, MPI_MIN, 0, MPI_COMM_WORLD);
	return c->rank == 0 ? all : rc;
}

/* es_eval_fn on the master: broadcast the work, do rank 0's share, collect. */
static int mpi_eval(void *ctx, const struct es_gen_input *in, struct es_pair_result *out,
		    es_obstat *obstat)
{
	struct rank_ctx *c = ctx;
	struct gen_header h = {.cmd = CMD_RUN,
			       .npairs = in->npairs,
			       .max_steps = in->max_steps,
			       .has_norm = in->ob_mean != NULL,
			       .generation = in->generation,
			       .sigma = in->sigma};
	if (in->npairs != c->pairs)
		return -EINVAL;
	MPI_Bcast(&h, sizeof(h), MPI_BYTE, 0, MPI_COMM_WORLD);
	return run_share(c, &h, in, out, obstat);
}

/* Ranks other than 0: serve generations until the master says stop. */
static int serve(struct rank_ctx *c)
{
	int rc = 0;
	for (;;) {
		struct gen_header h;
		MPI_Bcast(&h, sizeof(h), MPI_BYTE, 0, MPI_COMM_WORLD);
		if (h.cmd != CMD_RUN)
			return rc;
		/* Cannot happen: every rank parsed the same options. */
		if (h.npairs != c->pairs)
			MPI_Abort(MPI_COMM_WORLD, 1);
		int r = run_share(c, &h, NULL, NULL, NULL);
		rc = rc ? rc : r;
	}
}

static void stop_ranks(void)
{
	struct gen_header h = {.cmd = CMD_STOP};
	MPI_Bcast(&h, sizeof(h), MPI_BYTE, 0, MPI_COMM_WORLD);
}

/* ---- setup --------------------------------------------------------------------------- */

struct run {
	struct es_cli_opts o;
	es_env_model *model;
	struct es_noise noise;
	struct rank_ctx c;
	double setup_s;
};

static int ctx_alloc(struct rank_ctx *c, uint32_t pairs)
{
	c->pairs = pairs;
	c->theta = prism_malloc(c->nparams * sizeof(float));
	c->norm = prism_malloc(2 * (size_t)c->obs_dim * sizeof(float));
	c->tasks = prism_malloc(pairs * sizeof(*c->tasks));
	c->res = prism_malloc(pairs * sizeof(*c->res));
	c->counts = prism_malloc((size_t)c->size * sizeof(int));
	c->displs = prism_malloc((size_t)c->size * sizeof(int));
	if (!c->theta || !c->norm || !c->tasks || !c->res || !c->counts || !c->displs)
		return -ENOMEM;
	for (int r = 0; r < c->size; r++) {
		uint32_t first, count;
		share(pairs, c->size, r, &first, &count);
		c->counts[r] = (int)(count * sizeof(struct es_pair_result));
		c->displs[r] = (int)(first * sizeof(struct es_pair_result));
	}
	return es_obstat_create(c->obs_dim, &c->obstat);
}

static void ctx_free(struct rank_ctx *c)
{
	es_obstat_destroy(c->obstat);
	prism_free(c->displs);
	prism_free(c->counts);
	prism_free(c->res);
	prism_free(c->tasks);
	prism_free(c->norm);
	prism_free(c->theta);
	es_worker_destroy(c->w);
}

/* Model, noise table and worker on this rank; err gets the reason of a failure. */
static int setup(struct run *r, char *err, size_t errsz)
{
	struct es_env_config ec;
	struct es_policy_arch arch;
	es_env_config_default(&ec);
	ec.model_path = r->o.model;
	ec.obs = r->o.obs;
	int rc = es_env_model_load(&ec, &r->model, err, errsz);
	if (rc)
		return rc;
	es_arch_for_env(r->model, r->o.layers, r->o.width, &arch);
	if ((rc = es_worker_create(r->model, &arch, &r->noise, &r->c.w)) < 0) {
		snprintf(err, errsz, "cannot create a worker: %s", prism_strerror(rc));
		return rc;
	}
	r->c.nparams = es_policy_nparams(es_worker_policy(r->c.w));
	r->c.obs_dim = arch.obs_dim;
	if (r->o.noise_floats < r->c.nparams) {
		snprintf(err, errsz,
			 "--noise-floats %zu is less than the policy's %zu parameters",
			 r->o.noise_floats, r->c.nparams);
		return -EINVAL;
	}
	uint64_t t0 = prism_now_ns();
	if ((rc = es_noise_create(r->o.noise_floats, r->o.es.seed, &r->noise)) < 0 ||
	    (rc = ctx_alloc(&r->c, r->o.es.pairs_per_gen)) < 0) {
		snprintf(err, errsz, "cannot allocate the noise table and buffers: %s",
			 prism_strerror(rc));
		return rc;
	}
	r->setup_s = (double)(prism_now_ns() - t0) / 1e9;
	return 0;
}

/* ---- the master ---------------------------------------------------------------------- */

struct curve {
	double *v;
	size_t n, cap;
};

static int curve_add(struct curve *c, double x)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		double *v = prism_realloc(c->v, cap * sizeof(double));
		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = x;
	return 0;
}

static void report(const struct run *r, const struct es_gen_stats *st, const struct curve *cv,
		   double wall)
{
	const struct es_cli_opts *o = &r->o;
	double tps = (double)st->total_timesteps / wall;
	double eps = (double)st->total_episodes / wall;
	if (!o->json) {
		printf("es_mpi: %d ranks, %" PRIu64 " timesteps, %" PRIu64
		       " episodes, %zu generations in %.2f s (noise table %.2f s apart)\n"
		       "        %.0f timesteps/s, %.1f episodes/s; mean return %.1f -> %.1f\n",
		       r->c.size, st->total_timesteps, st->total_episodes, cv->n, wall,
		       r->setup_s, tps, eps, cv->v[0], cv->v[cv->n - 1]);
		return;
	}
	printf("{\"suite\":\"es\",\"case\":\"mpi_timesteps_per_s\",\"unit\":\"timesteps/s\","
	       "\"value\":%.1f,\"peer\":\"mpi\",\"ranks\":%d,\"timesteps\":%" PRIu64
	       ",\"episodes\":%" PRIu64 ",\"generations\":%zu,\"wall_s\":%.3f,"
	       "\"setup_s\":%.3f,\"timesteps_per_s\":%.1f,\"episodes_per_s\":%.2f,"
	       "\"pairs_per_gen\":%u,\"nparams\":%zu,\"seed\":%" PRIu64 ",\"reward_curve\":[",
	       tps, r->c.size, st->total_timesteps, st->total_episodes, cv->n, wall, r->setup_s,
	       tps, eps, o->es.pairs_per_gen, r->c.nparams, o->es.seed);
	for (size_t i = 0; i < cv->n; i++)
		printf("%s%.2f", i ? "," : "", cv->v[i]);
	printf("]}\n");
	printf("{\"suite\":\"es\",\"case\":\"mpi_episodes_per_s\",\"unit\":\"episodes/s\","
	       "\"value\":%.2f,\"peer\":\"mpi\",\"ranks\":%d}\n",
	       eps, r->c.size);
}

static int save_policy(struct run *r, const es_state *s)
{
	char err[ERR_LEN];
	es_policy *p = es_worker_policy(r->c.w);
	if (es_state_obmean(s))
		es_policy_set_obnorm(p, es_state_obmean(s), es_state_obstd(s));
	int rc = es_policy_save(p, es_state_theta(s), r->o.save, err, sizeof(err));
	if (rc)
		fprintf(stderr, TAG ": %s\n", err);
	return rc;
}

/* Generations until the budget is spent; the ranks are stopped whatever happens. */
static int master(struct run *r)
{
	float *theta0 = prism_malloc(r->c.nparams * sizeof(float));
	struct curve cv = {0};
	struct es_gen_stats st = {0};
	es_state *s = NULL;
	int rc = theta0 ? 0 : -ENOMEM;
	if (!rc) {
		es_policy_init_params(es_worker_policy(r->c.w), es_seed_mix(r->o.es.seed, 1),
				      theta0);
		rc = es_state_create(&r->o.es, &r->noise, r->c.nparams, r->c.obs_dim, theta0,
				     &s);
	}
	uint64_t t0 = prism_now_ns();
	while (!rc && st.total_timesteps < r->o.timesteps) {
		uint64_t g0 = prism_now_ns();
		if ((rc = es_generation(s, mpi_eval, &r->c, &st)) < 0 ||
		    (rc = curve_add(&cv, st.ret_mean)) < 0)
			break;
		if (!r->o.json)
			printf("gen %4" PRIu64 "  timesteps %9" PRIu64
			       "  return mean %8.1f max %8.1f  length %6.1f  %7.0f steps/s\n",
			       st.generation, st.total_timesteps, st.ret_mean, st.ret_max,
			       st.len_mean,
			       (double)st.timesteps * 1e9 / (double)(prism_now_ns() - g0));
	}
	double wall = (double)(prism_now_ns() - t0) / 1e9;
	stop_ranks();
	if (rc)
		fprintf(stderr, TAG ": generation failed: %s\n", prism_strerror(rc));
	if (!rc && cv.n)
		report(r, &st, &cv, wall);
	if (!rc && r->o.save)
		rc = save_policy(r, s);
	es_state_destroy(s);
	prism_free(cv.v);
	prism_free(theta0);
	return rc;
}

int main(int argc, char **argv)
{
	struct run r = {0};
	char err[ERR_LEN] = "";
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &r.c.rank);
	MPI_Comm_size(MPI_COMM_WORLD, &r.c.size);
	int prc = parse_opts(argc, argv, &r.o, r.c.rank == 0);
	if (prc) {
		MPI_Finalize();
		return prc == 1 ? 0 : 2;
	}
	/* Every rank must be ready before the first generation: agree on failure. */
	int rc = setup(&r, err, sizeof(err)), worst;
	if (rc)
		fprintf(stderr, TAG ": rank %d: %s\n", r.c.rank, err);
	MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
	if (!worst)
		rc = r.c.rank == 0 ? master(&r) : serve(&r.c);
	ctx_free(&r.c);
	es_noise_destroy(&r.noise);
	es_env_model_destroy(r.model);
	MPI_Finalize();
	return worst || rc ? 1 : 0;
}
