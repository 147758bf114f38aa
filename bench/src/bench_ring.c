/* bench_ring.c — the ring suite: round trips between two processes.
 *
 * Four ways to send a 16-byte message to another process and get it back, measured in
 * one run with their rounds interleaved so that a noisy moment on the VM hurts all of
 * them alike:
 *   raw_roundtrip      bare rte_ring ping-pong, both sides spinning: the floor;
 *   spin_roundtrip     prism's ring API, both sides spinning (spin budget: forever);
 *   wake_roundtrip     prism's ring API with a zero spin budget: every wait sleeps on the
 *                      futex doorbell and every message wakes the other side;
 *   eventfd_roundtrip  two eventfds, blocking reads: the kernel's floor for a sleep/wake.
 * The child process maps the segment at an address of its own (the fd, not the parent's
 * mapping), as a worker does.  With two CPUs, parent and child are pinned one to each.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/hist.h"
#include "base/ring.h"
#include "base/shm.h"
#include "suites.h"

enum mode { RAW, SPIN, WAKE, EVENTFD, NMODES };

static const char *const case_names[NMODES] = {"raw_roundtrip", "spin_roundtrip",
					       "wake_roundtrip", "eventfd_roundtrip"};

struct msg {
	uint64_t seq;
	uint64_t stamp;
};

#define ESIZE ((uint32_t)sizeof(struct msg))
#define SLOTS 1024u
#define STOP UINT64_MAX
/* Every case is guarded by alarm(): a side whose peer died is killed, never hangs. */
#define CASE_ALARM_S 60
/* A spinning wait gives up after this long without a message. */
#define PEER_TIMEOUT_NS (10 * (int64_t)PRISM_NS_PER_SEC)

/* One segment holds everything: two rte_rings for the raw case and two prism rings. */
struct layout {
	size_t raw_sz, ring_sz;
	size_t off[4]; /* raw a->b, raw b->a, prism a->b, prism b->a */
	size_t total;
};

struct side {
	struct rte_ring *raw_out, *raw_in;
	prism_ring *out, *in;
	int efd_out, efd_in;
};

static void make_layout(struct layout *l)
{
	/* RING_F_EXACT_SZ rounds the slot array up to the next power of two above SLOTS. */
	l->raw_sz =
		((size_t)rte_ring_get_memsize_elem(ESIZE, rte_align32pow2(SLOTS + 1)) + 4095) &
		~(size_t)4095;
	l->ring_sz = (prism_ring_memsize(ESIZE, SLOTS) + 4095) & ~(size_t)4095;
	l->off[0] = 0;
	l->off[1] = l->raw_sz;
	l->off[2] = 2 * l->raw_sz;
	l->off[3] = 2 * l->raw_sz + l->ring_sz;
	l->total = 2 * l->raw_sz + 2 * l->ring_sz;
}

/* Open this process's ends.  The parent sends on a->b, the child on b->a. */
static int open_side(void *base, const struct layout *l, int child, struct side *s)
{
	int rc;
	s->raw_out = (struct rte_ring *)((char *)base + l->off[child ? 1 : 0]);
	s->raw_in = (struct rte_ring *)((char *)base + l->off[child ? 0 : 1]);
	rc = prism_ring_attach((char *)base + l->off[child ? 3 : 2], l->ring_sz, &s->out);
	if (rc)
		return rc;
	rc = prism_ring_attach((char *)base + l->off[child ? 2 : 3], l->ring_sz, &s->in);
	if (rc)
		prism_ring_destroy(s->out);
	return rc;
}

static void close_side(struct side *s)
{
	prism_ring_destroy(s->out);
	prism_ring_destroy(s->in);
}

static int raw_recv(struct rte_ring *r, struct msg *m)
{
	uint64_t c0 = prism_cycles(), limit = prism_ns_to_cycles(PEER_TIMEOUT_NS);
	while (rte_ring_sc_dequeue_elem(r, m, ESIZE) != 0) {
		rte_pause();
		if (PRISM_UNLIKELY(prism_cycles() - c0 > limit))
			return PRISM_E_TIMEOUT;
	}
	return 0;
}

