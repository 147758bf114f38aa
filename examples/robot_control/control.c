/* control.c — the control loop, its policy actor, the floor and the ES load; see
 * control.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/cpu.h"
#include "control.h"
#include "es.h"

/* ---- the policy's weights as one store object ------------------------------------------
 *
 * A header, then floats: lo[act], hi[act], mean[obs], std[obs], theta[nparams]. */
#define W_MAGIC 0x57505443u /* "CTPW" */

struct w_hdr {
	uint32_t magic;
	uint32_t obs_dim, act_dim, nhidden;
	uint32_t hidden[ES_POLICY_MAX_HIDDEN];
	uint64_t nparams;
};

static size_t w_floats(const struct w_hdr *h)
{
	return 2 * (size_t)h->act_dim + 2 * (size_t)h->obs_dim + (size_t)h->nparams;
}

/* ---- the policy actor ---------------------------------------------------------------- */

struct pol_state {
	es_policy *pol;
	float *theta;
	uint32_t obs_dim, act_dim;
	float act[ES_POLICY_MAX_WIDTH];
};

static int pol_new(prism_task_ctx *ctx, const prism_arg *args, size_t nargs, void **state)
{
	(void)ctx;
	(void)args;
	(void)nargs;
	*state = prism_calloc(1, sizeof(struct pol_state));
	return *state ? 0 : -ENOMEM;
}

static void pol_free(void *state)
{
	struct pol_state *s = state;
	if (!s)
		return;
	es_policy_destroy(s->pol);
	prism_free(s->theta);
	prism_free(s);
}

/* load(weights): install the MLP from a weights object (read where it lies in the
 * store; the actor keeps its own copy of theta, which it reads on every call). */
static int pol_load(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct pol_state *s = state;
	struct w_hdr h;
	if (nargs != 1 || args[0].len < sizeof(h))
		return prism_fail(ctx, "load wants one weights object");
	memcpy(&h, args[0].data, sizeof(h));
	struct es_policy_arch a = {
		.obs_dim = h.obs_dim, .act_dim = h.act_dim, .nhidden = h.nhidden};
	if (h.magic != W_MAGIC || h.nhidden > ES_POLICY_MAX_HIDDEN || h.obs_dim == 0 ||
	    h.act_dim == 0 || h.obs_dim > ES_POLICY_MAX_WIDTH ||
	    h.act_dim > ES_POLICY_MAX_WIDTH || h.nparams > (64u << 20) ||
	    args[0].len != sizeof(h) + w_floats(&h) * sizeof(float))
		return prism_fail(ctx, "not a weights object (bad header or length)");
	memcpy(a.hidden, h.hidden, sizeof(a.hidden));
	const float *f = (const float *)((const uint8_t *)args[0].data + sizeof(h));
	es_policy *pol;
	int rc = es_policy_create(&a, f, f + h.act_dim, &pol);
	if (rc)
		return prism_fail(ctx, "bad architecture: %s", prism_strerror(rc));
	if (es_policy_nparams(pol) != h.nparams ||
	    es_policy_set_obnorm(pol, f + 2 * h.act_dim, f + 2 * h.act_dim + h.obs_dim) != 0) {
		es_policy_destroy(pol);
		return prism_fail(ctx, "parameter count or normalisation does not fit");
	}
	float *theta = prism_malloc(h.nparams * sizeof(float));
	if (!theta) {
		es_policy_destroy(pol);
		return -ENOMEM;
	}
	memcpy(theta, f + 2 * h.act_dim + 2 * h.obs_dim, h.nparams * sizeof(float));
	es_policy_destroy(s->pol);
	prism_free(s->theta);
	*s = (struct pol_state){
		.pol = pol, .theta = theta, .obs_dim = h.obs_dim, .act_dim = h.act_dim};
	return prism_return(ctx, 0, NULL, 0);
}

/* act(obs[obs_dim] floats) -> action[act_dim] floats. */
static int pol_act(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	struct pol_state *s = state;
	if (!s->pol)
		return prism_fail(ctx, "no weights loaded");
	if (nargs != 1 || args[0].len != s->obs_dim * sizeof(float))
		return prism_fail(ctx, "act wants %u floats", s->obs_dim);
	es_policy_act(s->pol, s->theta, args[0].data, s->act);
	return prism_return(ctx, 0, s->act, s->act_dim * sizeof(float));
}

