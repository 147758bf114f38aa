/* Placement (sched/place.h): the global scheduler's choice of node by expected start
 * (queue wait plus moving missing inputs), custom resources, infeasible demands, dead
 * nodes, the documented tie-break, bad input, and the local scheduler's keep rule.  A
 * randomised case checks the one-pass cursor walk against a brute-force reference. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/error.h"
#include "sched/place.h"
#include "sched/proto.h"

/* The caller's resource-name table: index i of every vector below is names[i]. */
enum { R_CPU, R_GPU, R_CAMERA, NRES };
static const char *const names[NRES] = {"CPU", "GPU", "camera"};

#define MS 1000000ull      /* ns */
#define GBPS 1000000000ull /* bytes/s */

/* An idle alive node with 4 CPUs, 1 ms mean tasks and a 1 GB/s link. */
static struct sched_place_node idle_node(uint8_t tag)
{
	struct sched_place_node n = {
		.id = {.b = {tag, [15] = 4}},
		.alive = true,
		.slots = 4,
		.mean_task_ns = 1 * MS,
		.bandwidth = GBPS,
	};
	n.total_milli[R_CPU] = n.avail_milli[R_CPU] = 4000;
	return n;
}

/* Busy: nothing free, q tasks queued. */
static void make_busy(struct sched_place_node *n, uint32_t q)
{
	memset(n->avail_milli, 0, sizeof(n->avail_milli));
	n->queue_len = q;
}

static struct sched_place_task cpu_task(void)
{
	struct sched_place_task t = {0};
	t.demand_milli[R_CPU] = 1000;
	return t;
}

static int pick(struct sched_place_node *nodes, uint32_t n, const struct sched_place_task *t,
		uint32_t start, uint32_t *out, uint64_t *est)
{
	struct sched_place_view v = {.nodes = nodes, .nnodes = n, .nres = NRES};
	return sched_place_pick(&v, t, start, out, est);
}

Test(place, limits_match_the_node_table)
{
	cr_assert_eq(SCHED_PLACE_MAX_RES, SCHED_MAX_RES);
	cr_assert_eq(SCHED_RES_CPU, (unsigned)R_CPU, "%s", names[R_CPU]);
	cr_assert_eq(SCHED_RES_GPU, (unsigned)R_GPU, "%s", names[R_GPU]);
}

Test(place, idle_node_over_busy_one)
{
	struct sched_place_node nodes[3] = {idle_node(1), idle_node(2), idle_node(3)};
	make_busy(&nodes[0], 10);
	make_busy(&nodes[2], 1);
	struct sched_place_task t = cpu_task();
	uint32_t j = 99;
	uint64_t est = 99;
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, &est), 0);
	cr_assert_eq(j, 1);
	cr_assert_eq(est, 0);
	/* With every node busy: the shortest expected wait, (1 + 1) x 1 ms / 4 on node 2. */
	make_busy(&nodes[1], 3);
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, &est), 0);
	cr_assert_eq(j, 2);
	cr_assert_eq(est, 2 * MS / 4);
	/* est_ns may be NULL. */
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, NULL), 0);
	cr_assert_eq(j, 2);
}

Test(place, not_free_now_waits_for_one_task)
{
	/* Node 0: 2 queued and nothing free: (2 + 1) x 1 ms / 4 = 750 us.  Node 1: 4 queued
	 * but a CPU free: 4 x 1 ms / 4 = 1 ms.  Node 0 starts the task sooner. */
	struct sched_place_node nodes[2] = {idle_node(1), idle_node(2)};
	make_busy(&nodes[0], 2);
	nodes[1].queue_len = 4;
	struct sched_place_task t = cpu_task();
	uint32_t j;
	uint64_t est;
	cr_assert_eq(pick(nodes, 2, &t, 0, &j, &est), 0);
	cr_assert_eq(j, 0);
	cr_assert_eq(est, 750 * 1000);
}

/* Node 0 holds the task's input and has 8 tasks queued, a CPU free: its wait is
 * 8 x 1 ms / 4 = 2 ms.  Node 1 is idle but must pull the input over 1 GB/s: size / 1e9 s.
 * The crossover is at 2 ms x 1 GB/s = 2,000,000 bytes. */