static int send_msg(enum mode mode, struct side *s, const struct msg *m)
{
	uint64_t one = 1;
	switch (mode) {
	case RAW:
		while (rte_ring_sp_enqueue_elem(s->raw_out, (void *)m, ESIZE) != 0)
			rte_pause();
		return 0;
	case SPIN:
	case WAKE:
		while (prism_ring_enqueue_burst(s->out, m, 1) != 1)
			sched_yield();
		return 0;
	case EVENTFD:
		/* The eventfd counter carries no payload; the round trip is what counts. */
		return write(s->efd_out, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
	default:
		return -EINVAL;
	}
}

static int recv_msg(enum mode mode, struct side *s, struct msg *m, uint64_t seq)
{
	uint64_t v;
	int rc;
	switch (mode) {
	case RAW:
		return raw_recv(s->raw_in, m);
	case SPIN:
	case WAKE:
		rc = prism_ring_dequeue_wait(s->in, m, 1,
					     mode == SPIN ? PRISM_RING_SPIN_FOREVER : 0,
					     PEER_TIMEOUT_NS);
		return rc == 1 ? 0 : rc;
	case EVENTFD:
		if (read(s->efd_in, &v, sizeof(v)) != sizeof(v))
			return -errno;
		m->seq = v == 1 ? seq : STOP; /* the parent stops the child with 2 */
		return 0;
	default:
		return -EINVAL;
	}
}

static void child_main(enum mode mode, int fd, const struct layout *l, int efd_out, int efd_in)
{
	prism_shm *seg = NULL;
	struct side s = {.efd_out = efd_out, .efd_in = efd_in};
	alarm(CASE_ALARM_S);
	bench_pin_cpu(1);
	if (prism_shm_attach(fd, 0, &seg) != 0 || open_side(prism_shm_base(seg), l, 1, &s) != 0)
		_exit(3);
	for (uint64_t seq = 0;; seq++) {
		struct msg m;
		if (recv_msg(mode, &s, &m, seq) != 0)
			_exit(4);
		if (m.seq == STOP)
			break;
		if (send_msg(mode, &s, &m) != 0)
			_exit(5);
	}
	close_side(&s);
	prism_shm_destroy(seg);
	_exit(0);
}

/* One round of one mode: iters round trips, the first `warm` not recorded. */
static int run_round(enum mode mode, prism_shm *seg, const struct layout *l, int iters,
		     int warm, prism_hist *h, uint64_t *sleeps, uint64_t *waits)
{
	int ab[2] = {-1, -1}, ba[2] = {-1, -1}; /* eventfds: parent->child, child->parent */
	int rc = -1;
	if (mode == EVENTFD) {
		ab[0] = eventfd(0, EFD_CLOEXEC);
		ba[0] = eventfd(0, EFD_CLOEXEC);
		if (ab[0] < 0 || ba[0] < 0)
			goto out;
	}
	/* Fresh, empty rings for every round, so a round never sees another's leftovers. */
	void *base = prism_shm_base(seg);
	for (int i = 0; i < 2; i++)
		if (rte_ring_init((struct rte_ring *)((char *)base + l->off[i]),
				  i ? "rb" : "ra", SLOTS,
				  RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ) != 0)
			goto out;
	for (int i = 2; i < 4; i++) {
		prism_ring *r;
		if (prism_ring_create((char *)base + l->off[i], l->ring_sz, i == 2 ? "a" : "b",
				      ESIZE, SLOTS, &r) != 0)
			goto out;
		prism_ring_destroy(r);
	}
	int childfd = dup(prism_shm_fd(seg));
	pid_t pid = fork();
	if (pid == 0) {
		/* Drop the inherited mapping: the child works on its own. */
		prism_shm_destroy(seg);
		child_main(mode, childfd, l, ba[0], ab[0]);
	}
	close(childfd);
	if (pid < 0)
		goto out;
	struct side s = {.efd_out = ab[0], .efd_in = ba[0]};
	if (open_side(base, l, 0, &s) != 0)
		goto out_child;
	alarm(CASE_ALARM_S);
	int i;
	for (i = 0; i < iters + warm; i++) {
		struct msg m = {.seq = (uint64_t)i}, back;
		uint64_t t0 = prism_cycles();
		if (send_msg(mode, &s, &m) != 0 || recv_msg(mode, &s, &back, m.seq) != 0 ||
		    back.seq != m.seq)
			break;
		uint64_t dt = prism_cycles() - t0;
		if (i >= warm)
			prism_hist_record(h, prism_cycles_to_ns(dt));
	}
	alarm(0);
	if (mode == EVENTFD) {
		uint64_t two = 2;
		if (write(ab[0], &two, sizeof(two)) != sizeof(two))
			i = -1;
	} else {
		struct msg stop = {.seq = STOP};
		send_msg(mode, &s, &stop);
	}
	if (mode == WAKE) {
		struct prism_ring_stats a, b;
		prism_ring_get_stats(s.out, &a);
		prism_ring_get_stats(s.in, &b);
		*sleeps += a.sleeps + b.sleeps;
		*waits += 2 * (uint64_t)(iters + warm) + 1; /* both sides, and the stop */
	}
	close_side(&s);
	rc = i == iters + warm ? 0 : -1;
out_child:;
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "prism-bench ring: %s child failed (status %d)\n",
			case_names[mode], st);
		rc = -1;
	}
