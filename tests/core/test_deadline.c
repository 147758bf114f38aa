/* Deadline work: EDF order ahead of background work on a saturated node, late starts
 * counted per node, stale calls dropped (tasks and actor calls) with PRISM_E_DEADLINE,
 * and bad options refused. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "prism.h"

#define MS PRISM_NS_PER_MS
#define SEC PRISM_NS_PER_SEC

/* busy(ms): spin for ms milliseconds (a CPU-bound background task); returns when it
 * started. */
static int busy(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint32_t ms = 1;
	if (nargs == 1 && args[0].len == 4)
		memcpy(&ms, args[0].data, 4);
	uint64_t start = prism_now_ns();
	while (prism_now_ns() - start < (uint64_t)ms * MS)
		;
	return prism_return(ctx, 0, &start, sizeof(start));
}
PRISM_REMOTE(busy);

/* probe(): returns when it started. */
static int probe(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	uint64_t start = prism_now_ns();
	return prism_return(ctx, 0, &start, sizeof(start));
}
PRISM_REMOTE(probe);

/* An actor with a slow and a fast method; fast counts its calls. */
static int acc_new(prism_task_ctx *ctx, const prism_arg *args, size_t nargs, void **state)
{
	(void)ctx;
	(void)args;
	(void)nargs;
	*state = calloc(1, sizeof(int64_t));
	return *state ? 0 : -ENOMEM;
}
static void acc_free(void *state)
{
	free(state);
}
static int slow(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	(void)state;
	return busy(ctx, args, nargs);
}
static int fast(prism_task_ctx *ctx, void *state, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	int64_t *calls = state;
	++*calls;
	return prism_return(ctx, 0, calls, sizeof(*calls));
}
PRISM_ACTOR(Acc, acc_new, acc_free);
PRISM_METHOD(Acc, slow);
PRISM_METHOD(Acc, fast);

/* One lane: every test task asks for it, so exactly one runs at a time and the order
 * they start in is the order the submitter let them go. */
static const prism_resource lane = {"lane", 1};

static void setup(void)
{
	prism_opts o = {.num_workers = 2, .resources = "lane=1"};
	cr_assert_eq(prism_init(&o), 0, "%s", prism_last_error());
}

static void teardown(void)
{
	prism_shutdown();
}

static uint64_t get_u64(prism_ref r)
{
	const void *d;
	size_t n;
	int rc = prism_get(r, 60 * SEC, &d, &n);
	cr_assert_eq(rc, 0, "get: %s", prism_strerror(rc));
	cr_assert_eq(n, 8);
	uint64_t v;
	memcpy(&v, d, 8);
	prism_ref_release(r);
	return v;
}

static prism_ref submit_lane(const char *fn, uint32_t ms, uint64_t deadline, uint32_t flags)
{
	prism_call_opts o = {
		.resources = &lane, .nresources = 1, .deadline_ns = deadline, .flags = flags};
	prism_value a = prism_bytes(&ms, 4);
	prism_ref r;
	int rc = prism_submit(fn, &a, strcmp(fn, "busy") == 0 ? 1 : 0, &o, &r);
	cr_assert_eq(rc, 0, "submit %s: %s", fn, prism_last_error());
	return r;
}

#define NBG 30
#define NDL 6

Test(deadline, edf_ahead_of_background, .init = setup, .fini = teardown, .timeout = 120)
{
	/* A worker for the lane, warm. */
	get_u64(submit_lane("busy", 1, 0, 0));
	prism_node_stats s0;
	cr_assert_eq(prism_node_stats_get(&s0), 0);

	/* Saturate the lane: NBG background tasks of 4 ms, then deadline probes whose
	 * deadlines run backwards (the last submitted is due first). */
	prism_ref bg[NBG], dl[NDL];
	for (int i = 0; i < NBG; i++)
		bg[i] = submit_lane("busy", 4, 0, 0);
	uint64_t t_sub = prism_now_ns();
	uint64_t due[NDL];
	for (int i = 0; i < NDL; i++) {
		due[i] = t_sub + 30 * SEC - (uint64_t)i * MS;
		dl[i] = submit_lane("probe", 0, due[i], 0);
	}
	uint64_t bg_start[NBG], dl_start[NDL];
	for (int i = 0; i < NDL; i++)
		dl_start[i] = get_u64(dl[i]);
	for (int i = 0; i < NBG; i++)
		bg_start[i] = get_u64(bg[i]);

	/* Earliest deadline first among the probes: probe i+1 (earlier deadline) started
	 * before probe i. */
	for (int i = 0; i + 1 < NDL; i++)
		cr_expect_lt(dl_start[i + 1], dl_start[i], "probe %d started before probe %d",
			     i, i + 1);
	/* Ahead of the background: once the probes were submitted, at most the one
	 * background task already handed to the worker started before the last probe
	 * (without EDF, all NBG - 1 still waiting would have). */
	uint64_t last_probe = dl_start[0];
	int overtook = 0;
	for (int i = 0; i < NBG; i++)
		overtook += bg_start[i] > t_sub && bg_start[i] < last_probe;
	cr_expect_leq(overtook, 1,
		      "%d background tasks started between the probes' submission "
		      "and the last probe",
		      overtook);
	int after = 0;
	for (int i = 0; i < NBG; i++)
		after += bg_start[i] > last_probe;
	cr_expect_geq(after, NBG - 2, "only %d background tasks ran after the probes", after);

	prism_node_stats s1;
	cr_assert_eq(prism_node_stats_get(&s1), 0);
	cr_expect_eq(s1.deadline_calls - s0.deadline_calls, NDL);
	cr_expect_eq(s1.deadline_dropped - s0.deadline_dropped, 0);
}

