/* es.h — evolution strategies (Salimans, Ho, Chen, Sidor and Sutskever, 2017), the parts
 * that do not depend on how work is distributed.
 *
 * One generation: the master draws n antithetic pairs (a noise offset k_i into a shared
 * table of N(0, 1) floats, and an episode seed), evaluates the policy at theta + sigma*eps_i
 * and theta - sigma*eps_i for each (eps_i = table[k_i .. k_i + nparams)), maps the 2n
 * returns to centred ranks in [-0.5, 0.5], estimates
 *     g = 1 / (2n * sigma) * sum_i (rank+_i - rank-_i) * eps_i
 * (the paper's 1/(m * sigma) * sum_j F_j * eps_j over the m = 2n perturbations, with the
 * negative twin's -eps_i folded in) without ever materialising an eps, and takes one
 * Adam step on -g + l2 * theta.  Observation statistics gathered by the workers update
 * the policy's normalisation after the step.
 *
 * es_generation() does all of it given a callback that evaluates a batch of pairs
 * (es_eval_fn): es_eval_serial() evaluates in the calling thread, the MPI peer spreads
 * the batch over ranks, the prism version over actors.  The master draws the offsets and
 * seeds, so a run is determined by its seed whatever evaluates it (up to the order in
 * which floating-point observation sums are merged).
 *
 * The noise table is a borrowed view (struct es_noise) so that it can live anywhere: a
 * private buffer (es_noise_create), or an object in prism's store that every worker maps
 * read-only.  es_noise_fill() writes the same table from the same seed everywhere.
 *
 * Ownership: every create has a NULL-safe destroy; pointers passed in are borrowed for
 * the call unless a comment says otherwise.  Threads: an es_worker and an es_state are
 * used by one thread at a time; the noise table is read-only and shared freely.  Errors:
 * 0 or a negative prism code (base/error.h).
 */
#ifndef PRISM_ES_ES_H
#define PRISM_ES_ES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "humanoid.h"
#include "policy.h"
#include "rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 25M floats, 100 MB.  OpenAI's ES used 250M for its MuJoCo tasks; a tenth keeps one
 * table per MPI rank affordable and still holds ~900 disjoint perturbations of the
 * default policy's 27,093 parameters (offsets may overlap, as in the paper). */
#define ES_NOISE_DEFAULT_FLOATS ((size_t)25 * 1000 * 1000)

/* ---- noise table --------------------------------------------------------------------- */

struct es_noise {
	const float *data; /* n floats ~ N(0, 1); read-only */
	size_t n;
	float *owned; /* private: the buffer es_noise_create() allocated, else NULL */
};

/* Fill out[n] with N(0, 1) floats from seed (xoshiro256** and Marsaglia's polar method).
 * The table is made of 64 Ki-float chunks, each from its own generator seeded by (seed,
 * chunk index), so a fill split across threads or processes gives the same table. */
void es_noise_fill(float *out, size_t n, uint64_t seed);
/* A table of n floats filled from seed, owned by *out until es_noise_destroy().
 * -EINVAL (n == 0 or too large), -ENOMEM. */
int es_noise_create(size_t n, uint64_t seed, struct es_noise *out);
/* A view of a table someone else owns (data must outlive the view). */
void es_noise_view(const float *data, size_t n, struct es_noise *out);
/* Frees what es_noise_create() allocated; harmless on views and zeroed structs. */
void es_noise_destroy(struct es_noise *t);
/* A uniformly drawn offset at which dim floats fit in the table (needs t->n >= dim). */
uint64_t es_noise_sample(const struct es_noise *t, size_t dim, struct es_rng *r);

/* ---- fitness shaping and the gradient ------------------------------------------------ */

/* out[i] = rank of x[i] among x[0..n) mapped linearly to [-0.5, 0.5] (smallest -0.5,
 * largest +0.5), as the paper's compute_centered_ranks.  Tied values share the mean of
 * the ranks they span, so equal returns always get equal weight (the paper's argsort
 * broke ties by position).  A NaN ranks below every number.  n == 1 gives 0.
 * -ENOMEM (it sorts a copy). */
int es_centered_ranks(const double *x, size_t n, double *out);

/* A task: one antithetic pair of a generation. */
struct es_task {
	uint64_t noise_off; /* eps = noise[noise_off .. noise_off + nparams) */
	uint64_t env_seed;  /* both episodes of the pair start from this state */
};

/* What evaluating a task gives: plain data, 32 bytes, safe to send between processes. */
struct es_pair_result {
	uint64_t noise_off; /* echoed from the task, checked by the master */
	double ret_pos;     /* return of theta + sigma * eps */
	double ret_neg;     /* return of theta - sigma * eps */
	uint32_t steps_pos; /* environment steps of each episode */
	uint32_t steps_neg;
};

/* g[dim] = 1 / (2 * npairs * sigma) * sum_i (shaped[2i] - shaped[2i+1]) *
 *          noise[res[i].noise_off .. + dim), shaped holding each pair's positive then
 * negative shaped fitness.  Offsets must be valid for dim (the master checks). */
void es_grad_estimate(const struct es_noise *t, size_t dim, const struct es_pair_result *res,
		      const double *shaped, size_t npairs, float sigma, double *g);

/* ---- evaluating perturbations -------------------------------------------------------- */

struct es_rollout_result {
	double ret;     /* sum of rewards */
	uint32_t steps; /* environment steps, 1..max_steps */
};