static int locality(uint64_t size, uint32_t start, uint32_t *j, uint64_t *est)
{
	struct sched_place_node nodes[2] = {idle_node(1), idle_node(2)};
	nodes[0].queue_len = 8;
	uint32_t holders[] = {0};
	struct sched_place_input in = {.size = size, .holders = holders, .nholders = 1};
	struct sched_place_task t = cpu_task();
	t.inputs = &in;
	t.ninputs = 1;
	return pick(nodes, 2, &t, start, j, est);
}

Test(place, data_locality_crossover)
{
	const uint64_t cross = 2 * MS * GBPS / 1000000000ull; /* 2,000,000 bytes */
	cr_assert_eq(cross, 2000000);
	uint32_t j;
	uint64_t est;
	/* 4 MB: moving it (4 ms) costs more than node 0's queue (2 ms): locality wins. */
	cr_assert_eq(locality(4000000, 0, &j, &est), 0);
	cr_assert_eq(j, 0);
	cr_assert_eq(est, 2 * MS);
	/* 1 MB: 1 ms to move beats 2 ms of queue: the idle node wins. */
	cr_assert_eq(locality(1000000, 0, &j, &est), 0);
	cr_assert_eq(j, 1);
	cr_assert_eq(est, 1 * MS);
	/* Either side of the crossover by one kilobyte (one microsecond of link). */
	cr_assert_eq(locality(cross + 1000, 0, &j, &est), 0);
	cr_assert_eq(j, 0);
	cr_assert_eq(locality(cross - 1000, 0, &j, &est), 0);
	cr_assert_eq(j, 1);
	cr_assert_eq(est, 2 * MS - 1000);
	/* At the crossover the estimates tie, and the rotation's first node wins. */
	cr_assert_eq(locality(cross, 0, &j, &est), 0);
	cr_assert_eq(j, 0);
	cr_assert_eq(est, 2 * MS);
	cr_assert_eq(locality(cross, 1, &j, &est), 0);
	cr_assert_eq(j, 1);
	cr_assert_eq(est, 2 * MS);
}

Test(place, only_missing_inputs_move)
{
	/* Two inputs: 3 MB on nodes 0 and 2, 1 MB on node 1.  All idle, so the estimate is
	 * the bytes each node lacks over 1 GB/s: node 0 and 2 lack 1 MB, node 1 lacks 3 MB,
	 * node 3 lacks both. */
	struct sched_place_node nodes[4] = {idle_node(1), idle_node(2), idle_node(3),
					    idle_node(4)};
	uint32_t a[] = {0, 2}, b[] = {1};
	struct sched_place_input in[2] = {{.size = 3000000, .holders = a, .nholders = 2},
					  {.size = 1000000, .holders = b, .nholders = 1}};
	struct sched_place_task t = cpu_task();
	t.inputs = in;
	t.ninputs = 2;
	uint32_t j;
	uint64_t est;
	cr_assert_eq(pick(nodes, 4, &t, 0, &j, &est), 0);
	cr_assert_eq(j, 0);
	cr_assert_eq(est, 1 * MS);
	cr_assert_eq(pick(nodes, 4, &t, 1, &j, &est), 0);
	cr_assert_eq(j, 2, "from 1 the rotation meets 2 before it wraps to 0");
	/* A slower link makes the same megabyte cost more: node 2 at 250 MB/s takes 4 ms,
	 * node 1 pulls 3 MB in 3 ms, node 0 stays best. */
	nodes[2].bandwidth = GBPS / 4;
	cr_assert_eq(pick(nodes, 4, &t, 1, &j, &est), 0);
	cr_assert_eq(j, 0);
	cr_assert_eq(est, 1 * MS);
}