/* cpu() -> the CPU the actor runs on (int32). */
static int pol_cpu(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	(void)state;
	(void)args;
	(void)nargs;
	int32_t cpu = sched_getcpu();
	return prism_return(ctx, 0, &cpu, sizeof(cpu));
}

PRISM_ACTOR(CtlPolicy, pol_new, pol_free);
PRISM_METHOD(CtlPolicy, pol_load);
PRISM_METHOD(CtlPolicy, pol_act);
PRISM_METHOD(CtlPolicy, pol_cpu);

/* ---- the robot ------------------------------------------------------------------------ */

struct ctl_robot {
	es_env_model *model;
	es_env *env;
	uint32_t obs_dim, act_dim;
	uint64_t dt_ns; /* one physics step */
	uint64_t seed;
	float *obs, *act;
	prism_ref weights;
	bool have_weights;
	prism_actor actor;
	bool have_actor;
	int cpu;
};

static int call_get(prism_actor a, const char *method, const prism_value *args, size_t nargs,
		    void *out, size_t outlen, char *err, size_t errsz)
{
	prism_ref r;
	const void *d;
	size_t n;
	int rc = prism_actor_call(a, method, args, nargs, NULL, &r);
	if (rc) {
		snprintf(err, errsz, "%s: %s", method, prism_last_error());
		return rc;
	}
	rc = prism_get(r, 30 * (int64_t)PRISM_NS_PER_SEC, &d, &n);
	if (rc == 0 && n != outlen)
		rc = PRISM_E_PROTO;
	if (rc)
		snprintf(err, errsz, "%s: %s%s%.*s", method, prism_strerror(rc),
			 rc == PRISM_E_TASK_FAILED ? ": " : "",
			 rc == PRISM_E_TASK_FAILED ? (int)n : 0,
			 rc == PRISM_E_TASK_FAILED ? (const char *)d : "");
	else if (outlen)
		memcpy(out, d, outlen);
	prism_ref_release(r);
	return rc;
}

/* The weights object for pol and theta. */
static int put_weights(const es_policy *pol, const float *theta, const float *lo,
		       const float *hi, prism_ref *out)
{
	const struct es_policy_arch *a = es_policy_get_arch(pol);
	struct w_hdr h = {.magic = W_MAGIC,
			  .obs_dim = a->obs_dim,
			  .act_dim = a->act_dim,
			  .nhidden = a->nhidden,
			  .nparams = es_policy_nparams(pol)};
	memcpy(h.hidden, a->hidden, sizeof(h.hidden));
	size_t len = sizeof(h) + w_floats(&h) * sizeof(float);
	uint8_t *buf = prism_malloc(len);
	if (!buf)
		return -ENOMEM;
	float *f = (float *)(buf + sizeof(h));
	memcpy(buf, &h, sizeof(h));
	memcpy(f, lo, a->act_dim * sizeof(float));
	memcpy(f + a->act_dim, hi, a->act_dim * sizeof(float));
	memcpy(f + 2 * a->act_dim, es_policy_obmean(pol), a->obs_dim * sizeof(float));
	memcpy(f + 2 * a->act_dim + a->obs_dim, es_policy_obstd(pol),
	       a->obs_dim * sizeof(float));
	memcpy(f + 2 * a->act_dim + 2 * a->obs_dim, theta, h.nparams * sizeof(float));
	int rc = prism_put(buf, len, out);
	prism_free(buf);
	return rc;
}

/* A policy for the model: from a file, or a fresh one; its weights into the store. */
static int make_weights(ctl_robot *r, const char *path, char *err, size_t errsz)
{
	es_policy *pol = NULL;
	float *theta = NULL;
	float *lo = prism_malloc(2 * r->act_dim * sizeof(float));
	int rc = lo ? 0 : -ENOMEM;
	if (rc == 0)
		es_env_ctrlrange(r->model, lo, lo + r->act_dim);
	if (rc == 0 && path) {
		rc = es_policy_load(path, &pol, &theta, err, errsz);
		if (rc == 0 && (es_policy_get_arch(pol)->obs_dim != r->obs_dim ||
				es_policy_get_arch(pol)->act_dim != r->act_dim)) {
			snprintf(err, errsz,
				 "%s: a policy for another observation or action size", path);
			rc = -EINVAL;
		}
	} else if (rc == 0) {
		struct es_policy_arch a;
		es_arch_for_env(r->model, 2, 64, &a);
		rc = es_policy_create(&a, lo, lo + r->act_dim, &pol);
		theta = rc ? NULL : prism_malloc(es_policy_nparams(pol) * sizeof(float));
		if (rc == 0 && !theta)
			rc = -ENOMEM;
		if (rc == 0)
			es_policy_init_params(pol, r->seed, theta);
		if (rc)
			snprintf(err, errsz, "cannot make a policy: %s", prism_strerror(rc));
	}
	if (rc == 0) {
		rc = put_weights(pol, theta, lo, lo + r->act_dim, &r->weights);
		if (rc)
			snprintf(err, errsz, "cannot put the weights in the store: %s",
				 prism_strerror(rc));
		r->have_weights = rc == 0;
	}
	es_policy_destroy(pol);
	prism_free(theta);
	prism_free(lo);
	return rc;
}

