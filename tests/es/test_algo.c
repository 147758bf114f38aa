/* The algorithm without a simulator: centred ranks on hand-worked examples (ties share
 * their mean rank), the gradient estimate against a naive one that materialises every
 * perturbation, and whole generations on a quadratic whose optimum is known. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "base/error.h"
#include "es.h"

static void ranks_are(const double *x, size_t n, const double *want)
{
	double out[16];
	cr_assert_leq(n, 16);
	cr_assert_eq(es_centered_ranks(x, n, out), 0);
	for (size_t i = 0; i < n; i++)
		cr_assert_float_eq(out[i], want[i], 1e-15, "item %zu: %g, want %g", i, out[i],
				   want[i]);
}

Test(ranks, distinct_values_spread_evenly_over_minus_half_half)
{
	double x[] = {30, 10, 50, 20, 40};
	double want[] = {0, -0.5, 0.5, -0.25, 0.25};
	ranks_are(x, 5, want);
}

/* Sorted, 1 has rank 0, the two 2s ranks 1 and 2 (mean 1.5), 3 rank 3; divided by n - 1
 * = 3 and shifted by -0.5. */
Test(ranks, ties_share_the_mean_of_their_ranks)
{
	double x[] = {3, 1, 2, 2};
	double want[] = {0.5, -0.5, 0, 0};
	ranks_are(x, 4, want);
	double same[] = {7, 7, 7};
	double zeros[] = {0, 0, 0};
	ranks_are(same, 3, zeros);
	double three[] = {5, 5, 1, 5};
	/* 1 -> rank 0; the 5s span ranks 1..3, mean 2: 2/3 - 0.5 */
	double want3[] = {1.0 / 6, 1.0 / 6, -0.5, 1.0 / 6};
	ranks_are(three, 4, want3);
}

Test(ranks, single_value_and_nan)
{
	double one[] = {123};
	double zero[] = {0};
	ranks_are(one, 1, zero);
	double x[] = {2, NAN, 1};
	double want[] = {0.5, -0.5, 0};
	ranks_are(x, 3, want);
	cr_assert_eq(es_centered_ranks(NULL, 0, NULL), 0);
}

/* Any input: the shaped values sum to 0 and keep the order of the inputs. */
Test(ranks, sum_to_zero_and_keep_order)
{
	struct es_rng r;
	es_rng_seed(&r, 3);
	for (int trial = 0; trial < 100; trial++) {
		double x[16], out[16];
		size_t n = 2 + es_rng_below(&r, 15);
		for (size_t i = 0; i < n; i++)
			x[i] = (double)es_rng_below(&r, 6); /* many ties */
		cr_assert_eq(es_centered_ranks(x, n, out), 0);
		double sum = 0;
		for (size_t i = 0; i < n; i++) {
			sum += out[i];
			for (size_t j = 0; j < n; j++)
				cr_assert_eq(x[i] < x[j], out[i] < out[j]);
		}
		cr_assert_float_eq(sum, 0.0, 1e-12);
	}
}

/* g from (offset, shaped fitness) pairs equals 1/(m sigma) sum_k F_k eps_k computed over
 * all m = 2n perturbations written out, the negative twin's eps negated. */
Test(gradient, equals_naive_materialised_estimate)
{
	enum { TABLE = 50, DIM = 7, PAIRS = 4 };
	float table[TABLE];
	struct es_noise t;
	es_noise_fill(table, TABLE, 11);
	es_noise_view(table, TABLE, &t);
	struct es_pair_result res[PAIRS] = {
		{.noise_off = 0}, {.noise_off = 13}, {.noise_off = 43}, {.noise_off = 13}};
	double rets[2 * PAIRS] = {5, 1, 3, 3, -2, 8, 0.5, 4}, shaped[2 * PAIRS];
	cr_assert_eq(es_centered_ranks(rets, 2 * PAIRS, shaped), 0);
	float sigma = 0.05f;

	double eps[2 * PAIRS][DIM], naive[DIM] = {0}, g[DIM];
	for (int i = 0; i < PAIRS; i++)
		for (int j = 0; j < DIM; j++) {
			eps[2 * i][j] = table[res[i].noise_off + j];
			eps[2 * i + 1][j] = -table[res[i].noise_off + j];
		}
	for (int k = 0; k < 2 * PAIRS; k++)
		for (int j = 0; j < DIM; j++)
			naive[j] += shaped[k] * eps[k][j] / (2 * PAIRS * (double)sigma);

	es_grad_estimate(&t, DIM, res, shaped, PAIRS, sigma, g);
	for (int j = 0; j < DIM; j++)
		cr_assert_float_eq(g[j], naive[j], 1e-12, "g[%d] = %.17g, naive %.17g", j, g[j],
				   naive[j]);
}