Test(place, custom_resource_goes_where_it_exists)
{
	struct sched_place_node nodes[4] = {idle_node(1), idle_node(2), idle_node(3),
					    idle_node(4)};
	/* Cameras on nodes 1 and 3 only, both busy; 0 and 2 idle without one. */
	nodes[1].total_milli[R_CAMERA] = nodes[3].total_milli[R_CAMERA] = 1000;
	make_busy(&nodes[1], 5);
	make_busy(&nodes[3], 2);
	struct sched_place_task t = cpu_task();
	t.demand_milli[R_CAMERA] = 1000;
	uint32_t j;
	uint64_t est;
	for (uint32_t s = 0; s < 4; s++) {
		cr_assert_eq(pick(nodes, 4, &t, s, &j, &est), 0);
		cr_assert_eq(j, 3, "%s: the less busy camera node", names[R_CAMERA]);
		cr_assert_eq(est, 3 * MS / 4);
	}
	/* Once node 3's camera is free it starts at once. */
	nodes[3].avail_milli[R_CPU] = 1000;
	nodes[3].avail_milli[R_CAMERA] = 1000;
	nodes[3].queue_len = 0;
	cr_assert_eq(pick(nodes, 4, &t, 0, &j, &est), 0);
	cr_assert_eq(j, 3);
	cr_assert_eq(est, 0);
	/* A task without the camera does not need those nodes. */
	struct sched_place_task plain = cpu_task();
	cr_assert_eq(pick(nodes, 4, &plain, 0, &j, &est), 0);
	cr_assert_eq(j, 0);
}

Test(place, infeasible_even_when_all_are_busy)
{
	struct sched_place_node nodes[3] = {idle_node(1), idle_node(2), idle_node(3)};
	for (int i = 0; i < 3; i++)
		make_busy(&nodes[i], 100);
	uint32_t j = 77;
	uint64_t est = 77;
	/* Busy but able: placed, not refused. */
	struct sched_place_task t = cpu_task();
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, &est), 0);
	/* 8 CPUs: no node has more than 4, so no amount of waiting helps. */
	t.demand_milli[R_CPU] = 8000;
	j = 77;
	est = 77;
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, &est), PRISM_E_INFEASIBLE);
	cr_assert_eq(j, 77, "out-parameters untouched on failure");
	cr_assert_eq(est, 77);
	/* A GPU nobody has; a camera nobody has. */
	t = cpu_task();
	t.demand_milli[R_GPU] = 1000;
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, &est), PRISM_E_INFEASIBLE);
	t = cpu_task();
	t.demand_milli[R_CAMERA] = 1;
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, &est), PRISM_E_INFEASIBLE);
	/* The only node with a camera is dead: infeasible too. */
	nodes[1].total_milli[R_CAMERA] = 1000;
	nodes[1].alive = false;
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, &est), PRISM_E_INFEASIBLE);
	nodes[1].alive = true;
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, &est), 0);
	cr_assert_eq(j, 1);
	/* An empty view holds no node that fits. */
	cr_assert_eq(pick(NULL, 0, &t, 0, &j, &est), PRISM_E_INFEASIBLE);
}

Test(place, dead_nodes_never_chosen)
{
	struct sched_place_node nodes[3] = {idle_node(1), idle_node(2), idle_node(3)};
	/* The dead nodes are idle and hold the input; the live one is busy and lacks it. */
	nodes[0].alive = false;
	nodes[2].alive = false;
	make_busy(&nodes[1], 50);
	uint32_t holders[] = {0, 2};
	struct sched_place_input in = {.size = 1ull << 30, .holders = holders, .nholders = 2};
	struct sched_place_task t = cpu_task();
	t.inputs = &in;
	t.ninputs = 1;
	for (uint32_t s = 0; s < 6; s++) {
		uint32_t j;
		cr_assert_eq(pick(nodes, 3, &t, s, &j, NULL), 0);
		cr_assert_eq(j, 1);
	}
	/* A dead node's fields are not read: zero slots there are not an error. */
	nodes[0].slots = 0;
	nodes[0].bandwidth = 0;
	uint32_t j;
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, NULL), 0);
	nodes[1].alive = false;
	cr_assert_eq(pick(nodes, 3, &t, 0, &j, NULL), PRISM_E_INFEASIBLE);
}

