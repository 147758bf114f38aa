/* es.c — noise table, fitness shaping, gradient, rollouts, workers and the master's
 * generation; see es.h. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "es.h"

/* 64 Ki floats per independently seeded chunk of the noise table: big enough that
 * seeding costs nothing, small enough to split a 100 MB table over many fillers. */
#define NOISE_CHUNK ((size_t)1 << 16)

/* ---- noise table --------------------------------------------------------------------- */

void es_noise_fill(float *out, size_t n, uint64_t seed)
{
	for (size_t c = 0; c * NOISE_CHUNK < n; c++) {
		struct es_rng r;
		size_t i = c * NOISE_CHUNK;
		size_t end = n - i > NOISE_CHUNK ? i + NOISE_CHUNK : n;
		es_rng_seed(&r, es_seed_mix(seed, c));
		for (; i < end; i += 2) {
			double a, b;
			es_rng_normal2(&r, &a, &b);
			out[i] = (float)a;
			if (i + 1 < end)
				out[i + 1] = (float)b;
		}
	}
}

int es_noise_create(size_t n, uint64_t seed, struct es_noise *out)
{
	*out = (struct es_noise){0};
	if (n == 0 || n > SIZE_MAX / sizeof(float))
		return -EINVAL;
	float *p = prism_malloc(n * sizeof(float));
	if (!p)
		return -ENOMEM;
	es_noise_fill(p, n, seed);
	*out = (struct es_noise){.data = p, .n = n, .owned = p};
	return 0;
}

void es_noise_view(const float *data, size_t n, struct es_noise *out)
{
	*out = (struct es_noise){.data = data, .n = n, .owned = NULL};
}

void es_noise_destroy(struct es_noise *t)
{
	if (!t)
		return;
	prism_free(t->owned);
	*t = (struct es_noise){0};
}

uint64_t es_noise_sample(const struct es_noise *t, size_t dim, struct es_rng *r)
{
	return es_rng_below(r, t->n - dim + 1);
}

/* ---- fitness shaping and the gradient ------------------------------------------------ */

struct rank_item {
	double v;
	size_t i;
};

/* Ascending, NaN first; equal values by index, so the order is total and qsort's lack of
 * stability cannot change the result. */