/* ---- generations on f(theta) = -|theta - target|^2 --------------------------------- */

enum { QDIM = 10 };

struct quad {
	const struct es_noise *noise;
	float target[QDIM];
	int corrupt; /* answer with a wrong noise offset */
};

static double f(const struct quad *q, const float *theta, const float *eps, float s)
{
	double sum = 0;
	for (int j = 0; j < QDIM; j++) {
		double d = theta[j] + s * eps[j] - q->target[j];
		sum += d * d;
	}
	return -sum;
}

static int quad_eval(void *ctx, const struct es_gen_input *in, struct es_pair_result *out,
		     es_obstat *obstat)
{
	const struct quad *q = ctx;
	cr_assert_null(obstat, "obnorm is off");
	cr_assert_eq(in->nparams, QDIM);
	for (uint32_t i = 0; i < in->npairs; i++) {
		uint64_t off = in->tasks[i].noise_off;
		const float *eps = q->noise->data + off;
		out[i] = (struct es_pair_result){.noise_off = q->corrupt ? off + 1 : off,
						 .ret_pos = f(q, in->theta, eps, in->sigma),
						 .ret_neg = f(q, in->theta, eps, -in->sigma),
						 .steps_pos = 1,
						 .steps_neg = 1};
	}
	return 0;
}

static es_state *quad_state(const struct es_noise *t, uint64_t seed)
{
	struct es_config c;
	es_config_default(&c);
	c.pairs_per_gen = 16;
	c.sigma = 0.1f;
	c.lr = 0.05f;
	c.l2 = 0;
	c.obnorm = false;
	c.seed = seed;
	float zero[QDIM] = {0};
	es_state *s;
	cr_assert_eq(es_state_create(&c, t, QDIM, 1, zero, &s), 0);
	return s;
}

static double dist(const float *theta, const float *target)
{
	double s = 0;
	for (int j = 0; j < QDIM; j++)
		s += (theta[j] - target[j]) * (theta[j] - target[j]);
	return sqrt(s);
}

Test(generation, climbs_a_quadratic_and_is_deterministic)
{
	struct es_noise t;
	cr_assert_eq(es_noise_create(10000, 9, &t), 0);
	struct quad q = {.noise = &t};
	for (int j = 0; j < QDIM; j++)
		q.target[j] = (float)(j % 3) - 1.0f;
	es_state *a = quad_state(&t, 5), *b = quad_state(&t, 5);
	double d0 = dist(es_state_theta(a), q.target);
	struct es_gen_stats st, st2;
	for (int g = 0; g < 300; g++) {
		cr_assert_eq(es_generation(a, quad_eval, &q, &st), 0);
		cr_assert_eq(es_generation(b, quad_eval, &q, &st2), 0);
		cr_assert_eq(st.generation, (uint64_t)g);
		cr_assert_eq(st.ret_mean, st2.ret_mean, "same seed, same run");
	}
	cr_assert_eq(memcmp(es_state_theta(a), es_state_theta(b), QDIM * sizeof(float)), 0);
	double d1 = dist(es_state_theta(a), q.target);
	cr_assert_lt(d1, d0 / 10, "distance to the optimum %g -> %g", d0, d1);
	cr_assert_eq(st.total_episodes, 300u * 32);
	cr_assert_eq(st.total_timesteps, 300u * 32);
	cr_assert_null(es_state_obmean(a));
	es_state_destroy(a);
	es_state_destroy(b);
	es_noise_destroy(&t);
}

Test(generation, refuses_results_that_do_not_answer_their_tasks)
{
	struct es_noise t;
	cr_assert_eq(es_noise_create(10000, 9, &t), 0);
	struct quad q = {.noise = &t, .corrupt = 1};
	es_state *s = quad_state(&t, 1);
	float before[QDIM];
	memcpy(before, es_state_theta(s), sizeof(before));
	cr_assert_eq(es_generation(s, quad_eval, &q, NULL), PRISM_E_CORRUPT);
	cr_assert_eq(memcmp(before, es_state_theta(s), sizeof(before)), 0, "theta unchanged");
	es_state_destroy(s);

	struct es_config c;
	es_config_default(&c);
	c.sigma = 0;
	cr_assert_eq(es_state_create(&c, &t, QDIM, 1, before, &s), -EINVAL);
	es_config_default(&c);
	cr_assert_eq(es_state_create(&c, &t, 20000, 1, before, &s), -EINVAL,
		     "a table shorter than theta");
	es_noise_destroy(&t);
}