Test(place, ties_follow_the_rotation)
{
	struct sched_place_node nodes[5];
	for (int i = 0; i < 5; i++)
		nodes[i] = idle_node((uint8_t)(i + 1));
	struct sched_place_task t = cpu_task();
	uint32_t j;
	/* start 0: the lowest index; start s: node s; start beyond the view wraps. */
	cr_assert_eq(pick(nodes, 5, &t, 0, &j, NULL), 0);
	cr_assert_eq(j, 0);
	cr_assert_eq(pick(nodes, 5, &t, 3, &j, NULL), 0);
	cr_assert_eq(j, 3);
	cr_assert_eq(pick(nodes, 5, &t, 5 * 1000 + 2, &j, NULL), 0);
	cr_assert_eq(j, 2);
	cr_assert_eq(pick(nodes, 5, &t, UINT32_MAX, &j, NULL), 0);
	cr_assert_eq(j, UINT32_MAX % 5);
	/* A bumped counter visits every equal node once per lap. */
	int seen[5] = {0};
	for (uint32_t s = 0; s < 5; s++) {
		cr_assert_eq(pick(nodes, 5, &t, s, &j, NULL), 0);
		seen[j]++;
	}
	for (int i = 0; i < 5; i++)
		cr_assert_eq(seen[i], 1, "node %d picked %d times", i, seen[i]);
	/* The rotation starts at a dead node: the next alive one after it, wrapping. */
	nodes[4].alive = false;
	cr_assert_eq(pick(nodes, 5, &t, 4, &j, NULL), 0);
	cr_assert_eq(j, 0);
	/* Only equal estimates tie: a strictly better node wins whatever the start. */
	make_busy(&nodes[0], 1);
	make_busy(&nodes[1], 1);
	make_busy(&nodes[3], 1);
	cr_assert_eq(pick(nodes, 5, &t, 3, &j, NULL), 0);
	cr_assert_eq(j, 2);
}

Test(place, estimates_saturate)
{
	struct sched_place_node nodes[2] = {idle_node(1), idle_node(2)};
	nodes[0].bandwidth = 1;
	make_busy(&nodes[1], UINT32_MAX);
	nodes[1].mean_task_ns = UINT64_MAX;
	nodes[1].slots = 1;
	uint32_t holders[] = {1};
	struct sched_place_input in[2] = {
		{.size = UINT64_MAX, .holders = holders, .nholders = 1},
		{.size = UINT64_MAX, .holders = holders, .nholders = 1}};
	struct sched_place_task t = cpu_task();
	t.inputs = in;
	t.ninputs = 2;
	uint32_t j;
	uint64_t est;
	/* Both estimates are beyond 2^64 ns and clamp to UINT64_MAX: a tie. */
	cr_assert_eq(pick(nodes, 2, &t, 0, &j, &est), 0);
	cr_assert_eq(j, 0);
	cr_assert_eq(est, UINT64_MAX);
	cr_assert_eq(pick(nodes, 2, &t, 1, &j, &est), 0);
	cr_assert_eq(j, 1);
}