int ctl_robot_create(const char *policy_path, uint64_t seed, const struct ctl_rt_opts *o,
		     ctl_robot **out, char *err, size_t errsz)
{
	bool realtime = o->realtime;
	*out = NULL;
	ctl_robot *r = prism_calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->seed = seed;
	r->cpu = -1;
	struct es_env_config c;
	es_env_config_default(&c);
	c.frame_skip = 1; /* one physics step (5 ms) at a time, as wall time passes */
	int rc = es_env_model_load(&c, &r->model, err, errsz);
	if (rc == 0)
		rc = es_env_create(r->model, &r->env);
	if (rc == 0) {
		r->obs_dim = es_env_obs_dim(r->model);
		r->act_dim = es_env_act_dim(r->model);
		r->dt_ns = (uint64_t)(es_env_dt(r->model) * 1e9 + 0.5);
		r->obs = prism_calloc(r->obs_dim, sizeof(float));
		r->act = prism_calloc(r->act_dim, sizeof(float));
		if (!r->obs || !r->act)
			rc = -ENOMEM;
	}
	if (rc == 0) {
		es_env_reset(r->env, seed, r->obs);
		rc = make_weights(r, policy_path, err, errsz);
	}
	if (rc == 0) {
		prism_actor_opts ao = {.realtime = realtime,
				       .rt_spin_ns = realtime ? o->rt_spin_ns : 0,
				       .rt_let_cpu_idle = realtime && o->let_cpu_idle};
		rc = prism_actor_create("CtlPolicy", NULL, 0, &ao, &r->actor);
		if (rc)
			snprintf(err, errsz, "cannot create the policy actor: %s",
				 prism_last_error());
		r->have_actor = rc == 0;
	}
	if (rc == 0) {
		prism_value w = prism_refval(r->weights);
		rc = call_get(r->actor, "pol_load", &w, 1, NULL, 0, err, errsz);
	}
	int32_t cpu = -1;
	if (rc == 0)
		rc = call_get(r->actor, "pol_cpu", NULL, 0, &cpu, sizeof(cpu), err, errsz);
	if (rc) {
		ctl_robot_destroy(r);
		return rc;
	}
	r->cpu = realtime ? cpu : -1;
	*out = r;
	return 0;
}

void ctl_robot_destroy(ctl_robot *r)
{
	if (!r)
		return;
	if (r->have_actor)
		prism_actor_kill(r->actor);
	if (r->have_weights)
		prism_ref_release(r->weights);
	es_env_destroy(r->env);
	es_env_model_destroy(r->model);
	prism_free(r->obs);
	prism_free(r->act);
	prism_free(r);
}

int ctl_robot_policy_cpu(const ctl_robot *r)
{
	return r->cpu;
}

/* ---- statistics ------------------------------------------------------------------------ */

int ctl_stats_init(struct ctl_stats *s, uint64_t period_ns)
{
	*s = (struct ctl_stats){.period_ns = period_ns, .floor_cpu2 = -1, .tracemark_fd = -1};
	if (prism_hist_create(&s->rtt) != 0 || prism_hist_create(&s->jitter) != 0) {
		ctl_stats_fini(s);
		return -ENOMEM;
	}
	return 0;
}

void ctl_stats_fini(struct ctl_stats *s)
{
	prism_hist_destroy(s->rtt);
	prism_hist_destroy(s->jitter);
	s->rtt = s->jitter = NULL;
}

uint64_t ctl_late_threshold_ns(uint64_t period_ns)
{
	uint64_t t = period_ns / 5;
	return t < 5 * PRISM_NS_PER_MS ? t : 5 * PRISM_NS_PER_MS;
}

