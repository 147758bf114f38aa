/* The humanoid task: model loading and its errors, observation layout and dimensions,
 * resets determined by their seed, the reward's terms recomputed by hand from mjData,
 * action clipping, and the fall that ends an episode. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "humanoid.h"

static char err[512];

static es_env_model *load(unsigned obs)
{
	struct es_env_config c;
	es_env_model *m = NULL;
	es_env_config_default(&c);
	c.obs = obs;
	int rc = es_env_model_load(&c, &m, err, sizeof(err));
	cr_assert_eq(rc, 0, "cannot load the humanoid: %s", err);
	return m;
}

/* Centre of mass of every body, as gym's mass_center. */
static double mass_center_x(const mjModel *m, const mjData *d)
{
	double mx = 0, mass = 0;
	for (int b = 0; b < m->nbody; b++) {
		mx += m->body_mass[b] * d->xipos[3 * b];
		mass += m->body_mass[b];
	}
	return mx / mass;
}

Test(humanoid, dimensions_of_each_observation_choice)
{
	struct {
		unsigned flags;
		uint32_t dim;
	} cases[] = {
		{0, 53}, {ES_OBS_CINERT, 53 + 160}, {ES_OBS_DEFAULT, 336}, {ES_OBS_ALL, 432}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		es_env_model *m = load(cases[i].flags);
		cr_assert_eq(es_env_obs_dim(m), cases[i].dim, "flags 0x%x", cases[i].flags);
		cr_assert_eq(es_env_act_dim(m), 21);
		cr_assert_float_eq(es_env_dt(m), 0.025, 1e-12);
		es_env_model_destroy(m);
	}
	es_env_model_destroy(NULL);
}

Test(humanoid, missing_or_bad_model_files_say_why)
{
	struct es_env_config c;
	es_env_model *m = (es_env_model *)1;
	es_env_config_default(&c);
	c.model_path = "/nonexistent/humanoid.xml";
	cr_assert_eq(es_env_model_load(&c, &m, err, sizeof(err)), -ENOENT);
	cr_assert_null(m);
	cr_assert(strstr(err, "/nonexistent/humanoid.xml") && strstr(err, "libmujoco-samples"),
		  "message: %s", err);

	char path[] = "/tmp/prism_es_model_XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	const char *junk = "<mujoco><worldbody><body name='torso'";
	cr_assert_eq(write(fd, junk, strlen(junk)), (ssize_t)strlen(junk));
	close(fd);
	c.model_path = path;
	cr_assert_eq(es_env_model_load(&c, &m, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "MuJoCo cannot load"), "message: %s", err);

	/* Valid MuJoCo, but no floating torso and no actuators. */
	const char *box = "<mujoco><worldbody><body name='box'><geom type='box' size='1 1 1'/>"
			  "</body></worldbody></mujoco>";
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(box, f);
	fclose(f);
	cr_assert_eq(es_env_model_load(&c, &m, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "not a humanoid"), "message: %s", err);
	unlink(path);

	es_env_config_default(&c);
	c.frame_skip = 0;
	cr_assert_eq(es_env_model_load(&c, &m, err, sizeof(err)), -EINVAL);
	es_env_config_default(&c);
	c.obs = 1u << 20;
	cr_assert_eq(es_env_model_load(&c, &m, err, sizeof(err)), -EINVAL);
	es_env_config_default(&c);
	c.z_min = 3.0;
	cr_assert_eq(es_env_model_load(&c, &m, err, sizeof(err)), -EINVAL);
}

Test(humanoid, reset_is_determined_by_its_seed)
{
	es_env_model *m = load(ES_OBS_DEFAULT);
	es_env *a, *b;
	uint32_t n = es_env_obs_dim(m);
	float oa[336], ob[336], act[21];
	cr_assert_eq(n, 336);
	cr_assert_eq(es_env_create(m, &a), 0);
	cr_assert_eq(es_env_create(m, &b), 0);
	es_env_reset(a, 7, oa);
	es_env_reset(b, 7, ob);
	cr_assert_eq(memcmp(oa, ob, sizeof(oa)), 0);
	/* The same actions from the same start give the same trajectory, bit for bit. */
	for (int t = 0; t < 20; t++) {
		struct es_env_step_info ia, ib;
		for (int i = 0; i < 21; i++)
			act[i] = (float)sin(0.3 * t + i);
		es_env_step(a, act, oa, &ia);
		es_env_step(b, act, ob, &ib);
		cr_assert_eq(memcmp(oa, ob, sizeof(oa)), 0, "step %d", t);
		cr_assert_eq(ia.reward, ib.reward);
	}
	es_env_reset(a, 7, oa);
	es_env_reset(b, 8, ob);
	cr_assert_neq(memcmp(oa, ob, sizeof(oa)), 0, "another seed, another start");
	/* The noise is small: the start is qpos0 give or take 0.01. */
	const mjData *d = es_env_data(a);
	const mjModel *mm = es_env_model_mj(m);
	for (int i = 0; i < mm->nq; i++)
		cr_assert_leq(fabs(d->qpos[i] - mm->qpos0[i]), 0.011, "qpos[%d]", i);
	for (int i = 0; i < mm->nv; i++)
		cr_assert_leq(fabs(d->qvel[i]), 0.01, "qvel[%d]", i);
	es_env_destroy(a);
	es_env_destroy(b);
	es_env_destroy(NULL);
	es_env_model_destroy(m);
}