Test(place, bad_input_rejected)
{
	struct sched_place_node nodes[3] = {idle_node(1), idle_node(2), idle_node(3)};
	struct sched_place_view v = {.nodes = nodes, .nnodes = 3, .nres = NRES};
	struct sched_place_task t = cpu_task();
	uint32_t j = 42;
	uint64_t est = 42;
	cr_assert_eq(sched_place_pick(NULL, &t, 0, &j, &est), -EINVAL);
	cr_assert_eq(sched_place_pick(&v, NULL, 0, &j, &est), -EINVAL);
	cr_assert_eq(sched_place_pick(&v, &t, 0, NULL, &est), -EINVAL);
	struct sched_place_view bad = v;
	bad.nres = SCHED_PLACE_MAX_RES + 1;
	cr_assert_eq(sched_place_pick(&bad, &t, 0, &j, &est), -EINVAL);
	bad = v;
	bad.nodes = NULL;
	cr_assert_eq(sched_place_pick(&bad, &t, 0, &j, &est), -EINVAL);
	/* A demand for an unnamed resource (index 5 with 3 names). */
	struct sched_place_task tb = cpu_task();
	tb.demand_milli[5] = 1;
	cr_assert_eq(sched_place_pick(&v, &tb, 0, &j, &est), -EINVAL);
	/* Inputs: a NULL array, too many, NULL holders, out of range, unsorted, repeated. */
	tb = cpu_task();
	tb.ninputs = 1;
	cr_assert_eq(sched_place_pick(&v, &tb, 0, &j, &est), -EINVAL);
	struct sched_place_input many[SCHED_PLACE_MAX_INPUTS + 1] = {{0}};
	tb.inputs = many;
	tb.ninputs = SCHED_PLACE_MAX_INPUTS + 1;
	cr_assert_eq(sched_place_pick(&v, &tb, 0, &j, &est), -EINVAL);
	tb.ninputs = SCHED_PLACE_MAX_INPUTS;
	cr_assert_eq(sched_place_pick(&v, &tb, 0, &j, &est), 0, "the maximum itself is fine");
	struct sched_place_input in = {.size = 10, .holders = NULL, .nholders = 1};
	tb.inputs = &in;
	tb.ninputs = 1;
	cr_assert_eq(sched_place_pick(&v, &tb, 0, &j, &est), -EINVAL);
	uint32_t out_of_range[] = {3}, unsorted[] = {2, 1}, repeated[] = {1, 1};
	const uint32_t *lists[] = {out_of_range, unsorted, repeated};
	uint32_t lens[] = {1, 2, 2};
	for (int i = 0; i < 3; i++) {
		in.holders = lists[i];
		in.nholders = lens[i];
		cr_assert_eq(sched_place_pick(&v, &tb, 0, &j, &est), -EINVAL, "list %d", i);
	}
	/* An alive node without slots or without a link. */
	j = 42;
	est = 42;
	nodes[1].slots = 0;
	cr_assert_eq(sched_place_pick(&v, &t, 0, &j, &est), -EINVAL);
	nodes[1].slots = 4;
	nodes[2].bandwidth = 0;
	cr_assert_eq(sched_place_pick(&v, &t, 0, &j, &est), -EINVAL);
	cr_assert_eq(j, 42, "out-parameters untouched on failure");
	cr_assert_eq(est, 42);
}

Test(place, local_keep_rule)
{
	struct sched_place_node self = idle_node(1);
	struct sched_place_task t = cpu_task();
	cr_assert(sched_place_local_ok(&self, NRES, &t, 0));
	/* Default threshold: 2 per slot, 8 for 4 slots. */
	self.queue_len = 2 * 4 - 1;
	cr_assert(sched_place_local_ok(&self, NRES, &t, 0));
	self.queue_len = 2 * 4;
	cr_assert_not(sched_place_local_ok(&self, NRES, &t, 0));
	cr_assert(sched_place_local_ok(&self, NRES, &t, 9), "an explicit queue_max");
	cr_assert_not(sched_place_local_ok(&self, NRES, &t, 8));
	self.queue_len = 0;
	/* Not free now: forwarded, even with an empty queue. */
	self.avail_milli[R_CPU] = 999;
	cr_assert_not(sched_place_local_ok(&self, NRES, &t, 0));
	self.avail_milli[R_CPU] = 1000;
	cr_assert(sched_place_local_ok(&self, NRES, &t, 0));
	/* A camera this node lacks; then has but is using. */
	t.demand_milli[R_CAMERA] = 1000;
	cr_assert_not(sched_place_local_ok(&self, NRES, &t, 0));
	self.total_milli[R_CAMERA] = 1000;
	cr_assert_not(sched_place_local_ok(&self, NRES, &t, 0));
	self.avail_milli[R_CAMERA] = 1000;
	cr_assert(sched_place_local_ok(&self, NRES, &t, 0));
	/* A node that is going down keeps nothing. */
	self.alive = false;
	cr_assert_not(sched_place_local_ok(&self, NRES, &t, 0));
	self.alive = true;
	/* Bad input forwards, where the global scheduler says -EINVAL. */
	cr_assert_not(sched_place_local_ok(NULL, NRES, &t, 0));
	cr_assert_not(sched_place_local_ok(&self, NRES, NULL, 0));
	cr_assert_not(sched_place_local_ok(&self, SCHED_PLACE_MAX_RES + 1, &t, 0));
	t.demand_milli[NRES] = 1;
	cr_assert_not(sched_place_local_ok(&self, NRES, &t, 0));
}

/* ---- the one-pass walk against a brute-force reference ---- */