int ctl_tracemark_open(void)
{
	static const char *const paths[] = {"/sys/kernel/tracing/trace_marker",
					    "/sys/kernel/debug/tracing/trace_marker"};
	int err = -ENOENT;
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		int fd = open(paths[i], O_WRONLY | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			err = -errno;
	}
	return err;
}

static void sleep_until(uint64_t t_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(t_ns / PRISM_NS_PER_SEC),
			      .tv_nsec = (long)(t_ns % PRISM_NS_PER_SEC)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* ---- the loop ------------------------------------------------------------------------------ */

/* Calls whose action missed their tick, still expected. */
#define MAX_OUT 256
struct outstanding {
	prism_ref ref;
	uint64_t tick, sent;
	struct ctl_stats *to; /* where it counts (NULL: a warm-up tick) */
};

/* An action that came back for the call sent at `sent` for tick `tick`. */
/* s NULL: a warm-up tick, not counted. */
static void arrived(struct ctl_stats *s, uint64_t tick, uint64_t sent, uint64_t now,
		    bool applied)
{
	if (!s)
		return;
	prism_hist_record(s->rtt, now - sent);
	if (now - tick > ctl_late_threshold_ns(s->period_ns)) {
		s->late++;
		if (s->tracemark_fd >= 0)
			dprintf(s->tracemark_fd,
				"prism-ctl late: tick %llu sent +%llu us arrived +%llu us\n",
				(unsigned long long)tick,
				(unsigned long long)((sent - tick) / PRISM_NS_PER_US),
				(unsigned long long)((now - tick) / PRISM_NS_PER_US));
	}
	if (applied)
		s->taken++;
	else
		s->too_late++;
}

static void lost(struct ctl_stats *s, uint64_t tick, int rc)
{
	if (!s)
		return;
	s->lost++;
	if (s->tracemark_fd >= 0)
		dprintf(s->tracemark_fd, "prism-ctl lost: tick %llu (%s)\n",
			(unsigned long long)tick, prism_strerror(rc));
}

/* Look at the calls that missed their tick: those back now were too late; those
 * dropped as stale, or (final) not back, are lost. */
static void reap(struct outstanding *out, uint32_t *nout, bool final)
{
	for (uint32_t i = 0; i < *nout;) {
		const void *d;
		size_t n;
		int rc = prism_get(out[i].ref, 0, &d, &n);
		if (rc == PRISM_E_TIMEOUT && !final) {
			i++;
			continue;
		}
		if (rc == 0)
			arrived(out[i].to, out[i].tick, out[i].sent, prism_now_ns(), false);
		else
			lost(out[i].to, out[i].tick, rc);
		prism_ref_release(out[i].ref);
		out[i] = out[--*nout];
	}
}

int ctl_run(ctl_robot *r, uint64_t period_ns, uint64_t ticks, struct ctl_stats *s)
{
	struct outstanding out[MAX_OUT];
	uint32_t nout = 0;
	uint64_t step_ewma = 50 * PRISM_NS_PER_US; /* one physics step; learnt as we go */
	uint64_t sim_debt = 0;
	size_t act_bytes = r->act_dim * sizeof(float);
	uint64_t tick = prism_now_ns() + 2 * PRISM_NS_PER_MS;
	for (uint64_t k = 0; k < ticks; k++, tick += period_ns) {
		struct ctl_stats *c = k < s->warmup ? NULL : s; /* NULL: warm-up, not counted */
		sleep_until(tick);
		uint64_t woke = prism_now_ns();
		if (c) {
			prism_hist_record(c->jitter, woke > tick ? woke - tick : 0);
			c->ticks++;
		}
		if (nout)
			reap(out, &nout, false);
		/* The observation to the policy, due to start before the next tick, and not
		 * worth running after it: a call that waited that long behind others is
		 * stale.  A driver that itself woke too late to leave the call half a period
		 * (the tick's own lateness, the floor's domain) gives it that half period:
		 * its action then counts as late or too late, not as lost. */
		uint64_t sent = prism_now_ns();
		prism_call_opts o = {.deadline_ns = tick + period_ns,
				     .flags = PRISM_CALL_DROP_LATE};
		if (o.deadline_ns < sent + period_ns / 2)
			o.deadline_ns = sent + period_ns / 2;
		prism_value v = prism_bytes(r->obs, r->obs_dim * sizeof(float));
		prism_ref ref;
		int rc = prism_actor_call(r->actor, "pol_act", &v, 1, &o, &ref);
		if (rc) {
			lost(c, tick, rc);
			continue;
		}
		/* Physics steps due this period, and the time they need before the tick. */
		sim_debt += period_ns;
		uint64_t steps = sim_debt / r->dt_ns;
		sim_debt -= steps * r->dt_ns;
		uint64_t guard = steps * 2 * step_ewma + 20 * PRISM_NS_PER_US;
		if (guard > period_ns / 2)
			guard = period_ns / 2;
		uint64_t cutoff = tick + period_ns - guard, now = prism_now_ns();
		const void *d;
		size_t n;
		rc = prism_get(ref, now < cutoff ? (int64_t)(cutoff - now) : 0, &d, &n);
		if (rc == 0 && n == act_bytes) {
			arrived(c, tick, sent, prism_now_ns(), true);
			memcpy(r->act, d, act_bytes);
		} else if (rc == PRISM_E_TIMEOUT && nout < MAX_OUT) {
			out[nout++] = (struct outstanding){
				.ref = ref, .tick = tick, .sent = sent, .to = c};
			ref.id = (prism_id){{0}};
		} else {
			lost(c, tick,
			     rc ? rc : PRISM_E_PROTO); /* dropped as stale, or failed */
		}
		if (!prism_id_is_nil(ref.id))
			prism_ref_release(ref);
		/* The robot moves on, with the new action or the one before. */
		for (uint64_t i = 0; i < steps; i++) {
			struct es_env_step_info info;
			uint64_t t0 = prism_now_ns();
			es_env_step(r->env, r->act, r->obs, &info);
			uint64_t took = prism_now_ns() - t0;
			step_ewma = step_ewma - step_ewma / 8 + took / 8;
			s->reward += info.reward;
			if (info.done) {
				s->falls++;
				es_env_reset(r->env, ++r->seed, r->obs);
			}
		}
	}
	/* What is still out gets a grace time, then counts as lost. */
	uint64_t grace = prism_now_ns() + (period_ns * 10 > 200 * PRISM_NS_PER_MS
						   ? period_ns * 10
						   : 200 * PRISM_NS_PER_MS);
	while (nout && prism_now_ns() < grace) {
		reap(out, &nout, false);
		if (nout)
			prism_wait(&out[0].ref, 1, 1, 1 * (int64_t)PRISM_NS_PER_MS, NULL);
	}
	reap(out, &nout, true);
	return 0;
}

/* The floor's second timer loop, on the policy's CPU: the same ticks, its lateness. */
struct floor2 {
	uint64_t first, period, ticks;
	uint64_t *lat;
};

static void *floor2_main(void *arg)
{
	struct floor2 *f = arg;
	uint64_t tick = f->first;
	for (uint64_t k = 0; k < f->ticks; k++, tick += f->period) {
		sleep_until(tick);
		uint64_t woke = prism_now_ns();
		f->lat[k] = woke > tick ? woke - tick : 0;
	}
	return NULL;
}

/* Start the second loop on cpu at the caller's policy and priority. */
static int floor2_start(struct floor2 *f, int cpu, pthread_t *t)
{
	pthread_attr_t attr;
	struct sched_param sp = {0};
	cpu_set_t one;
	int pol = sched_getscheduler(0);
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	if (pol != SCHED_FIFO || sched_getparam(0, &sp) != 0) {
		pol = SCHED_OTHER;
		sp.sched_priority = 0;
	}
	pthread_attr_setschedpolicy(&attr, pol);
	pthread_attr_setschedparam(&attr, &sp);
	pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
	int rc = pthread_create(t, &attr, floor2_main, f);
	pthread_attr_destroy(&attr);
	return -rc;
}

int ctl_floor_run(uint64_t period_ns, uint64_t ticks, struct ctl_stats *s)
{
	uint64_t thr = ctl_late_threshold_ns(period_ns);
	uint64_t tick = prism_now_ns() + 2 * PRISM_NS_PER_MS;
	/* With a second CPU: both loops' lateness per tick, compared once they are over. */
	bool two = s->floor_cpu2 >= 0;
	struct floor2 f2 = {.first = tick, .period = period_ns, .ticks = ticks};
	uint64_t *lat0 = NULL;
	pthread_t t2;
	if (two) {
		lat0 = prism_calloc(ticks, sizeof(uint64_t));
		f2.lat = prism_calloc(ticks, sizeof(uint64_t));
		int rc = lat0 && f2.lat ? floor2_start(&f2, s->floor_cpu2, &t2) : -ENOMEM;
		if (rc) {
			prism_free(lat0);
			prism_free(f2.lat);
			return rc;
		}
	}
	for (uint64_t k = 0; k < ticks; k++, tick += period_ns) {
		sleep_until(tick);
		uint64_t woke = prism_now_ns(), lat = woke > tick ? woke - tick : 0;
		if (two)
			lat0[k] = lat;
		if (k < s->warmup)
			continue;
		prism_hist_record(s->jitter, lat);
		s->ticks++;
		s->late += lat > thr;
		s->too_late += lat > period_ns;
		if (lat > thr && s->tracemark_fd >= 0)
			dprintf(s->tracemark_fd,
				"prism-ctl floor late: tick %llu woke +%llu us\n",
				(unsigned long long)tick,
				(unsigned long long)(lat / PRISM_NS_PER_US));
	}
	if (!two)
		return 0;
	pthread_join(t2, NULL);
	for (uint64_t k = s->warmup; k < ticks; k++) {
		s->late_either += lat0[k] > thr || f2.lat[k] > thr;
		if (f2.lat[k] > thr && s->tracemark_fd >= 0)
			dprintf(s->tracemark_fd,
				"prism-ctl floor late on CPU %d: tick %llu woke +%llu us\n",
				s->floor_cpu2, (unsigned long long)(f2.first + k * period_ns),
				(unsigned long long)(f2.lat[k] / PRISM_NS_PER_US));
	}
	prism_free(lat0);
	prism_free(f2.lat);
	return 0;
}

/* The driver's CPU kept from halting while it sleeps, from ctl_become_realtime(). */
static prism_cpu_keeper *keeper;

int ctl_become_realtime(int prio, int cpu, const struct ctl_rt_opts *o, char *err, size_t errsz)
{
	int rc = 0;
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0) {
			rc = -errno;
			snprintf(err, errsz, "cannot pin to CPU %d: %s", cpu, strerror(errno));
		}
	}
	if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0 && rc == 0) {
		rc = -errno;
		snprintf(err, errsz, "mlockall: %s", strerror(errno));
	}
	struct sched_param sp = {.sched_priority = prio};
	if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0 && rc == 0) {
		rc = -errno;
		snprintf(err, errsz, "SCHED_FIFO: %s (run as root or grant CAP_SYS_NICE)",
			 strerror(errno));
	}
	int k;
	if (cpu >= 0 && !o->let_cpu_idle && !keeper &&
	    (k = prism_cpu_keeper_start(cpu, &keeper)) != 0 && rc == 0) {
		rc = k;
		snprintf(err, errsz, "cannot keep CPU %d from idling: %s", cpu,
			 prism_strerror(k));
	}
	return rc;
}