out:
	if (ab[0] >= 0)
		close(ab[0]);
	if (ba[0] >= 0)
		close(ba[0]);
	return rc;
}

static double p50_us(const prism_hist *h)
{
	return (double)prism_hist_percentile(h, 50.0) / 1e3;
}

int bench_ring(const struct bench_opts *o)
{
	const int rounds = o->rounds ? o->rounds : (o->quick ? 1 : 5);
	const int spin_iters = o->quick ? 20000 : 100000;
	const int wake_iters = o->quick ? 1000 : 4000;
	struct layout l;
	prism_shm *seg = NULL;
	prism_hist *h[NMODES] = {0};
	uint64_t sleeps = 0, waits = 0;
	int rc = 0;

	make_layout(&l);
	rc = prism_shm_create("bench-ring", l.total, PRISM_SHM_POPULATE, &seg);
	if (rc) {
		fprintf(stderr, "prism-bench ring: segment: %s\n", prism_strerror(rc));
		return 1;
	}
	for (int m = 0; m < NMODES; m++)
		if (prism_hist_create(&h[m]) != 0)
			goto fail;
	bench_pin_cpu(0);
	for (int r = 0; r < rounds; r++) {
		for (int m = 0; m < NMODES; m++) {
			int iters = (m == RAW || m == SPIN) ? spin_iters : wake_iters;
			if (run_round((enum mode)m, seg, &l, iters, iters / 10, h[m], &sleeps,
				      &waits))
				goto fail;
		}
	}
	bench_report_header(o, "ring", "16-byte message round trip between two processes");
	for (int m = 0; m < NMODES; m++) {
		struct bench_field f[2] = {{"rounds", rounds, NULL}};
		int nf = 1;
		if (m == WAKE) {
			/* Share of waits that really slept: proof the futex path was taken. */
			f[1] = (struct bench_field){"sleep_frac",
						    (double)sleeps / (double)waits, NULL};
			nf = 2;
		}
		bench_report_latency(o, "ring", case_names[m], h[m], f, nf);
	}
	double spin_ratio = p50_us(h[SPIN]) / p50_us(h[RAW]);
	double wake_ratio = p50_us(h[WAKE]) / p50_us(h[EVENTFD]);
	struct bench_field t1[2] = {{"target_max", 1.5, NULL},
				    {"met", spin_ratio <= 1.5 ? 1 : 0, NULL}};
	struct bench_field t2[2] = {{"target_max", 1.2, NULL},
				    {"met", wake_ratio <= 1.2 ? 1 : 0, NULL}};
	bench_report_value(o, "ring", "spin_vs_raw_p50", "ratio", spin_ratio, t1, 2);
	bench_report_value(o, "ring", "wake_vs_eventfd_p50", "ratio", wake_ratio, t2, 2);
	goto done;
fail:
	fprintf(stderr, "prism-bench ring: a round failed; no figures reported\n");
	rc = 1;
done:
	for (int m = 0; m < NMODES; m++)
		prism_hist_destroy(h[m]);
	prism_shm_destroy(seg);
	return rc;
}