/* One step with out-of-range actions: ctrl is clipped, and reward, forward term and
 * control cost match what the documented formula gives from mjData before and after. */
Test(humanoid, reward_terms_match_mjdata_by_hand)
{
	es_env_model *m = load(ES_OBS_DEFAULT);
	const mjModel *mm = es_env_model_mj(m);
	es_env *e;
	float obs[336], act[21];
	struct es_env_step_info info;
	cr_assert_eq(es_env_create(m, &e), 0);
	const mjData *d = es_env_data(e);
	es_env_reset(e, 3, obs);
	/* A few steps first so that the body moves. */
	for (int t = 0; t < 5; t++) {
		for (int i = 0; i < 21; i++)
			act[i] = 0.3f * (float)cos(i + t);
		es_env_step(e, act, obs, &info);
		cr_assert_not(info.done);
	}
	for (int i = 0; i < 21; i++)
		act[i] = (float)(3.0 * sin(1.7 * i)); /* many beyond [-1, 1] */
	act[4] = NAN;
	double x0 = mass_center_x(mm, d);
	es_env_step(e, act, obs, &info);
	double x1 = mass_center_x(mm, d);

	double sq = 0;
	for (int i = 0; i < 21; i++) {
		double want = i == 4 ? 0.0 : fmin(fmax(act[i], -1.0), 1.0);
		cr_assert_float_eq(d->ctrl[i], want, 1e-12, "ctrl[%d]", i);
		sq += want * want;
	}
	double vx = (x1 - x0) / (5 * mm->opt.timestep);
	cr_assert_float_eq(info.x_velocity, vx, 1e-9, "vx %g, by hand %g", info.x_velocity, vx);
	cr_assert_float_eq(info.forward, 1.25 * vx, 1e-9);
	cr_assert_eq(info.alive, 5.0);
	cr_assert_float_eq(info.ctrl_cost, 0.1 * sq, 1e-12);
	cr_assert_float_eq(info.reward, 1.25 * vx + 5.0 - 0.1 * sq, 1e-9);
	cr_assert(fabs(vx) > 1e-6, "the body moved");
	/* Observation layout: qpos[2:], then qvel, then the rest. */
	cr_assert_eq(obs[0], (float)d->qpos[2]);
	cr_assert_eq(obs[25], (float)d->qpos[27]);
	cr_assert_eq(obs[26], (float)d->qvel[0]);
	cr_assert_eq(obs[52], (float)d->qvel[26]);
	cr_assert_eq(obs[53], (float)d->cinert[10]);
	cr_assert_eq(obs[335], (float)d->qfrc_actuator[26]);
	es_env_destroy(e);
	es_env_model_destroy(m);
}

/* With no control the humanoid collapses; the step on which the torso drops below 1.0
 * is the first that says done, every value before it is finite. */
Test(humanoid, falls_without_control_and_done_follows_the_torso)
{
	es_env_model *m = load(ES_OBS_DEFAULT);
	es_env *e;
	float obs[336], act[21] = {0};
	struct es_env_step_info info = {0};
	cr_assert_eq(es_env_create(m, &e), 0);
	const mjData *d = es_env_data(e);
	es_env_reset(e, 1, obs);
	int t;
	for (t = 0; t < 400 && !info.done; t++) {
		double z = d->qpos[2];
		cr_assert(z > 1.0 && z < 2.0, "healthy before the step, z %g", z);
		es_env_step(e, act, obs, &info);
		cr_assert(isfinite(info.reward));
		cr_assert_float_eq(info.reward, 1.25 * info.x_velocity + 5.0, 1e-9,
				   "no ctrl cost");
		for (uint32_t i = 0; i < 336; i++)
			cr_assert(isfinite(obs[i]));
	}
	cr_assert(info.done, "still standing after %d steps", t);
	cr_assert_leq(d->qpos[2], 1.0, "done with the torso at %g", d->qpos[2]);
	cr_assert_gt(t, 5, "fell at once (step %d)", t);
	es_env_destroy(e);
	es_env_model_destroy(m);
}