static void allow_all_cpus(void)
{
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int c = 0; c < CPU_SETSIZE; c++)
		CPU_SET(c, &all);
	sched_setaffinity(0, sizeof(all), &all);
}

void ctl_leave_realtime(void)
{
	prism_cpu_keeper_stop(keeper);
	keeper = NULL;
	struct sched_param sp = {0};
	sched_setscheduler(0, SCHED_OTHER, &sp);
	munlockall();
	allow_all_cpus();
}

/* ---- the ES load ------------------------------------------------------------------------- */

#define LOAD_FLAG "--ctl-es-load"
#define LOAD_NOISE_FLOATS ((size_t)2 * 1000 * 1000) /* 8 MB: 70 policies' worth */
#define LOAD_PAIRS 8                                /* antithetic pairs per generation */
#define LOAD_PAIRS_PER_TASK 2
#define LOAD_MAX_STEPS 1000 /* gym's episode limit */

/* What a rollout task needs besides theta, the pairs and the noise table. */
struct load_job {
	uint64_t generation;
	uint32_t nparams, obs_dim, npairs, max_steps;
	float sigma;
	uint32_t pad_;
};

/* ctl_es_eval(job, theta, tasks, noise) -> es_pair_result[npairs]: rollouts of theta +-
 * sigma * eps in a worker; the model is loaded once per worker process. */
