/* The MLP policy: parameter count, actions inside their bounds, deterministic
 * initialisation, observation normalisation, the file format's round trip and its
 * refusals (corrupt, truncated, foreign, missing), and observation statistics. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "policy.h"
#include "rng.h"

enum { OBS = 9, ACT = 4 };
static const float lo[ACT] = {-1, -0.4f, 0, -INFINITY};
static const float hi[ACT] = {1, 0.4f, 2, INFINITY};
static char err[512];
static char path[64];

static es_policy *make(void)
{
	struct es_policy_arch a = {
		.obs_dim = OBS, .act_dim = ACT, .nhidden = 2, .hidden = {8, 5}};
	es_policy *p = NULL;
	cr_assert_eq(es_policy_create(&a, lo, hi, &p), 0);
	return p;
}

static void tmp_path(void)
{
	strcpy(path, "/tmp/prism_es_policy_XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
}

Test(policy, parameter_count_and_bounded_actions)
{
	es_policy *p = make();
	size_t n = es_policy_nparams(p);
	cr_assert_eq(n, (size_t)(OBS * 8 + 8) + (8 * 5 + 5) + (5 * ACT + ACT));
	float *theta = prism_malloc(n * sizeof(float));
	es_policy_init_params(p, 1, theta);
	/* Large weights saturate tanh: actions reach, but never leave, their bounds. */
	for (size_t i = 0; i < n; i++)
		theta[i] *= 100.0f;
	struct es_rng r;
	es_rng_seed(&r, 2);
	for (int k = 0; k < 1000; k++) {
		float obs[OBS], act[ACT];
		for (int i = 0; i < OBS; i++)
			obs[i] = (float)(20.0 * es_rng_uniform(&r) - 10.0);
		es_policy_act(p, theta, obs, act);
		for (int j = 0; j < 3; j++)
			cr_assert(act[j] >= lo[j] && act[j] <= hi[j], "act[%d] = %g", j,
				  act[j]);
		cr_assert(act[3] >= -1 && act[3] <= 1, "unbounded: the raw tanh");
	}
	prism_free(theta);
	es_policy_destroy(p);
	es_policy_destroy(NULL);
}

Test(policy, initialisation_is_seeded_and_normalised)
{
	es_policy *p = make();
	size_t n = es_policy_nparams(p);
	float *a = prism_malloc(n * sizeof(float)), *b = prism_malloc(n * sizeof(float));
	es_policy_init_params(p, 5, a);
	es_policy_init_params(p, 5, b);
	cr_assert_eq(memcmp(a, b, n * sizeof(float)), 0);
	es_policy_init_params(p, 6, b);
	cr_assert_neq(memcmp(a, b, n * sizeof(float)), 0);
	/* First layer: each unit's 9 incoming weights have norm 1, biases are 0.  Output
	 * layer (after 72 + 8 + 40 + 5 = 125 floats): norm 0.01. */
	for (int j = 0; j < 8; j++) {
		double ss = 0;
		for (int i = 0; i < OBS; i++)
			ss += a[i * 8 + j] * a[i * 8 + j];
		cr_assert_float_eq(sqrt(ss), 1.0, 1e-5);
		cr_assert_eq(a[72 + j], 0.0f);
	}
	for (int j = 0; j < ACT; j++) {
		double ss = 0;
		for (int i = 0; i < 5; i++)
			ss += a[125 + i * ACT + j] * a[125 + i * ACT + j];
		cr_assert_float_eq(sqrt(ss), 0.01, 1e-7);
	}
	prism_free(a);
	prism_free(b);
	es_policy_destroy(p);
}

/* Normalisation is (obs - mean) / std clipped to +-5: an observation equal to the mean
 * acts like a zero one with identity normalisation. */