Test(deadline, late_start_is_counted, .init = setup, .fini = teardown, .timeout = 60)
{
	get_u64(submit_lane("busy", 1, 0, 0));
	prism_node_stats s0, s1;
	cr_assert_eq(prism_node_stats_get(&s0), 0);
	/* Due long ago, not to be dropped: it runs, and counts as late. */
	uint64_t past = prism_now_ns() - 5 * MS;
	uint64_t started = get_u64(submit_lane("probe", 0, past, 0));
	cr_expect_gt(started, past);
	/* Due far ahead: not late. */
	get_u64(submit_lane("probe", 0, prism_now_ns() + 30 * SEC, 0));
	cr_assert_eq(prism_node_stats_get(&s1), 0);
	cr_expect_eq(s1.deadline_calls - s0.deadline_calls, 2);
	cr_expect_eq(s1.deadline_late - s0.deadline_late, 1);
	cr_expect_eq(s1.deadline_dropped - s0.deadline_dropped, 0);
}

static void expect_deadline_error(prism_ref r)
{
	const void *d;
	size_t n;
	int rc = prism_get(r, 60 * SEC, &d, &n);
	cr_expect_eq(rc, PRISM_E_DEADLINE, "got %s", prism_errname(rc));
	cr_expect(n > 0 && memmem(d, n, "deadline", 8) != NULL, "message: %.*s", (int)n,
		  (const char *)d);
	prism_ref_release(r);
}

Test(deadline, stale_task_is_dropped, .init = setup, .fini = teardown, .timeout = 60)
{
	get_u64(submit_lane("busy", 1, 0, 0));
	prism_node_stats s0, s1;
	cr_assert_eq(prism_node_stats_get(&s0), 0);
	/* Behind 100 ms of work on the one lane, a probe due in 5 ms cannot start in
	 * time: it is dropped, and the one after it (no flag) runs late. */
	prism_ref hog = submit_lane("busy", 100, 0, 0);
	uint64_t due = prism_now_ns() + 5 * MS;
	prism_ref dropped = submit_lane("probe", 0, due, PRISM_CALL_DROP_LATE);
	prism_ref late = submit_lane("probe", 0, due, 0);
	expect_deadline_error(dropped);
	cr_expect_gt(get_u64(late), due);
	get_u64(hog);
	cr_assert_eq(prism_node_stats_get(&s1), 0);
	cr_expect_eq(s1.deadline_dropped - s0.deadline_dropped, 1);
	cr_expect_eq(s1.deadline_late - s0.deadline_late, 1);
	cr_expect_eq(s1.deadline_calls - s0.deadline_calls, 2);
}

Test(deadline, stale_actor_call_is_dropped, .init = setup, .fini = teardown, .timeout = 60)
{
	prism_actor a;
	cr_assert_eq(prism_actor_create("Acc", NULL, 0, NULL, &a), 0, "%s", prism_last_error());
	prism_ref r;
	cr_assert_eq(prism_actor_call(a, "fast", NULL, 0, NULL, &r), 0);
	cr_expect_eq(get_u64(r), 1);
	prism_node_stats s0, s1;
	cr_assert_eq(prism_node_stats_get(&s0), 0);
	/* The slow call holds the actor for 100 ms; the fast one behind it, due in 5 ms,
	 * is already in the actor's ring: the actor drops it when it gets to it. */
	uint32_t ms = 100;
	prism_value arg = prism_bytes(&ms, 4);
	prism_ref hog, stale;
	cr_assert_eq(prism_actor_call(a, "slow", &arg, 1, NULL, &hog), 0);
	prism_call_opts o = {.deadline_ns = prism_now_ns() + 5 * MS,
			     .flags = PRISM_CALL_DROP_LATE};
	cr_assert_eq(prism_actor_call(a, "fast", NULL, 0, &o, &stale), 0, "%s",
		     prism_last_error());
	expect_deadline_error(stale);
	get_u64(hog);
	/* The dropped call changed nothing: the next one is the second to run. */
	cr_assert_eq(prism_actor_call(a, "fast", NULL, 0, NULL, &r), 0);
	cr_expect_eq(get_u64(r), 2);
	cr_assert_eq(prism_node_stats_get(&s1), 0);
	cr_expect_eq(s1.deadline_dropped - s0.deadline_dropped, 1);
	cr_expect_eq(s1.deadline_calls - s0.deadline_calls, 1);
	prism_actor_kill(a);
}

Test(deadline, bad_options_are_refused, .init = setup, .fini = teardown, .timeout = 60)
{
	prism_ref r;
	prism_call_opts no_deadline = {.flags = PRISM_CALL_DROP_LATE};
	cr_expect_eq(prism_submit("probe", NULL, 0, &no_deadline, &r), -EINVAL);
	cr_expect(strstr(prism_last_error(), "deadline") != NULL, "%s", prism_last_error());
	prism_call_opts unknown = {.deadline_ns = prism_now_ns() + SEC, .flags = 0x80};
	cr_expect_eq(prism_submit("probe", NULL, 0, &unknown, &r), -EINVAL);
	prism_actor a;
	cr_assert_eq(prism_actor_create("Acc", NULL, 0, NULL, &a), 0, "%s", prism_last_error());
	cr_expect_eq(prism_actor_call(a, "fast", NULL, 0, &no_deadline, &r), -EINVAL);
	cr_expect_eq(prism_actor_call(a, "fast", NULL, 0, &unknown, &r), -EINVAL);
	cr_expect_eq(prism_node_stats_get(NULL), -EINVAL);
	prism_actor_kill(a);
}

Test(deadline, stats_need_a_node)
{
	prism_node_stats s;
	cr_expect_eq(prism_node_stats_get(&s), PRISM_E_CLOSED);
}