static int ctl_es_eval(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	static es_env_model *model;
	char err[256];
	struct load_job j;
	if (nargs != 4 || args[0].len != sizeof(j))
		return prism_fail(ctx, "ctl_es_eval: bad arguments");
	memcpy(&j, args[0].data, sizeof(j));
	if (j.npairs == 0 || j.npairs > 1024 ||
	    args[1].len != (size_t)j.nparams * sizeof(float) ||
	    args[2].len != (size_t)j.npairs * sizeof(struct es_task) ||
	    args[3].len < (size_t)j.nparams * sizeof(float))
		return prism_fail(ctx, "ctl_es_eval: argument sizes do not match");
	if (!model) {
		struct es_env_config c;
		es_env_config_default(&c);
		int rc = es_env_model_load(&c, &model, err, sizeof(err));
		if (rc)
			return prism_fail(ctx, "ctl_es_eval: %s", err);
	}
	struct es_policy_arch a;
	es_arch_for_env(model, 2, 64, &a);
	struct es_noise noise;
	es_noise_view(args[3].data, args[3].len / sizeof(float), &noise);
	es_worker *w;
	int rc = es_worker_create(model, &a, &noise, &w);
	if (rc)
		return prism_fail(ctx, "ctl_es_eval: %s", prism_strerror(rc));
	struct es_pair_result res[LOAD_PAIRS];
	struct es_pair_result *out =
		j.npairs <= LOAD_PAIRS ? res : prism_malloc(j.npairs * sizeof(*out));
	struct es_gen_input in = {.generation = j.generation,
				  .theta = args[1].data,
				  .nparams = j.nparams,
				  .obs_dim = j.obs_dim,
				  .tasks = args[2].data,
				  .npairs = j.npairs,
				  .sigma = j.sigma,
				  .max_steps = j.max_steps};
	rc = out ? es_worker_eval(w, &in, 0, j.npairs, out, NULL) : -ENOMEM;
	es_worker_destroy(w);
	if (rc == 0)
		rc = prism_return(ctx, 0, out, j.npairs * sizeof(*out));
	else
		rc = prism_fail(ctx, "ctl_es_eval: %s", prism_strerror(rc));
	if (out != res)
		prism_free(out);
	return rc;
}
PRISM_REMOTE_ARITY(ctl_es_eval, 4);

