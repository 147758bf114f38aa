/* humanoid.c — the humanoid task on MuJoCo; contract in humanoid.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "humanoid.h"
#include "rng.h"

/* Debian's libmujoco-samples puts the models here; CMake may point elsewhere. */
#ifndef ES_HUMANOID_MODEL_PATH
#define ES_HUMANOID_MODEL_PATH "/usr/share/mujoco/model/humanoid/humanoid.xml"
#endif

/* MuJoCo's loader wants room for its message; 1000 is what its own samples pass. */
#define MJ_ERR_LEN 1000
/* Sanity bounds on a config, far beyond any sensible value. */
#define MAX_FRAME_SKIP 1000

struct es_env_model {
	mjModel *m;
	struct es_env_config cfg; /* model_path is not kept */
	int torso;                /* body id of the torso, the root of the humanoid */
	uint32_t obs_dim;
	double dt; /* frame_skip * timestep */
};

struct es_env {
	const es_env_model *em;
	mjData *d;
};

static void say(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errsz, const char *fmt, ...)
{
	if (!err || errsz == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

void es_env_config_default(struct es_env_config *c)
{
	*c = (struct es_env_config){
		.model_path = NULL,
		.obs = ES_OBS_DEFAULT,
		.frame_skip = 5,
		.reset_noise = 1e-2,
		.forward_weight = 1.25,
		.alive_bonus = 5.0,
		.ctrl_cost = 0.1,
		.z_min = 1.0,
		.z_max = 2.0,
	};
}

const char *es_env_default_model_path(void)
{
	const char *p = getenv("PRISM_ES_MODEL");
	return p && *p ? p : ES_HUMANOID_MODEL_PATH;
}

static int check_config(const struct es_env_config *c, char *err, size_t errsz)
{
	if (c->obs & ~(unsigned)ES_OBS_ALL) {
		say(err, errsz, "unknown observation flags 0x%x", c->obs);
		return -EINVAL;
	}
	if (c->frame_skip < 1 || c->frame_skip > MAX_FRAME_SKIP) {
		say(err, errsz, "frame_skip must be 1..%d, not %d", MAX_FRAME_SKIP,
		    c->frame_skip);
		return -EINVAL;
	}
	if (!(c->reset_noise >= 0 && isfinite(c->reset_noise)) ||
	    !isfinite(c->forward_weight) || !isfinite(c->alive_bonus) ||
	    !isfinite(c->ctrl_cost) || !(c->z_min < c->z_max)) {
		say(err, errsz, "bad task parameters (reset noise, weights or z range)");
		return -EINVAL;
	}
	return 0;
}

/* The model must be a floating humanoid: a free joint first, on a body named torso. */
static int check_model(const mjModel *m, int *torso, char *err, size_t errsz)
{
	int t = mj_name2id(m, mjOBJ_BODY, "torso");
	if (t < 1 || m->njnt < 1 || m->jnt_type[0] != mjJNT_FREE || m->jnt_bodyid[0] != t ||
	    m->jnt_qposadr[0] != 0 || m->nu < 1) {
		say(err, errsz,
		    "not a humanoid model: expected a body 'torso' with a free root joint and "
		    "actuators");
		return -EINVAL;
	}
	*torso = t;
	return 0;
}

static uint32_t obs_dim_of(const mjModel *m, unsigned obs)
{
	uint32_t nb = (uint32_t)m->nbody - 1; /* the world body is left out */
	uint32_t n = (uint32_t)(m->nq - 2 + m->nv);
	if (obs & ES_OBS_CINERT)
		n += 10 * nb;
	if (obs & ES_OBS_CVEL)
		n += 6 * nb;
	if (obs & ES_OBS_QFRC_ACTUATOR)
		n += (uint32_t)m->nv;
	if (obs & ES_OBS_CFRC_EXT)
		n += 6 * nb;
	return n;
}

int es_env_model_load(const struct es_env_config *c, es_env_model **out, char *err,
		      size_t errsz)
{
	char mjerr[MJ_ERR_LEN] = "";
	int rc;
	*out = NULL;
	if ((rc = check_config(c, err, errsz)) < 0)
		return rc;
	const char *path = c->model_path ? c->model_path : es_env_default_model_path();
	if (access(path, R_OK) != 0) {
		rc = -errno;
		say(err, errsz,
		    "cannot read the humanoid model %s (%s); install Debian's "
		    "libmujoco-samples, or give the path (--model, PRISM_ES_MODEL)",
		    path, strerror(errno));
		return rc;
	}
	es_env_model *em = prism_calloc(1, sizeof(*em));
	if (!em)
		return -ENOMEM;
	em->m = mj_loadXML(path, NULL, mjerr, sizeof(mjerr));
	if (!em->m) {
		say(err, errsz, "MuJoCo cannot load %s: %s", path, mjerr);
		rc = -EINVAL;
		goto fail_load;
	}
	if ((rc = check_model(em->m, &em->torso, err, errsz)) < 0)
		goto fail_model;
	em->cfg = *c;
	em->cfg.model_path = NULL;
	em->obs_dim = obs_dim_of(em->m, c->obs);
	em->dt = em->m->opt.timestep * c->frame_skip;
	*out = em;
	return 0;

fail_model:
	mj_deleteModel(em->m);
fail_load:
	prism_free(em);
	return rc;
}

void es_env_model_destroy(es_env_model *em)
{
	if (!em)
		return;
	mj_deleteModel(em->m);
	prism_free(em);
}

uint32_t es_env_obs_dim(const es_env_model *em)
{
	return em->obs_dim;
}

uint32_t es_env_act_dim(const es_env_model *em)
{
	return (uint32_t)em->m->nu;
}

void es_env_ctrlrange(const es_env_model *em, float *lo, float *hi)
{
	const mjModel *m = em->m;
	for (int i = 0; i < m->nu; i++) {
		bool lim = m->actuator_ctrllimited[i];
		lo[i] = lim ? (float)m->actuator_ctrlrange[2 * i] : -INFINITY;
		hi[i] = lim ? (float)m->actuator_ctrlrange[2 * i + 1] : INFINITY;
	}
}

double es_env_dt(const es_env_model *em)
{
	return em->dt;
}

const mjModel *es_env_model_mj(const es_env_model *em)
{
	return em->m;
}

int es_env_create(const es_env_model *em, es_env **out)
{
	*out = NULL;
	es_env *e = prism_calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->em = em;
	e->d = mj_makeData(em->m);
	if (!e->d) {
		prism_free(e);
		return -ENOMEM;
	}
	*out = e;
	return 0;
}

void es_env_destroy(es_env *e)
{
	if (!e)
		return;
	mj_deleteData(e->d);
	prism_free(e);
}

const mjData *es_env_data(const es_env *e)
{
	return e->d;
}

/* Copies n doubles as floats; false when one is not finite. */
static bool put(float *dst, const mjtNum *src, int n)
{
	bool ok = true;
	for (int i = 0; i < n; i++) {
		dst[i] = (float)src[i];
		ok &= isfinite(dst[i]);
	}
	return ok;
}

/* Writes the observation; false when some part of the state is not finite. */
static bool observe(const es_env_model *em, const mjData *d, float *obs)
{
	const mjModel *m = em->m;
	unsigned flags = em->cfg.obs;
	int nb = m->nbody - 1;
	bool ok = put(obs, d->qpos + 2, m->nq - 2);
	obs += m->nq - 2;
	ok &= put(obs, d->qvel, m->nv);
	obs += m->nv;
	if (flags & ES_OBS_CINERT) {
		ok &= put(obs, d->cinert + 10, 10 * nb);
		obs += 10 * nb;
	}
	if (flags & ES_OBS_CVEL) {
		ok &= put(obs, d->cvel + 6, 6 * nb);
		obs += 6 * nb;
	}
	if (flags & ES_OBS_QFRC_ACTUATOR) {
		ok &= put(obs, d->qfrc_actuator, m->nv);
		obs += m->nv;
	}
	if (flags & ES_OBS_CFRC_EXT)
		ok &= put(obs, d->cfrc_ext + 6, 6 * nb);
	return ok;
}

void es_env_reset(es_env *e, uint64_t seed, float *obs)
{
	const mjModel *m = e->em->m;
	mjData *d = e->d;
	double c = e->em->cfg.reset_noise;
	struct es_rng r;
	es_rng_seed(&r, seed);
	mj_resetData(m, d);
	for (int i = 0; i < m->nq; i++)
		d->qpos[i] = m->qpos0[i] + c * (2.0 * es_rng_uniform(&r) - 1.0);
	for (int i = 0; i < m->nv; i++)
		d->qvel[i] = c * (2.0 * es_rng_uniform(&r) - 1.0);
	mju_normalize4(d->qpos + 3); /* the free joint's quaternion */
	mj_forward(m, d);
	if (e->em->cfg.obs & ES_OBS_CFRC_EXT)
		mj_rnePostConstraint(m, d);
	observe(e->em, d, obs);
}

/* The x coordinate of the humanoid's centre of mass (its root body's subtree). */
static double com_x(const es_env_model *em, const mjData *d)
{
	return d->subtree_com[3 * em->torso];
}

void es_env_step(es_env *e, const float *act, float *obs, struct es_env_step_info *info)
{
	const es_env_model *em = e->em;
	const struct es_env_config *c = &em->cfg;
	const mjModel *m = em->m;
	mjData *d = e->d;
	double sq = 0;
	for (int i = 0; i < m->nu; i++) {
		double a = isfinite(act[i]) ? (double)act[i] : 0.0;
		if (m->actuator_ctrllimited[i])
			a = fmin(fmax(a, m->actuator_ctrlrange[2 * i]),
				 m->actuator_ctrlrange[2 * i + 1]);
		d->ctrl[i] = a;
		sq += a * a;
	}
	int bad_before = d->warning[mjWARN_BADQACC].number;
	double x0 = com_x(em, d);
	for (int k = 0; k < c->frame_skip; k++)
		mj_step(m, d);
	if (c->obs & ES_OBS_CFRC_EXT)
		mj_rnePostConstraint(m, d);
	double vx = (com_x(em, d) - x0) / em->dt;
	/* After a bad acceleration MuJoCo has reset the state: the step's motion is void. */
	bool unstable = d->warning[mjWARN_BADQACC].number != bad_before;
	bool ok = observe(em, d, obs) && isfinite(vx) && !unstable;
	double z = d->qpos[2];

	info->x_velocity = ok ? vx : 0.0;
	info->forward = c->forward_weight * info->x_velocity;
	info->alive = c->alive_bonus;
	info->ctrl_cost = c->ctrl_cost * sq;
	info->reward = info->forward + info->alive - info->ctrl_cost;
	info->done = !ok || !(z > c->z_min && z < c->z_max);
}
