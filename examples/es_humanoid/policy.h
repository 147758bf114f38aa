/* policy.h — the ES policy: an MLP from observation to action, and observation statistics.
 *
 * Forward pass, as in Salimans et al. 2017 (and their code's MujocoPolicy):
 *   x = clip((obs - mean) / std, -5, 5)             (observation normalisation)
 *   h = tanh(W_k x + b_k) for each hidden layer      (e.g. 2 x 64)
 *   a = lo + (tanh(W_out h + b_out) + 1) / 2 * (hi - lo)   (scaled to the ctrlrange;
 *       an unbounded actuator gets the raw tanh)
 * mean and std are not trained by ES: the master accumulates the observations workers saw
 * (es_obstat) and sets them between generations; es_policy_set_obnorm() installs them.
 *
 * Parameters live in one flat float array theta[es_policy_nparams()], owned by the caller,
 * so that a perturbation is theta + sigma * eps over the whole vector.  Layout, layer by
 * layer: W as in_dim rows of out_dim (input-major, so the forward pass is a run of axpys
 * that the compiler vectorises without reassociating sums), then b[out_dim].
 *
 * A policy object holds the architecture, the action bounds, mean/std and the scratch of
 * the forward pass: es_policy_act() allocates nothing and writes the scratch, so one
 * policy object serves one thread at a time (create one per thread; theta can be shared).
 *
 * File format (es_policy_save/load): a 64-byte little-endian header
 *   magic "PRISMESP", u32 version (1), u32 obs_dim, u32 act_dim, u32 nhidden,
 *   u32 hidden[4], u64 nparams, u64 payload bytes, u32 CRC-32C of the payload,
 *   u32 CRC-32C of the header's first 56 bytes
 * then the payload: lo[act_dim], hi[act_dim], mean[obs_dim], std[obs_dim],
 * theta[nparams], all float32.  Load checks every field and both checksums.
 *
 * Errors: 0 or a negative prism code (base/error.h); save/load also write a one-line
 * reason into the caller's err buffer.
 */
#ifndef PRISM_ES_POLICY_H
#define PRISM_ES_POLICY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ES_POLICY_MAX_HIDDEN 4   /* hidden layers */
#define ES_POLICY_MAX_WIDTH 4096 /* units in one layer, the observation included */
#define ES_OBS_CLIP 5.0f         /* normalised observations are clipped to +-5 (Salimans) */

struct es_policy_arch {
	uint32_t obs_dim;
	uint32_t act_dim;
	uint32_t nhidden;                      /* 0..ES_POLICY_MAX_HIDDEN */
	uint32_t hidden[ES_POLICY_MAX_HIDDEN]; /* widths, 1..ES_POLICY_MAX_WIDTH */
};

typedef struct es_policy es_policy;

/* A policy of architecture a with action bounds lo/hi[act_dim] (copied; an infinite bound
 * pair means "unbounded").  mean = 0 and std = 1 until es_policy_set_obnorm().  *out is
 * the caller's, freed with es_policy_destroy().  -EINVAL (bad sizes), -ENOMEM. */
int es_policy_create(const struct es_policy_arch *a, const float *lo, const float *hi,
		     es_policy **out);
void es_policy_destroy(es_policy *p);

const struct es_policy_arch *es_policy_get_arch(const es_policy *p);
size_t es_policy_nparams(const es_policy *p);

/* Salimans' initialisation, deterministic per seed: each unit's incoming weights are
 * N(0, 1) normalised to length 1 (hidden layers) or 0.01 (output layer, so that the
 * first actions are near the middle of the range); biases 0.  Writes theta[nparams]. */
void es_policy_init_params(const es_policy *p, uint64_t seed, float *theta);

/* Install the observation normalisation (copied).  -EINVAL when a std is not > 0 or a
 * value is not finite. */
int es_policy_set_obnorm(es_policy *p, const float *mean, const float *std);
/* Borrowed views of the current normalisation, obs_dim floats each. */
const float *es_policy_obmean(const es_policy *p);
const float *es_policy_obstd(const es_policy *p);

/* act[act_dim] = policy(theta, obs[obs_dim]).  theta is borrowed for the call.  Uses the
 * policy's scratch: one thread at a time per policy.  No allocation. */
void es_policy_act(es_policy *p, const float *theta, const float *obs, float *act);

/* Write p's architecture, bounds, normalisation and theta[nparams] to path (through a
 * temporary file renamed into place, so a reader never sees half a file). */
int es_policy_save(const es_policy *p, const float *theta, const char *path, char *err,
		   size_t errsz);
/* Read a file written by es_policy_save().  On success *out is a new policy with the
 * saved bounds and normalisation and *theta_out a prism_malloc'd theta[nparams], both the
 * caller's.  Errors: -errno (cannot open/read), PRISM_E_TRUNCATED, PRISM_E_BAD_MAGIC,
 * PRISM_E_BAD_VERSION, PRISM_E_CORRUPT (checksum or inconsistent sizes), -ENOMEM. */
int es_policy_load(const char *path, es_policy **out, float **theta_out, char *err,
		   size_t errsz);

/* Observation statistics: the count, sum and sum of squares of the observations seen,
 * which workers accumulate and the master merges (Salimans' RunningStat).  The state is
 * one flat array of doubles, [count, sum[dim], sumsq[dim]], so that merging two is an
 * element-wise sum (MPI_Reduce with MPI_SUM, or any transport) — es_obstat_raw() gives it.
 * Not thread-safe; one per thread. */
typedef struct es_obstat es_obstat;

int es_obstat_create(uint32_t dim, es_obstat **out);
void es_obstat_destroy(es_obstat *s);
uint32_t es_obstat_dim(const es_obstat *s);
void es_obstat_clear(es_obstat *s);
/* Count one observation of dim floats. */
void es_obstat_add(es_obstat *s, const float *obs);
/* dst += src; -EINVAL when the dimensions differ. */
int es_obstat_merge(es_obstat *dst, const es_obstat *src);
/* The flat state, borrowed; *len = 1 + 2 * dim doubles.  Writable, for transports. */
double *es_obstat_raw(es_obstat *s, size_t *len);
/* The normalisation the statistics give, into mean[dim] and std[dim]:
 *   mean = sum / n,  std = sqrt(max(sumsq / n - mean^2, 0.01)),
 * with n = count + 0.01 and sumsq + 0.01 (Salimans' prior, which makes an empty set give
 * mean 0, std 1; the 0.01 floor keeps constant inputs from exploding). */
void es_obstat_norm(const es_obstat *s, float *mean, float *std);

#ifdef __cplusplus
}
#endif
#endif