static int rank_cmp(const void *pa, const void *pb)
{
	const struct rank_item *a = pa, *b = pb;
	bool na = isnan(a->v), nb = isnan(b->v);
	if (na != nb)
		return na ? -1 : 1;
	if (!na && a->v != b->v)
		return a->v < b->v ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

static bool same_value(double a, double b)
{
	return a == b || (isnan(a) && isnan(b));
}

int es_centered_ranks(const double *x, size_t n, double *out)
{
	if (n == 0)
		return 0;
	struct rank_item *it = prism_malloc(n * sizeof(*it));
	if (!it)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		it[i] = (struct rank_item){.v = x[i], .i = i};
	qsort(it, n, sizeof(*it), rank_cmp);
	for (size_t lo = 0, hi; lo < n; lo = hi) {
		for (hi = lo + 1; hi < n && same_value(it[hi].v, it[lo].v); hi++)
			;
		double rank = 0.5 * (double)(lo + hi - 1); /* mean of ranks lo..hi-1 */
		double c = n > 1 ? rank / (double)(n - 1) - 0.5 : 0.0;
		for (size_t k = lo; k < hi; k++)
			out[it[k].i] = c;
	}
	prism_free(it);
	return 0;
}

void es_grad_estimate(const struct es_noise *t, size_t dim, const struct es_pair_result *res,
		      const double *shaped, size_t npairs, float sigma, double *g)
{
	memset(g, 0, dim * sizeof(double));
	for (size_t i = 0; i < npairs; i++) {
		double w = shaped[2 * i] - shaped[2 * i + 1];
		const float *eps = t->data + res[i].noise_off;
		for (size_t j = 0; j < dim; j++)
			g[j] += w * eps[j];
	}
	double scale = npairs ? 1.0 / (2.0 * (double)npairs * sigma) : 0.0;
	for (size_t j = 0; j < dim; j++)
		g[j] *= scale;
}

/* ---- rollouts and workers ------------------------------------------------------------ */

void es_rollout(es_env *env, es_policy *pol, const float *theta, uint32_t max_steps,
		uint64_t env_seed, es_obstat *obstat, float *obs, float *act,
		struct es_rollout_result *out)
{
	struct es_env_step_info info;
	double ret = 0;
	uint32_t t = 0;
	es_env_reset(env, env_seed, obs);
	while (t < max_steps) {
		if (obstat)
			es_obstat_add(obstat, obs);
		es_policy_act(pol, theta, obs, act);
		es_env_step(env, act, obs, &info);
		ret += info.reward;
		t++;
		if (info.done)
			break;
	}
	out->ret = ret;
	out->steps = t;
}

void es_arch_for_env(const es_env_model *m, uint32_t nhidden, uint32_t width,
		     struct es_policy_arch *a)
{
	*a = (struct es_policy_arch){
		.obs_dim = es_env_obs_dim(m), .act_dim = es_env_act_dim(m), .nhidden = nhidden};
	for (uint32_t i = 0; i < nhidden && i < ES_POLICY_MAX_HIDDEN; i++)
		a->hidden[i] = width;
}

struct es_worker {
	const struct es_noise *noise;
	es_env *env;
	es_policy *pol;
	size_t nparams;
	float *theta; /* the perturbed parameters */
	float *obs, *act;
};

int es_worker_create(const es_env_model *m, const struct es_policy_arch *arch,
		     const struct es_noise *noise, es_worker **out)
{
	int rc;
	uint32_t na = es_env_act_dim(m);
	*out = NULL;
	if (arch->obs_dim != es_env_obs_dim(m) || arch->act_dim != na)
		return -EINVAL;
	es_worker *w = prism_calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->noise = noise;
	w->act = prism_malloc(2 * (size_t)na * sizeof(float)); /* also the bounds, at first */
	if (!w->act) {
		rc = -ENOMEM;
		goto fail;
	}
	es_env_ctrlrange(m, w->act, w->act + na);
	if ((rc = es_policy_create(arch, w->act, w->act + na, &w->pol)) < 0)
		goto fail;
	if ((rc = es_env_create(m, &w->env)) < 0)
		goto fail;
	w->nparams = es_policy_nparams(w->pol);
	w->theta = prism_malloc(w->nparams * sizeof(float));
	w->obs = prism_malloc((size_t)arch->obs_dim * sizeof(float));
	if (!w->theta || !w->obs) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = w;
	return 0;

fail:
	es_worker_destroy(w);
	return rc;
}

void es_worker_destroy(es_worker *w)
{
	if (!w)
		return;
	prism_free(w->obs);
	prism_free(w->theta);
	es_env_destroy(w->env);
	es_policy_destroy(w->pol);
	prism_free(w->act);
	prism_free(w);
}

es_policy *es_worker_policy(es_worker *w)
{
	return w->pol;
}

static int check_input(const es_worker *w, const struct es_gen_input *in, uint32_t first,
		       uint32_t count)
{
	if (in->nparams != w->nparams || in->obs_dim != es_policy_get_arch(w->pol)->obs_dim ||
	    first > in->npairs || count > in->npairs - first || !(in->sigma > 0) ||
	    in->max_steps < 1 || !in->ob_mean != !in->ob_std || w->noise->n < w->nparams)
		return -EINVAL;
	for (uint32_t i = first; i < first + count; i++)
		if (in->tasks[i].noise_off > w->noise->n - w->nparams)
			return -EINVAL;
	return 0;
}

/* w->theta = theta + s * eps */
static void perturb(float *dst, const float *theta, const float *eps, float s, size_t n)
{
	for (size_t j = 0; j < n; j++)
		dst[j] = theta[j] + s * eps[j];
}

int es_worker_eval(es_worker *w, const struct es_gen_input *in, uint32_t first, uint32_t count,
		   struct es_pair_result *out, es_obstat *obstat)
{
	int rc = check_input(w, in, first, count);
	if (rc < 0)
		return rc;
	if (in->ob_mean && (rc = es_policy_set_obnorm(w->pol, in->ob_mean, in->ob_std)) < 0)
		return rc;
	if (obstat && es_obstat_dim(obstat) != in->obs_dim)
		return -EINVAL;
	for (uint32_t k = 0; k < count; k++) {
		const struct es_task *t = &in->tasks[first + k];
		const float *eps = w->noise->data + t->noise_off;
		struct es_rollout_result pos, neg;
		perturb(w->theta, in->theta, eps, in->sigma, w->nparams);
		es_rollout(w->env, w->pol, w->theta, in->max_steps, t->env_seed, obstat, w->obs,
			   w->act, &pos);
		perturb(w->theta, in->theta, eps, -in->sigma, w->nparams);
		es_rollout(w->env, w->pol, w->theta, in->max_steps, t->env_seed, obstat, w->obs,
			   w->act, &neg);
		out[k] = (struct es_pair_result){.noise_off = t->noise_off,
						 .ret_pos = pos.ret,
						 .ret_neg = neg.ret,
						 .steps_pos = pos.steps,
						 .steps_neg = neg.steps};
	}
	return 0;
}

int es_eval_serial(void *ctx, const struct es_gen_input *in, struct es_pair_result *out,
		   es_obstat *obstat)
{
	return es_worker_eval(ctx, in, 0, in->npairs, out, obstat);
}

/* ---- the master ---------------------------------------------------------------------- */

struct es_state {
	struct es_config c;
	const struct es_noise *noise;
	size_t nparams;
	uint32_t obs_dim;
	struct es_rng rng; /* draws the tasks */
	uint64_t generation, total_timesteps, total_episodes;
	uint64_t adam_t;
	float *theta;
	double *m, *v; /* Adam's moments */
	double *g;     /* the gradient estimate */
	struct es_task *tasks;
	struct es_pair_result *res;
	double *rets, *shaped; /* 2 * pairs_per_gen, pos/neg interleaved */
	es_obstat *obstat, *gen_obstat;
	float *ob_mean, *ob_std; /* NULL when obnorm is off */
};

void es_config_default(struct es_config *c)
{
	*c = (struct es_config){
		.pairs_per_gen = 64,
		.max_steps = 1000,
		.sigma = 0.02f,
		.lr = 0.01f,
		.l2 = 0.005f,
		.beta1 = 0.9f,
		.beta2 = 0.999f,
		.adam_eps = 1e-8f,
		.obnorm = true,
		.seed = 1,
	};
}

static bool config_ok(const struct es_config *c)
{
	return c->pairs_per_gen >= 1 && c->max_steps >= 1 && c->sigma > 0 &&
	       isfinite(c->sigma) && c->lr > 0 && isfinite(c->lr) && c->l2 >= 0 &&
	       isfinite(c->l2) && c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 &&
	       c->beta2 < 1 && c->adam_eps > 0;
}

static int state_alloc(es_state *s)
{
	size_t n = s->nparams, p = s->c.pairs_per_gen;
	s->theta = prism_malloc(n * sizeof(float));
	s->m = prism_calloc(n, sizeof(double));
	s->v = prism_calloc(n, sizeof(double));
	s->g = prism_malloc(n * sizeof(double));
	s->tasks = prism_malloc(p * sizeof(*s->tasks));
	s->res = prism_malloc(p * sizeof(*s->res));
	s->rets = prism_malloc(4 * p * sizeof(double));
	if (!s->theta || !s->m || !s->v || !s->g || !s->tasks || !s->res || !s->rets)
		return -ENOMEM;
	s->shaped = s->rets + 2 * p;
	if (!s->c.obnorm)
		return 0;
	int rc = es_obstat_create(s->obs_dim, &s->obstat);
	if (!rc)
		rc = es_obstat_create(s->obs_dim, &s->gen_obstat);
	if (rc)
		return rc;
	s->ob_mean = prism_malloc(2 * (size_t)s->obs_dim * sizeof(float));
	if (!s->ob_mean)
		return -ENOMEM;
	s->ob_std = s->ob_mean + s->obs_dim;
	es_obstat_norm(s->obstat, s->ob_mean, s->ob_std);
	return 0;
}

int es_state_create(const struct es_config *c, const struct es_noise *noise, size_t nparams,
		    uint32_t obs_dim, const float *theta0, es_state **out)
{
	*out = NULL;
	if (!config_ok(c) || nparams == 0 || noise->n < nparams || obs_dim == 0)
		return -EINVAL;
	es_state *s = prism_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = *c;
	s->noise = noise;
	s->nparams = nparams;
	s->obs_dim = obs_dim;
	es_rng_seed(&s->rng, es_seed_mix(c->seed, 0x7a5c));
	int rc = state_alloc(s);
	if (rc) {
		es_state_destroy(s);
		return rc;
	}
	memcpy(s->theta, theta0, nparams * sizeof(float));
	*out = s;
	return 0;
}

void es_state_destroy(es_state *s)
{
	if (!s)
		return;
	prism_free(s->ob_mean);
	es_obstat_destroy(s->gen_obstat);
	es_obstat_destroy(s->obstat);
	prism_free(s->rets);
	prism_free(s->res);
	prism_free(s->tasks);
	prism_free(s->g);
	prism_free(s->v);
	prism_free(s->m);
	prism_free(s->theta);
	prism_free(s);
}

const float *es_state_theta(const es_state *s)
{
	return s->theta;
}

size_t es_state_nparams(const es_state *s)
{
	return s->nparams;
}

const float *es_state_obmean(const es_state *s)
{
	return s->ob_mean;
}

const float *es_state_obstd(const es_state *s)
{
	return s->ob_std;
}

/* Results must answer their tasks; returns the pos/neg returns interleaved in rets. */
static int collect(es_state *s, struct es_gen_stats *st)
{
	uint32_t n = s->c.pairs_per_gen;
	double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
	uint64_t steps = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct es_pair_result *r = &s->res[i];
		if (r->noise_off != s->tasks[i].noise_off || !isfinite(r->ret_pos) ||
		    !isfinite(r->ret_neg) || r->steps_pos < 1 || r->steps_neg < 1 ||
		    r->steps_pos > s->c.max_steps || r->steps_neg > s->c.max_steps)
			return PRISM_E_CORRUPT;
		s->rets[2 * i] = r->ret_pos;
		s->rets[2 * i + 1] = r->ret_neg;
		steps += (uint64_t)r->steps_pos + r->steps_neg;
	}
	for (uint32_t k = 0; k < 2 * n; k++) {
		sum += s->rets[k];
		lo = fmin(lo, s->rets[k]);
		hi = fmax(hi, s->rets[k]);
	}
	st->ret_mean = sum / (2.0 * n);
	for (uint32_t k = 0; k < 2 * n; k++)
		sq += (s->rets[k] - st->ret_mean) * (s->rets[k] - st->ret_mean);
	st->ret_std = sqrt(sq / (2.0 * n));
	st->ret_min = lo;
	st->ret_max = hi;
	st->timesteps = steps;
	st->episodes = 2ull * n;
	st->len_mean = (double)steps / (2.0 * n);
	return 0;
}