/* One episode of policy pol with parameters theta on env from the start state of
 * env_seed, at most max_steps steps (>= 1).  Each observation the policy acts on is
 * added to obstat when it is not NULL.  obs[obs_dim] and act[act_dim] are the caller's
 * scratch.  No allocation. */
void es_rollout(es_env *env, es_policy *pol, const float *theta, uint32_t max_steps,
		uint64_t env_seed, es_obstat *obstat, float *obs, float *act,
		struct es_rollout_result *out);

/* What one generation asks evaluators to do; all pointers borrowed for the call. */
struct es_gen_input {
	uint64_t generation;
	const float *theta; /* nparams */
	size_t nparams;
	const float *ob_mean; /* obs_dim each, or both NULL: no normalisation */
	const float *ob_std;
	uint32_t obs_dim;
	const struct es_task *tasks; /* npairs */
	uint32_t npairs;
	float sigma;
	uint32_t max_steps;
};

/* Evaluate every task of in into out[npairs] (out[i] for in->tasks[i]) and add the
 * observations seen to obstat (cleared by the caller; may be NULL when in->ob_mean is).
 * Returns 0 or a negative code, which es_generation() passes on. */
typedef int (*es_eval_fn)(void *ctx, const struct es_gen_input *in, struct es_pair_result *out,
			  es_obstat *obstat);

/* An MLP of nhidden layers of width units for model m's observations and actions. */
void es_arch_for_env(const es_env_model *m, uint32_t nhidden, uint32_t width,
		     struct es_policy_arch *a);

/* A worker: one environment, one policy and the scratch to evaluate pairs, for one
 * thread.  m and noise are borrowed and must outlive it.  -EINVAL when arch does not fit
 * m's dimensions, -ENOMEM. */
typedef struct es_worker es_worker;
int es_worker_create(const es_env_model *m, const struct es_policy_arch *arch,
		     const struct es_noise *noise, es_worker **out);
void es_worker_destroy(es_worker *w);
/* The worker's policy (borrowed), e.g. to save theta with the normalisation in use. */
es_policy *es_worker_policy(es_worker *w);

/* Evaluate tasks [first, first + count) of in into out[count], observations into obstat
 * (may be NULL).  -EINVAL when in does not fit the worker (nparams, obs_dim, a range or an
 * offset outside the table, a bad normalisation). */
int es_worker_eval(es_worker *w, const struct es_gen_input *in, uint32_t first, uint32_t count,
		   struct es_pair_result *out, es_obstat *obstat);
/* es_eval_fn for one worker in the calling thread: ctx is an es_worker. */
int es_eval_serial(void *ctx, const struct es_gen_input *in, struct es_pair_result *out,
		   es_obstat *obstat);

/* ---- the master ---------------------------------------------------------------------- */

struct es_config {
	uint32_t pairs_per_gen; /* antithetic pairs per generation, >= 1 */
	uint32_t max_steps;     /* episode length limit, >= 1 */
	float sigma;            /* perturbation scale, > 0 */
	float lr;               /* Adam step size, > 0 */
	float l2;               /* weight decay coefficient, >= 0 */
	float beta1, beta2, adam_eps;
	bool obnorm; /* gather observation statistics and normalise */
	uint64_t seed;
};

/* The paper's MuJoCo settings where they fit a small machine: sigma 0.02, Adam with step
 * size 0.01 (beta 0.9, 0.999, eps 1e-8), l2 0.005, observation normalisation on, episodes
 * of at most 1000 steps (gym's limit); 64 pairs per generation (the paper used 10,000+
 * episodes per generation on 1,440 CPUs); seed 1. */
void es_config_default(struct es_config *c);

typedef struct es_state es_state;

/* The master's state: theta (copied from theta0[nparams]), Adam's moments, the running
 * observation statistics and the generator of the tasks.  noise is borrowed and must
 * outlive the state; it must hold at least nparams floats.  -EINVAL, -ENOMEM. */
int es_state_create(const struct es_config *c, const struct es_noise *noise, size_t nparams,
		    uint32_t obs_dim, const float *theta0, es_state **out);
void es_state_destroy(es_state *s);

struct es_gen_stats {
	uint64_t generation; /* index of the generation just run, from 0 */
	double ret_mean;     /* over its 2n perturbed episodes: the reward curve */
	double ret_std, ret_min, ret_max;
	double len_mean;          /* steps per episode */
	uint64_t timesteps;       /* environment steps of this generation */
	uint64_t episodes;        /* 2n */
	uint64_t total_timesteps; /* since the state was created */
	uint64_t total_episodes;
	double grad_norm;   /* |g| */
	double update_norm; /* |theta_new - theta_old| */
};

/* Run one generation with eval(ctx, ...) and update the state.  Errors from eval pass
 * through; PRISM_E_CORRUPT when a result does not answer its task (wrong noise offset, a
 * return that is not finite, zero steps); -ENOMEM.  On error theta is unchanged. */
int es_generation(es_state *s, es_eval_fn eval, void *ctx, struct es_gen_stats *out);

/* Borrowed views, valid until the next es_generation() or es_state_destroy(). */
const float *es_state_theta(const es_state *s);
size_t es_state_nparams(const es_state *s);
/* The normalisation in use (obs_dim floats each), or NULL when obnorm is off. */
const float *es_state_obmean(const es_state *s);
const float *es_state_obstd(const es_state *s);

#ifdef __cplusplus
}
#endif
#endif