Test(policy, observation_normalisation)
{
	es_policy *p = make();
	size_t n = es_policy_nparams(p);
	float *theta = prism_malloc(n * sizeof(float));
	es_policy_init_params(p, 3, theta);
	float mean[OBS], std[OBS], obs[OBS], zero[OBS] = {0}, a1[ACT], a2[ACT], a3[ACT];
	for (int i = 0; i < OBS; i++) {
		mean[i] = (float)i;
		std[i] = 0.5f;
		obs[i] = (float)i;
	}
	es_policy_act(p, theta, zero, a1);
	cr_assert_eq(es_policy_set_obnorm(p, mean, std), 0);
	es_policy_act(p, theta, obs, a2);
	cr_assert_eq(memcmp(a1, a2, sizeof(a1)), 0);
	/* 1000 and 10 standard deviations out both clip to 5. */
	for (int i = 0; i < OBS; i++)
		obs[i] = mean[i] + 500.0f;
	es_policy_act(p, theta, obs, a2);
	for (int i = 0; i < OBS; i++)
		obs[i] = mean[i] + 5.0f;
	es_policy_act(p, theta, obs, a3);
	cr_assert_eq(memcmp(a2, a3, sizeof(a2)), 0);
	std[2] = 0;
	cr_assert_eq(es_policy_set_obnorm(p, mean, std), -EINVAL);
	prism_free(theta);
	es_policy_destroy(p);
}

