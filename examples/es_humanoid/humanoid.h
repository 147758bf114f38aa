/* humanoid.h — the MuJoCo humanoid locomotion task of the ES application.
 *
 * The task follows gym's Humanoid-v3 on the humanoid model that Debian ships in
 * libmujoco-samples (DeepMind Control Suite's body: 27 degrees of freedom, 21 motors,
 * timestep 5 ms, controls in [-1, 1]):
 *
 *   reset   qpos = qpos0 + U(-c, c), qvel = U(-c, c), c = 0.01 (gym's reset_noise_scale),
 *           drawn from a generator seeded by the caller, so one seed is one start state.
 *           The root quaternion is renormalised after the noise (gym leaves it for MuJoCo
 *           to normalise; doing it here keeps qpos a valid state).
 *   step    the action is clipped to each actuator's ctrlrange and held for frame_skip
 *           (5) physics steps, so one environment step is 25 ms of simulated time.
 *   reward  1.25 * vx  +  5.0  -  0.1 * sum(ctrl^2), where vx is the x velocity of the
 *           humanoid's centre of mass (the torso's subtree, every body but the world:
 *           gym v3's mass_center) over the step, (x_after - x_before) / (frame_skip * dt),
 *           and ctrl is the clipped action.  The alive bonus is paid on every step, the
 *           last one too (gym v3 with terminate_when_unhealthy).  gym's contact cost is
 *           left out: under MuJoCo >= 2.0 it is zero there too.
 *   done    when the torso height qpos[2] leaves the open interval (1.0, 2.0), or when
 *           MuJoCo reports the simulation unstable (a bad-acceleration warning) or a
 *           state turns non-finite.  The time limit is the caller's (es_rollout).
 *   obs     qpos[2:] (26) and qvel (27) always, then what ES_OBS_* flags add, each for
 *           bodies 1..16 (the world body's rows are always zero and are left out):
 *           cinert (10 per body, 160), cvel (6 per body, 96), qfrc_actuator (27) and
 *           cfrc_ext (6 per body, 96; needs an extra mj_rnePostConstraint per step).
 *           ES_OBS_DEFAULT is gym v3's choice less cfrc_ext: 26 + 27 + 160 + 96 + 27 = 336
 *           floats.  Like gym, cinert, cvel and qfrc_actuator are those MuJoCo computed at
 *           the start of the last physics step.
 *
 * Ownership and threads.  es_env_model holds the mjModel, which MuJoCo never writes while
 * simulating: one model may be shared, read-only, by any number of environments on any
 * threads, and must outlive them.  An es_env holds one mjData and is used by one thread
 * at a time.  So a worker loads one model and creates one environment per thread.
 * Stepping allocates nothing.
 *
 * Errors: functions return 0 or a negative prism code (base/error.h); loaders also write
 * a one-line reason into the caller's err buffer.
 */
#ifndef PRISM_ES_HUMANOID_H
#define PRISM_ES_HUMANOID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mujoco/mujoco.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Optional observation parts; qpos[2:] and qvel are always there. */
enum {
	ES_OBS_CINERT = 1u << 0,
	ES_OBS_CVEL = 1u << 1,
	ES_OBS_QFRC_ACTUATOR = 1u << 2,
	ES_OBS_CFRC_EXT = 1u << 3,
	ES_OBS_DEFAULT = ES_OBS_CINERT | ES_OBS_CVEL | ES_OBS_QFRC_ACTUATOR,
	ES_OBS_ALL = ES_OBS_DEFAULT | ES_OBS_CFRC_EXT,
};

/* What the task is; es_env_config_default() gives the values documented above. */
struct es_env_config {
	const char *model_path; /* borrowed during load; NULL: es_env_default_model_path() */
	unsigned obs;           /* ES_OBS_* flags */
	int frame_skip;         /* physics steps per environment step, >= 1 */
	double reset_noise;     /* c of the uniform reset noise, >= 0 */
	double forward_weight;  /* weight of the forward velocity */
	double alive_bonus;     /* paid per step */
	double ctrl_cost;       /* weight of sum(ctrl^2) */
	double z_min, z_max;    /* healthy torso heights, open interval */
};

/* The terms of one step's reward, for the curious and for tests. */
struct es_env_step_info {
	double reward;     /* forward + alive - ctrl_cost */
	double forward;    /* forward_weight * x_velocity */
	double alive;      /* alive_bonus */
	double ctrl_cost;  /* ctrl_cost weight * sum(clipped action^2) */
	double x_velocity; /* of the centre of mass, m/s */
	bool done;
};

typedef struct es_env_model es_env_model;
typedef struct es_env es_env;

void es_env_config_default(struct es_env_config *c);

/* The model file used when none is given: $PRISM_ES_MODEL when set, else where Debian's
 * libmujoco-samples installs humanoid.xml.  A static string or the environment's; never
 * NULL. */
const char *es_env_default_model_path(void);

/* Load and check the model: it must have a free root joint (the torso), actuators and a
 * body named "torso".  *out is the caller's, freed with es_env_model_destroy().  Errors:
 * -ENOENT (no such file: the message names the Debian package), -EINVAL (bad config, a
 * model MuJoCo rejects, or one that is not a humanoid of this kind), -ENOMEM. */
int es_env_model_load(const struct es_env_config *c, es_env_model **out, char *err,
		      size_t errsz);
void es_env_model_destroy(es_env_model *m);

uint32_t es_env_obs_dim(const es_env_model *m);
uint32_t es_env_act_dim(const es_env_model *m);
/* Each actuator's control range into lo[act_dim] and hi[act_dim] ([-inf, inf] where the
 * actuator is not ctrllimited). */
void es_env_ctrlrange(const es_env_model *m, float *lo, float *hi);
/* Simulated seconds per environment step (frame_skip * timestep). */
double es_env_dt(const es_env_model *m);
/* Borrowed, valid while m lives; read-only. */
const mjModel *es_env_model_mj(const es_env_model *m);

/* An environment on model m (borrowed: m must outlive it).  -ENOMEM. */
int es_env_create(const es_env_model *m, es_env **out);
void es_env_destroy(es_env *e);

/* Reset to the start state for seed and write the observation into obs[obs_dim]. */
void es_env_reset(es_env *e, uint64_t seed, float *obs);

/* One environment step with act[act_dim] (non-finite entries count as 0); writes the
 * next observation into obs[obs_dim] and the reward terms into *info. */
void es_env_step(es_env *e, const float *act, float *obs, struct es_env_step_info *info);

/* The simulation state, borrowed and read-only, for tests and diagnostics. */
const mjData *es_env_data(const es_env *e);

#ifdef __cplusplus
}
#endif
#endif