/* One Adam step on the loss gradient -g + l2 * theta; returns |delta theta|. */
static double adam_step(es_state *s)
{
	const struct es_config *c = &s->c;
	s->adam_t++;
	double a = c->lr * sqrt(1.0 - pow(c->beta2, (double)s->adam_t)) /
		   (1.0 - pow(c->beta1, (double)s->adam_t));
	double dsq = 0;
	for (size_t j = 0; j < s->nparams; j++) {
		double grad = -s->g[j] + c->l2 * s->theta[j];
		s->m[j] = c->beta1 * s->m[j] + (1.0 - c->beta1) * grad;
		s->v[j] = c->beta2 * s->v[j] + (1.0 - c->beta2) * grad * grad;
		double step = -a * s->m[j] / (sqrt(s->v[j]) + c->adam_eps);
		s->theta[j] = (float)(s->theta[j] + step);
		dsq += step * step;
	}
	return sqrt(dsq);
}

static double norm(const double *x, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += x[i] * x[i];
	return sqrt(s);
}

int es_generation(es_state *s, es_eval_fn eval, void *ctx, struct es_gen_stats *out)
{
	uint32_t n = s->c.pairs_per_gen;
	for (uint32_t i = 0; i < n; i++) {
		s->tasks[i].noise_off = es_noise_sample(s->noise, s->nparams, &s->rng);
		s->tasks[i].env_seed = es_rng_next(&s->rng);
	}
	struct es_gen_input in = {.generation = s->generation,
				  .theta = s->theta,
				  .nparams = s->nparams,
				  .ob_mean = s->ob_mean,
				  .ob_std = s->ob_std,
				  .obs_dim = s->obs_dim,
				  .tasks = s->tasks,
				  .npairs = n,
				  .sigma = s->c.sigma,
				  .max_steps = s->c.max_steps};
	if (s->gen_obstat)
		es_obstat_clear(s->gen_obstat);
	struct es_gen_stats st = {.generation = s->generation};
	int rc = eval(ctx, &in, s->res, s->gen_obstat);
	if (rc < 0)
		return rc;
	if ((rc = collect(s, &st)) < 0)
		return rc;
	if ((rc = es_centered_ranks(s->rets, 2 * (size_t)n, s->shaped)) < 0)
		return rc;
	es_grad_estimate(s->noise, s->nparams, s->res, s->shaped, n, s->c.sigma, s->g);
	st.grad_norm = norm(s->g, s->nparams);
	st.update_norm = adam_step(s);
	if (s->obstat) {
		es_obstat_merge(s->obstat, s->gen_obstat);
		es_obstat_norm(s->obstat, s->ob_mean, s->ob_std);
	}
	s->generation++;
	s->total_timesteps += st.timesteps;
	s->total_episodes += st.episodes;
	st.total_timesteps = s->total_timesteps;
	st.total_episodes = s->total_episodes;
	if (out)
		*out = st;
	return 0;
}
