/* Resources: GPUs and custom named resources declared by the node, held by tasks while
 * they run, queued per shape, and clear errors for what the node does not have. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "prism.h"

/* Sleeps args[0] milliseconds and returns when it ran: {start ns, end ns}. */
static int hold(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint32_t ms;
	(void)nargs;
	memcpy(&ms, args[0].data, sizeof(ms));
	uint64_t span[2];
	span[0] = prism_now_ns();
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	span[1] = prism_now_ns();
	return prism_return(ctx, 0, span, sizeof(span));
}
PRISM_REMOTE_ARITY(hold, 1);

static void start(void)
{
	prism_opts o = {.num_workers = 2, .num_gpus = 1, .resources = "camera=1,slot=2"};
	cr_assert_eq(prism_init(&o), 0, "prism_init: %s", prism_last_error());
}

TestSuite(resources, .init = start, .fini = prism_shutdown, .timeout = 120);

/* Run n `hold` tasks of ms each with opts; return the most that ran at once. */
static int max_overlap(int n, uint32_t ms, const prism_call_opts *opts)
{
	prism_ref refs[16];
	uint64_t spans[16][2];
	cr_assert(n <= 16);
	prism_value a = prism_bytes(&ms, sizeof(ms));
	for (int i = 0; i < n; i++)
		cr_assert_eq(prism_submit("hold", &a, 1, opts, &refs[i]), 0, "submit: %s",
			     prism_last_error());
	for (int i = 0; i < n; i++) {
		const void *d;
		size_t len;
		cr_assert_eq(prism_get(refs[i], 30 * PRISM_NS_PER_SEC, &d, &len), 0, "get: %s",
			     prism_last_error());
		cr_assert_eq(len, sizeof(spans[i]));
		memcpy(spans[i], d, sizeof(spans[i]));
		prism_ref_release(refs[i]);
	}
	int best = 0;
	for (int i = 0; i < n; i++) {
		int at = 0; /* tasks running at the moment task i started */
		for (int j = 0; j < n; j++)
			at += spans[j][0] <= spans[i][0] && spans[i][0] < spans[j][1];
		best = at > best ? at : best;
	}
	return best;
}

Test(resources, one_camera_runs_one_task_at_a_time)
{
	prism_resource cam = {"camera", 1};
	prism_call_opts o = {.num_cpus = 0.5, .resources = &cam, .nresources = 1};
	cr_assert_eq(max_overlap(4, 100, &o), 1, "two tasks held the one camera at once");
}

Test(resources, fractional_amounts_add_up)
{
	/* slot=2 in all: tasks asking for 0.5 each may run four at once, never five (0.5
	 * CPU each, so the two CPUs are not what limits them). */
	prism_resource slot = {"slot", 0.5};
	prism_call_opts o = {.num_cpus = 0.5, .resources = &slot, .nresources = 1};
	int most = max_overlap(8, 150, &o);
	cr_assert(most >= 1 && most <= 4, "%d tasks ran at once on 2 slots of 0.5", most);
}

Test(resources, one_gpu_runs_one_task_at_a_time)
{
	prism_call_opts o = {.num_cpus = 0.5, .num_gpus = 1};
	cr_assert_eq(max_overlap(3, 100, &o), 1, "two tasks held the one GPU at once");
}

Test(resources, cpu_only_tasks_do_not_wait_behind_a_busy_camera)
{
	prism_resource cam = {"camera", 1};
	prism_call_opts co = {.num_cpus = 0.5, .resources = &cam, .nresources = 1};
	uint32_t long_ms = 1500, short_ms = 1;
	prism_value al = prism_bytes(&long_ms, 4), as = prism_bytes(&short_ms, 4);
	prism_ref cam_refs[2], quick;
	uint64_t t0 = prism_now_ns();
	for (int i = 0; i < 2; i++)
		cr_assert_eq(prism_submit("hold", &al, 1, &co, &cam_refs[i]), 0);
	prism_call_opts half = {.num_cpus = 0.5};
	cr_assert_eq(prism_submit("hold", &as, 1, &half, &quick), 0);
	const void *d;
	size_t len;
	cr_assert_eq(prism_get(quick, 10 * PRISM_NS_PER_SEC, &d, &len), 0);
	uint64_t took = prism_now_ns() - t0;
	cr_assert_lt(took, 1400 * PRISM_NS_PER_MS,
		     "a CPU-only task waited %llu ms behind camera tasks",
		     (unsigned long long)(took / PRISM_NS_PER_MS));
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(prism_get(cam_refs[i], 10 * PRISM_NS_PER_SEC, &d, &len), 0);
		prism_ref_release(cam_refs[i]);
	}
	prism_ref_release(quick);
}

Test(resources, what_the_node_lacks_is_refused_by_name)
{
	uint32_t ms = 1;
	prism_value a = prism_bytes(&ms, 4);
	prism_ref r;
	prism_resource lidar = {"lidar", 1};
	prism_call_opts o = {.resources = &lidar, .nresources = 1};
	cr_assert_eq(prism_submit("hold", &a, 1, &o, &r), PRISM_E_INFEASIBLE);
	cr_assert(strstr(prism_last_error(), "lidar"), "%s", prism_last_error());
	cr_assert(strstr(prism_last_error(), "camera 1"), "lists what it has: %s",
		  prism_last_error());

	prism_resource two_cams = {"camera", 2};
	o.resources = &two_cams;
	cr_assert_eq(prism_submit("hold", &a, 1, &o, &r), PRISM_E_INFEASIBLE);
	prism_call_opts gpus = {.num_gpus = 2};
	cr_assert_eq(prism_submit("hold", &a, 1, &gpus, &r), PRISM_E_INFEASIBLE);

	prism_resource cpu = {"CPU", 1};
	o.resources = &cpu;
	cr_assert_eq(prism_submit("hold", &a, 1, &o, &r), -EINVAL);
	cr_assert(strstr(prism_last_error(), "num_cpus"), "%s", prism_last_error());
	prism_resource zero = {"camera", 0}, neg = {"camera", -1}, unnamed = {NULL, 1};
	o.resources = &zero;
	cr_assert_eq(prism_submit("hold", &a, 1, &o, &r), -EINVAL);
	o.resources = &neg;
	cr_assert_eq(prism_submit("hold", &a, 1, &o, &r), -EINVAL);
	o.resources = &unnamed;
	cr_assert_eq(prism_submit("hold", &a, 1, &o, &r), -EINVAL);
	o.resources = NULL;
	o.nresources = 1;
	cr_assert_eq(prism_submit("hold", &a, 1, &o, &r), -EINVAL);

	/* The runtime is unharmed: a plain task still runs. */
	cr_assert_eq(prism_submit("hold", &a, 1, NULL, &r), 0);
	const void *d;
	size_t len;
	cr_assert_eq(prism_get(r, 10 * PRISM_NS_PER_SEC, &d, &len), 0);
	prism_ref_release(r);
}

Test(resources_init, a_bad_resource_spec_fails_init_with_a_reason)
{
	static const char *const bad[] = {"camera",   "camera=-1",
					  "=1",       "cam era=1",
					  "camera=x", "a=1,b=1,c=1,d=1,e=1,f=1,g=1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		prism_opts o = {.resources = bad[i]};
		cr_assert_neq(prism_init(&o), 0, "'%s' was accepted", bad[i]);
		cr_assert(strstr(prism_last_error(), "resource"), "'%s': %s", bad[i],
			  prism_last_error());
		prism_shutdown();
	}
}