/* A policy saved and loaded acts exactly as before. */
Test(policy, save_load_round_trip)
{
	es_policy *p = make(), *q;
	size_t n = es_policy_nparams(p);
	float *theta = prism_malloc(n * sizeof(float)), *theta2;
	es_policy_init_params(p, 8, theta);
	float mean[OBS], std[OBS];
	for (int i = 0; i < OBS; i++) {
		mean[i] = 0.1f * (float)i;
		std[i] = 1.0f + (float)i;
	}
	cr_assert_eq(es_policy_set_obnorm(p, mean, std), 0);
	tmp_path();
	cr_assert_eq(es_policy_save(p, theta, path, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(es_policy_load(path, &q, &theta2, err, sizeof(err)), 0, "%s", err);
	const struct es_policy_arch *a = es_policy_get_arch(q);
	cr_assert_eq(a->obs_dim, OBS);
	cr_assert_eq(a->act_dim, ACT);
	cr_assert_eq(a->nhidden, 2);
	cr_assert_eq(a->hidden[0], 8);
	cr_assert_eq(a->hidden[1], 5);
	cr_assert_eq(es_policy_nparams(q), n);
	cr_assert_eq(memcmp(theta, theta2, n * sizeof(float)), 0);
	cr_assert_eq(memcmp(es_policy_obmean(q), mean, sizeof(mean)), 0);
	cr_assert_eq(memcmp(es_policy_obstd(q), std, sizeof(std)), 0);
	for (int k = 0; k < 10; k++) {
		float obs[OBS], a1[ACT], a2[ACT];
		for (int i = 0; i < OBS; i++)
			obs[i] = (float)sin(k + i);
		es_policy_act(p, theta, obs, a1);
		es_policy_act(q, theta2, obs, a2);
		cr_assert_eq(memcmp(a1, a2, sizeof(a1)), 0);
	}
	unlink(path);
	prism_free(theta2);
	prism_free(theta);
	es_policy_destroy(q);
	es_policy_destroy(p);
}

static long file_size(void)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fclose(f);
	return n;
}

static void poke(long at, unsigned char x)
{
	FILE *f = fopen(path, "r+b");
	cr_assert_not_null(f);
	fseek(f, at, SEEK_SET);
	int c = fgetc(f);
	fseek(f, at, SEEK_SET);
	fputc(c ^ x, f);
	fclose(f);
}

/* Loads path expecting rc and a message containing what. */
static void refused(int rc, const char *what)
{
	es_policy *q = (es_policy *)1;
	float *t = (float *)1;
	err[0] = 0;
	cr_assert_eq(es_policy_load(path, &q, &t, err, sizeof(err)), rc, "%s", err);
	cr_assert_null(q);
	cr_assert_null(t);
	cr_assert(strstr(err, what), "message '%s' lacks '%s'", err, what);
}

Test(policy, corrupt_truncated_foreign_and_missing_files_are_refused)
{
	es_policy *p = make();
	size_t n = es_policy_nparams(p);
	float *theta = prism_malloc(n * sizeof(float));
	es_policy_init_params(p, 8, theta);
	tmp_path();
	cr_assert_eq(es_policy_save(p, theta, path, err, sizeof(err)), 0, "%s", err);
	long size = file_size();
	cr_assert_eq(size, 64 + (long)(sizeof(float) * (2 * ACT + 2 * OBS + n)));

	poke(size - 3, 0x10); /* a bit of theta */
	refused(PRISM_E_CORRUPT, "corrupt");
	poke(size - 3, 0x10);
	poke(20, 0x01); /* nhidden in the header */
	refused(PRISM_E_CORRUPT, "header is corrupt");
	poke(20, 0x01);
	poke(8, 0x02); /* the version */
	refused(PRISM_E_BAD_VERSION, "version");
	poke(8, 0x02);
	poke(0, 0x20); /* the magic */
	refused(PRISM_E_BAD_MAGIC, "not a prism ES policy file");
	poke(0, 0x20);
	cr_assert_eq(truncate(path, size - 4), 0);
	refused(PRISM_E_CORRUPT, "sizes do not match");
	cr_assert_eq(truncate(path, 10), 0);
	refused(PRISM_E_TRUNCATED, "truncated");
	unlink(path);
	refused(-ENOENT, "cannot open");
	cr_assert_eq(es_policy_save(p, theta, "/nonexistent/dir/policy.bin", err, sizeof(err)),
		     -ENOENT);
	cr_assert(strstr(err, "/nonexistent/dir/policy.bin"), "%s", err);
	prism_free(theta);
	es_policy_destroy(p);
}

Test(policy, bad_architectures_are_refused)
{
	es_policy *p;
	struct es_policy_arch a = {.obs_dim = OBS, .act_dim = ACT, .nhidden = 5};
	cr_assert_eq(es_policy_create(&a, lo, hi, &p), -EINVAL);
	a = (struct es_policy_arch){.obs_dim = 0, .act_dim = ACT};
	cr_assert_eq(es_policy_create(&a, lo, hi, &p), -EINVAL);
	a = (struct es_policy_arch){
		.obs_dim = OBS, .act_dim = ACT, .nhidden = 1, .hidden = {0}};
	cr_assert_eq(es_policy_create(&a, lo, hi, &p), -EINVAL);
	float badlo[ACT] = {1, 0, 0, 0}, badhi[ACT] = {0, 1, 1, 1};
	a = (struct es_policy_arch){.obs_dim = OBS, .act_dim = ACT};
	cr_assert_eq(es_policy_create(&a, badlo, badhi, &p), -EINVAL, "lo above hi");
	cr_assert_eq(es_policy_create(&a, lo, hi, &p), 0, "no hidden layer: linear + tanh");
	es_policy_destroy(p);
}

/* Statistics: mean and std of what was added, with Salimans' small prior, and merging is
 * adding. */
Test(obstat, mean_std_and_merge)
{
	es_obstat *a, *b;
	cr_assert_eq(es_obstat_create(2, &a), 0);
	cr_assert_eq(es_obstat_create(2, &b), 0);
	float mean[2], std[2];
	es_obstat_norm(a, mean, std);
	cr_assert_eq(mean[0], 0.0f);
	cr_assert_float_eq(std[0], 1.0f, 1e-6, "no data: identity");
	for (int i = 0; i < 1000; i++) {
		float x[2] = {(float)(i % 2 ? 3 : 1), 7.0f}; /* mean 2, std 1; constant 7 */
		es_obstat_add(i < 600 ? a : b, x);
	}
	cr_assert_eq(es_obstat_merge(a, b), 0);
	size_t len;
	double *raw = es_obstat_raw(a, &len);
	cr_assert_eq(len, 5);
	cr_assert_eq(raw[0], 1000.0);
	es_obstat_norm(a, mean, std);
	cr_assert_float_eq(mean[0], 2.0f, 1e-4);
	cr_assert_float_eq(std[0], 1.0f, 1e-3);
	cr_assert_float_eq(mean[1], 7.0f, 1e-3);
	cr_assert_float_eq(std[1], 0.1f, 1e-3, "a constant gets the floor, 0.1");
	es_obstat *c;
	cr_assert_eq(es_obstat_create(3, &c), 0);
	cr_assert_eq(es_obstat_merge(a, c), -EINVAL);
	es_obstat_clear(a);
	cr_assert_eq(es_obstat_raw(a, &len)[0], 0.0);
	es_obstat_destroy(a);
	es_obstat_destroy(b);
	es_obstat_destroy(c);
	es_obstat_destroy(NULL);
}