struct load_ctx {
	prism_ref noise;
};

/* es_eval_fn: the pairs of a generation as rollout tasks, LOAD_PAIRS_PER_TASK each. */
static int eval_tasks(void *arg, const struct es_gen_input *in, struct es_pair_result *out,
		      es_obstat *obstat)
{
	struct load_ctx *lc = arg;
	(void)obstat;
	prism_ref theta, refs[LOAD_PAIRS];
	uint32_t ntask = 0;
	int rc = prism_put(in->theta, in->nparams * sizeof(float), &theta);
	if (rc)
		return rc;
	for (uint32_t first = 0; first < in->npairs && ntask < LOAD_PAIRS;
	     first += LOAD_PAIRS_PER_TASK) {
		uint32_t n = in->npairs - first < LOAD_PAIRS_PER_TASK ? in->npairs - first
								      : LOAD_PAIRS_PER_TASK;
		struct load_job j = {.generation = in->generation,
				     .nparams = (uint32_t)in->nparams,
				     .obs_dim = in->obs_dim,
				     .npairs = n,
				     .max_steps = in->max_steps,
				     .sigma = in->sigma};
		prism_value a[4] = {prism_bytes(&j, sizeof(j)), prism_refval(theta),
				    prism_bytes(in->tasks + first, n * sizeof(struct es_task)),
				    prism_refval(lc->noise)};
		rc = prism_submit("ctl_es_eval", a, 4, NULL, &refs[ntask]);
		if (rc)
			break;
		ntask++;
	}
	for (uint32_t t = 0; t < ntask; t++) {
		const void *d;
		size_t n;
		int grc = prism_get(refs[t], -1, &d, &n);
		uint32_t first = t * LOAD_PAIRS_PER_TASK;
		if (grc == 0 && n % sizeof(struct es_pair_result) == 0 &&
		    first + n / sizeof(struct es_pair_result) <= in->npairs)
			memcpy(out + first, d, n);
		else if (rc == 0)
			rc = grc ? grc : PRISM_E_PROTO;
		prism_ref_release(refs[t]);
	}
	prism_ref_release(theta);
	return rc;
}

static volatile sig_atomic_t load_stop;

static void on_term(int sig)
{
	(void)sig;
	load_stop = 1;
}

/* The load process: ES generations until SIGTERM (or the parent goes); exits with the
 * number of generations run (at most 250). */