static uint64_t rng(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The formula of sched/place.h written the slow way: every node, every holder. */
static int reference(const struct sched_place_node *nodes, uint32_t n,
		     const struct sched_place_task *t, uint32_t start, uint32_t *out,
		     uint64_t *est_out)
{
	int found = 0;
	uint64_t best = 0;
	for (uint32_t r = 0; r < n; r++) {
		uint32_t j = (start % n + r) % n;
		const struct sched_place_node *nd = &nodes[j];
		bool fit = true, now = true;
		for (int k = 0; k < NRES; k++) {
			fit &= nd->total_milli[k] >= t->demand_milli[k];
			now &= nd->avail_milli[k] >= t->demand_milli[k];
		}
		if (!nd->alive || !fit)
			continue;
		unsigned __int128 missing = 0;
		for (uint32_t k = 0; k < t->ninputs; k++) {
			bool has = false;
			for (uint32_t h = 0; h < t->inputs[k].nholders; h++)
				has |= t->inputs[k].holders[h] == j;
			if (!has)
				missing += t->inputs[k].size;
		}
		uint64_t est = (uint64_t)((nd->queue_len + (now ? 0 : 1)) * nd->mean_task_ns /
					  nd->slots) +
			       (uint64_t)(missing * 1000000000u / nd->bandwidth);
		if (!found || est < best) {
			found = 1;
			best = est;
			*out = j;
		}
	}
	*est_out = best;
	return found ? 0 : PRISM_E_INFEASIBLE;
}

Test(place, matches_brute_force)
{
	enum { N = 37, INPUTS = 5, ROUNDS = 3000 };
	uint64_t seed = 7;
	struct sched_place_node nodes[N];
	uint32_t holders[INPUTS][N];
	struct sched_place_input in[INPUTS];
	int infeasible = 0, moved = 0;
	for (int round = 0; round < ROUNDS; round++) {
		for (uint32_t i = 0; i < N; i++) {
			nodes[i] = idle_node((uint8_t)i);
			nodes[i].alive = rng(&seed) % 8 != 0;
			nodes[i].queue_len = (uint32_t)(rng(&seed) % 6);
			nodes[i].slots = 1 + (uint32_t)(rng(&seed) % 8);
			nodes[i].mean_task_ns = rng(&seed) % (4 * MS);
			nodes[i].bandwidth = 1 + rng(&seed) % (4 * GBPS);
			for (int k = 0; k < NRES; k++) {
				nodes[i].total_milli[k] = (rng(&seed) % 5) * 1000;
				nodes[i].avail_milli[k] =
					rng(&seed) % (nodes[i].total_milli[k] + 1);
			}
		}
		struct sched_place_task t = {0};
		for (int k = 0; k < NRES; k++)
			t.demand_milli[k] = (rng(&seed) % 4) * 500;
		t.ninputs = (uint32_t)(rng(&seed) % (INPUTS + 1));
		t.inputs = in;
		for (uint32_t k = 0; k < t.ninputs; k++) {
			in[k].size = rng(&seed) % (8u << 20);
			in[k].holders = holders[k];
			in[k].nholders = 0;
			for (uint32_t i = 0; i < N; i++)
				if (rng(&seed) % 6 == 0)
					holders[k][in[k].nholders++] = i;
		}
		/* Views of 1 to N nodes: the small ones are sometimes infeasible. */
		uint32_t n = 1 + (uint32_t)(rng(&seed) % N);
		for (uint32_t k = 0; k < t.ninputs; k++)
			while (in[k].nholders && holders[k][in[k].nholders - 1] >= n)
				in[k].nholders--;
		uint32_t start = (uint32_t)rng(&seed), got = 0, want = 0;
		uint64_t got_est = 0, want_est = 0;
		int rc = pick(nodes, n, &t, start, &got, &got_est);
		int wrc = reference(nodes, n, &t, start, &want, &want_est);
		cr_assert_eq(rc, wrc, "round %d", round);
		infeasible += rc == PRISM_E_INFEASIBLE;
		if (rc == 0) {
			cr_assert_eq(got, want, "round %d", round);
			cr_assert_eq(got_est, want_est, "round %d", round);
			moved += got_est > 0;
		}
	}
	/* The random cases cover both outcomes and non-trivial estimates. */
	cr_assert_gt(infeasible, 0);
	cr_assert_lt(infeasible, ROUNDS);
	cr_assert_gt(moved, 0);
}