static int load_main(const char *address)
{
	allow_all_cpus(); /* spawned with the driver's pinning */
	signal(SIGTERM, on_term);
	pid_t parent = getppid();
	prism_opts po = {.address = address, .log_level = -1};
	int rc = prism_init(&po);
	if (rc) {
		fprintf(stderr, "es load: cannot attach to %s: %s\n", address,
			prism_last_error());
		return 255;
	}
	char err[256];
	struct es_env_config c;
	es_env_config_default(&c);
	es_env_model *m = NULL;
	es_policy *pol = NULL;
	es_state *st = NULL;
	struct es_noise noise = {0};
	struct load_ctx lc = {0};
	float *theta0 = NULL, lohi[2 * ES_POLICY_MAX_WIDTH];
	uint64_t gens = 0;
	rc = es_env_model_load(&c, &m, err, sizeof(err));
	struct es_policy_arch a;
	if (rc == 0) {
		es_arch_for_env(m, 2, 64, &a);
		es_env_ctrlrange(m, lohi, lohi + a.act_dim);
		rc = es_policy_create(&a, lohi, lohi + a.act_dim, &pol);
	}
	if (rc == 0)
		rc = es_noise_create(LOAD_NOISE_FLOATS, 7, &noise);
	if (rc == 0)
		rc = prism_put(noise.data, noise.n * sizeof(float), &lc.noise);
	if (rc == 0 && !(theta0 = prism_malloc(es_policy_nparams(pol) * sizeof(float))))
		rc = -ENOMEM;
	struct es_config cfg;
	es_config_default(&cfg);
	cfg.pairs_per_gen = LOAD_PAIRS;
	cfg.max_steps = LOAD_MAX_STEPS;
	cfg.obnorm = false;
	if (rc == 0) {
		es_policy_init_params(pol, cfg.seed, theta0);
		rc = es_state_create(&cfg, &noise, es_policy_nparams(pol), a.obs_dim, theta0,
				     &st);
	}
	while (rc == 0 && !load_stop && getppid() == parent) {
		struct es_gen_stats gs;
		rc = es_generation(st, eval_tasks, &lc, &gs);
		gens += rc == 0;
	}
	if (rc)
		fprintf(stderr, "es load: %s\n", prism_strerror(rc));
	es_state_destroy(st);
	prism_free(theta0);
	es_policy_destroy(pol);
	es_env_model_destroy(m);
	prism_shutdown();
	es_noise_destroy(&noise);
	return rc ? 255 : (int)(gens < 250 ? gens : 250);
}

void ctl_child_main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], LOAD_FLAG) == 0)
		exit(load_main(argv[2]));
}

int ctl_load_start(pid_t *pid, char *err, size_t errsz)
{
	const char *addr = prism_node_address();
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (!addr || n <= 0) {
		snprintf(err, errsz, "no node, or cannot find this program");
		return -EINVAL;
	}
	exe[n] = '\0';
	/* posix_spawn, not fork: a fork write-protects every page of this process until the
	 * child execs, and the driver then takes a fault on each page it writes (its first
	 * humanoid reset after the load started took 12 ms instead of 0.2, an 11 ms stall
	 * of the 1 ms loop).  The load is ordinary work: SCHED_OTHER from the start (not
	 * the parent's SCHED_FIFO, which would hold this CPU while it loads), and it widens
	 * its CPU affinity itself (load_main). */
	posix_spawnattr_t at;
	struct sched_param sp = {0};
	int rc = posix_spawnattr_init(&at);
	if (rc == 0)
		rc = posix_spawnattr_setschedpolicy(&at, SCHED_OTHER);
	if (rc == 0)
		rc = posix_spawnattr_setschedparam(&at, &sp);
	if (rc == 0)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSCHEDULER);
	char *argv[] = {exe, (char *)LOAD_FLAG, (char *)addr, NULL};
	pid_t p = -1;
	if (rc == 0)
		rc = posix_spawn(&p, exe, NULL, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	if (rc) {
		snprintf(err, errsz, "posix_spawn %s: %s", exe, strerror(rc));
		return -rc;
	}
	*pid = p;
	return 0;
}

int ctl_load_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	/* A generation in progress finishes first: up to a few seconds of rollouts. */
	for (int i = 0; i < 3000; i++) {
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			return WIFEXITED(st) && WEXITSTATUS(st) != 255 ? WEXITSTATUS(st)
								       : PRISM_E_TASK_FAILED;
		if (w < 0)
			return -errno;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return PRISM_E_TIMEOUT;
}
