/* SPSC rings: capacity, order, attach checks, cross-process transfer, sleep and wake. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/ring.h"
#include "base/shm.h"

static void *ring_mem(uint32_t esize, uint32_t count, size_t *size)
{
	*size = prism_ring_memsize(esize, count);
	cr_assert_gt(*size, 0);
	void *m = aligned_alloc(64, (*size + 63) / 64 * 64);
	cr_assert_not_null(m);
	return m;
}

Test(ring, memsize_validates_shape)
{
	cr_assert_eq(prism_ring_memsize(0, 16), 0);
	cr_assert_eq(prism_ring_memsize(6, 16), 0, "esize must be a multiple of 4");
	cr_assert_eq(prism_ring_memsize(2048, 16), 0);
	cr_assert_eq(prism_ring_memsize(8, 0), 0);
	cr_assert_eq(prism_ring_memsize(8, PRISM_RING_MAX_COUNT + 1), 0);
	cr_assert_gt(prism_ring_memsize(8, 1000), 8 * 1000);
}

Test(ring, create_rejects_bad_memory)
{
	size_t sz;
	void *m = ring_mem(16, 64, &sz);
	prism_ring *r = NULL;
	cr_assert_eq(prism_ring_create((char *)m + 8, sz, "x", 16, 64, &r), -EINVAL,
		     "misaligned");
	cr_assert_eq(prism_ring_create(m, sz - 1, "x", 16, 64, &r), -EINVAL, "too small");
	cr_assert_eq(prism_ring_create(m, sz, "x", 12, 0, &r), -EINVAL);
	free(m);
}

Test(ring, exact_capacity_fifo_order_and_bursts)
{
	size_t sz;
	void *m = ring_mem(16, 1000, &sz);
	prism_ring *r = NULL;
	cr_assert_eq(prism_ring_create(m, sz, "fifo", 16, 1000, &r), 0);
	cr_assert_eq(prism_ring_capacity(r), 1000);
	cr_assert_eq(prism_ring_esize(r), 16);
	uint32_t in[4 * 1001];
	for (uint32_t i = 0; i < 4 * 1001; i++)
		in[i] = i;
	cr_assert_eq(prism_ring_enqueue_burst(r, in, 1001), 1000, "exactly 1000 fit");
	cr_assert_eq(prism_ring_count(r), 1000);
	cr_assert_eq(prism_ring_enqueue_burst(r, in, 1), 0, "full");
	uint32_t out[4 * 7];
	uint32_t next = 0;
	unsigned got;
	while ((got = prism_ring_dequeue_burst(r, out, 7)) > 0) {
		for (unsigned k = 0; k < got; k++) {
			cr_assert_eq(out[4 * k], next * 4);
			cr_assert_eq(out[4 * k + 3], next * 4 + 3);
			next++;
		}
	}
	cr_assert_eq(next, 1000);
	cr_assert_eq(prism_ring_dequeue_wait(r, out, 1, 0, 0), PRISM_E_TIMEOUT);
	prism_ring_destroy(r);
	prism_ring_destroy(NULL);
	free(m);
}

Test(ring, attach_checks_every_field)
{
	size_t sz;
	void *m = ring_mem(8, 256, &sz);
	prism_ring *r = NULL, *a = NULL;
	cr_assert_eq(prism_ring_create(m, sz, "chk", 8, 256, &r), 0);
	cr_assert_eq(prism_ring_attach(m, sz, &a), 0);
	uint64_t v = 42, w = 0;
	cr_assert_eq(prism_ring_enqueue_burst(r, &v, 1), 1);
	cr_assert_eq(prism_ring_dequeue_burst(a, &w, 1), 1);
	cr_assert_eq(w, 42);
	prism_ring_destroy(a);
	cr_assert_eq(prism_ring_attach(m, sz - 64, &a), PRISM_E_CORRUPT, "memory too small");

	uint32_t *words = m; /* header: magic, version, esize, count */
	uint32_t save;
	save = words[0], words[0] ^= 1;
	cr_assert_eq(prism_ring_attach(m, sz, &a), PRISM_E_BAD_MAGIC);
	words[0] = save;
	save = words[1], words[1] = 99;
	cr_assert_eq(prism_ring_attach(m, sz, &a), PRISM_E_BAD_VERSION);
	words[1] = save;
	save = words[3], words[3] = 100000;
	cr_assert_eq(prism_ring_attach(m, sz, &a), PRISM_E_CORRUPT, "count past the memory");
	words[3] = save;
	save = words[2], words[2] = 7;
	cr_assert_eq(prism_ring_attach(m, sz, &a), PRISM_E_CORRUPT, "odd element size");
	words[2] = save;
	/* The rte_ring's own mask, as a corrupt peer might leave it. */
	uint32_t *rte = (uint32_t *)((char *)m + 128);
	for (int i = 0; i < 32; i++) {
		if (rte[i] == 511) { /* mask for count 256 with EXACT_SZ: size 512 */
			rte[i] = 0xffff;
			cr_assert_eq(prism_ring_attach(m, sz, &a), PRISM_E_CORRUPT, "mask");
			rte[i] = 511;
			break;
		}
	}
	cr_assert_eq(prism_ring_attach(m, sz, &a), 0);
	prism_ring_destroy(a);
	prism_ring_destroy(r);
	free(m);
}

/* Two rings in one segment for a cross-process test: offsets 0 and `half`. */
struct pair {
	prism_shm *seg;
	size_t half;
};

static void pair_create(struct pair *p, uint32_t esize, uint32_t count)
{
	size_t one = prism_ring_memsize(esize, count);
	p->half = (one + 4095) / 4096 * 4096;
	cr_assert_eq(prism_shm_create("pair", 2 * p->half, 0, &p->seg), 0);
	prism_ring *r = NULL;
	cr_assert_eq(prism_ring_create(prism_shm_base(p->seg), p->half, "a", esize, count, &r),
		     0);
	prism_ring_destroy(r);
	cr_assert_eq(prism_ring_create((char *)prism_shm_base(p->seg) + p->half, p->half, "b",
				       esize, count, &r),
		     0);
	prism_ring_destroy(r);
}

/* In a forked child: receive the segment's fd, map it at a new address, drop the
 * inherited mapping, and open ring `which`.  Exits on failure. */
static prism_shm *child_attach(int sock, struct pair *p)
{
	prism_shm_destroy(p->seg); /* the parent's mapping, inherited by fork */
	char tag[4];
	int fd;
	prism_shm *seg = NULL;
	if (prism_shm_recv_fd(sock, &fd, tag, sizeof(tag), NULL) != 0 ||
	    prism_shm_attach(fd, 0, &seg) != 0)
		_exit(90);
	return seg;
}

static int wait_child(pid_t pid)
{
	int st = 0;
	for (int i = 0; i < 60000; i++) { /* up to 60 s */
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

Test(ring, ten_million_elements_cross_process_in_order, .timeout = 120)
{
	enum { N = 10 * 1000 * 1000, BURST = 32 };
	struct pair p;
	int sv[2];
	pair_create(&p, 8, 4096);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	if (pid == 0) {
		/* Consumer, mapped at an address of its own.  Spins 20 us, then sleeps, so
		 * both paths run during the transfer. */
		prism_shm *seg = child_attach(sv[1], &p);
		prism_ring *in = NULL;
		if (prism_ring_attach(prism_shm_base(seg), p.half, &in) != 0)
			_exit(91);
		uint64_t buf[BURST], expect = 0, sum = 0;
		while (expect < N) {
			int got = prism_ring_dequeue_wait(in, buf, BURST, 20000,
							  10 * (int64_t)PRISM_NS_PER_SEC);
			if (got < 0)
				_exit(92); /* 10 s with nothing: the producer is gone */
			for (int k = 0; k < got; k++) {
				if (buf[k] != expect)
					_exit(93);
				sum += buf[k];
				expect++;
			}
		}
		if (sum != (uint64_t)N * (N - 1) / 2)
			_exit(94);
		prism_ring_destroy(in);
		prism_shm_destroy(seg);
		_exit(0);
	}
	cr_assert_eq(prism_shm_send_fd(sv[0], prism_shm_fd(p.seg), "RING", 4), 0);
	prism_ring *out = NULL;
	cr_assert_eq(prism_ring_attach(prism_shm_base(p.seg), p.half, &out), 0);
	uint64_t buf[BURST], next = 0;
	uint64_t t0 = prism_now_ns();
	while (next < N) {
		unsigned n = 0;
		while (n < BURST && next + n < N) {
			buf[n] = next + n;
			n++;
		}
		unsigned put = prism_ring_enqueue_burst(out, buf, n);
		next += put;
		if (put == 0) {
			if (prism_now_ns() - t0 > 100 * PRISM_NS_PER_SEC)
				break; /* consumer stuck: fail below, not hang */
			sched_yield();
		}
	}
	int rc = wait_child(pid);
	struct prism_ring_stats st;
	prism_ring_get_stats(out, &st);
	cr_log_info("10M elements: consumer slept %lu times, producer woke it %lu times",
		    (unsigned long)st.sleeps, (unsigned long)st.wakes);
	cr_assert_eq(next, N);
	cr_assert_eq(rc, 0, "consumer exit code %d (93 = order, 94 = sum)", rc);
	prism_ring_destroy(out);
	prism_shm_destroy(p.seg);
}

Test(ring, sleeping_consumer_is_woken_through_the_futex, .timeout = 60)
{
	enum { MSGS = 50 };
	struct pair p;
	int sv[2];
	pair_create(&p, 8, 64);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid_t pid = fork();
	if (pid == 0) {
		/* Echo with a zero spin budget: every wait goes to sleep. */
		prism_shm *seg = child_attach(sv[1], &p);
		prism_ring *in = NULL, *out = NULL;
		if (prism_ring_attach(prism_shm_base(seg), p.half, &in) != 0 ||
		    prism_ring_attach((char *)prism_shm_base(seg) + p.half, p.half, &out) != 0)
			_exit(91);
		for (int i = 0; i < MSGS; i++) {
			uint64_t v;
			if (prism_ring_dequeue_wait(in, &v, 1, 0,
						    10 * (int64_t)PRISM_NS_PER_SEC) != 1)
				_exit(92);
			v += 1000;
			if (prism_ring_enqueue_burst(out, &v, 1) != 1)
				_exit(93);
		}
		_exit(0);
	}
	cr_assert_eq(prism_shm_send_fd(sv[0], prism_shm_fd(p.seg), "RING", 4), 0);
	prism_ring *out = NULL, *in = NULL;
	cr_assert_eq(prism_ring_attach(prism_shm_base(p.seg), p.half, &out), 0);
	cr_assert_eq(prism_ring_attach((char *)prism_shm_base(p.seg) + p.half, p.half, &in), 0);
	for (uint64_t i = 0; i < MSGS; i++) {
		/* Give the child time to fall asleep before each message. */
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
		cr_assert_eq(prism_ring_enqueue_burst(out, &i, 1), 1);
		uint64_t v = 0;
		cr_assert_eq(
			prism_ring_dequeue_wait(in, &v, 1, 0, 10 * (int64_t)PRISM_NS_PER_SEC),
			1);
		cr_assert_eq(v, i + 1000);
	}
	cr_assert_eq(wait_child(pid), 0);
	struct prism_ring_stats st;
	prism_ring_get_stats(out, &st);
	/* The child went to sleep before most messages (the 2 ms pause is far longer
	 * than any spin), and every sleep was ended by a wake or an element. */
	cr_assert_geq(st.sleeps, MSGS / 2, "consumer slept %lu times",
		      (unsigned long)st.sleeps);
	cr_assert_geq(st.wakes, MSGS / 2, "producer woke it %lu times",
		      (unsigned long)st.wakes);
	prism_ring_destroy(in);
	prism_ring_destroy(out);
	prism_shm_destroy(p.seg);
}

Test(ring, wait_times_out_on_an_empty_ring, .timeout = 30)
{
	size_t sz;
	void *m = ring_mem(8, 16, &sz);
	prism_ring *r = NULL;
	cr_assert_eq(prism_ring_create(m, sz, "to", 8, 16, &r), 0);
	uint64_t v;
	uint64_t t0 = prism_now_ns();
	cr_assert_eq(prism_ring_dequeue_wait(r, &v, 1, 1000, 20 * (int64_t)PRISM_NS_PER_MS),
		     PRISM_E_TIMEOUT);
	cr_assert_geq(prism_now_ns() - t0, 20 * PRISM_NS_PER_MS, "returned before the timeout");
	cr_assert_eq(prism_ring_dequeue_wait(r, &v, 1, PRISM_RING_SPIN_FOREVER,
					     5 * (int64_t)PRISM_NS_PER_MS),
		     PRISM_E_TIMEOUT, "a spinning wait honours its timeout too");
	prism_ring_destroy(r);
	free(m);
}

Test(ring, fault_injection_in_segment_and_ring_creation)
{
	int n;
	for (n = 1; n < 100; n++) {
		prism_shm *seg = NULL;
		prism_ring *r = NULL, *a = NULL;
		prism_fault_arm(n);
		int rc = prism_shm_create("fi", prism_ring_memsize(8, 64), 0, &seg);
		if (rc == 0)
			rc = prism_ring_create(prism_shm_base(seg), prism_shm_size(seg), "fi",
					       8, 64, &r);
		if (rc == 0)
			rc = prism_ring_attach(prism_shm_base(seg), prism_shm_size(seg), &a);
		bool fired = prism_fault_fired();
		prism_fault_arm(0);
		prism_ring_destroy(a);
		prism_ring_destroy(r);
		prism_shm_destroy(seg);
		if (!fired) {
			cr_assert_eq(rc, 0);
			break;
		}
		cr_assert_lt(rc, 0, "injected failure %d was swallowed", n);
	}
	cr_assert_gt(n, 4, "segment and ring creation pass several fault points");
	cr_assert_lt(n, 100);
}

Test(ring, shared_doorbell_one_consumer_many_producers, .timeout = 60)
{
	/* Three rings drained by one consumer that sleeps on one doorbell; three producer
	 * processes each feed one ring at their own pace. */
	enum { RINGS = 3, PER = 20000 };
	size_t one = (prism_ring_memsize(8, 256) + 63) & ~(size_t)63;
	prism_shm *seg = NULL;
	cr_assert_eq(prism_shm_create("bell", 64 + RINGS * one, 0, &seg), 0);
	char *base = prism_shm_base(seg);
	prism_doorbell_init(base);
	prism_ring *rings[RINGS];
	for (int i = 0; i < RINGS; i++)
		cr_assert_eq(prism_ring_create_shared(base + 64 + i * one, one, "s", 8, 256,
						      base, &rings[i]),
			     0);
	prism_ring *plain = NULL;
	cr_assert_eq(prism_ring_attach(base + 64, one, &plain), -EINVAL,
		     "a shared-doorbell ring cannot be opened without its doorbell");
	pid_t pids[RINGS];
	for (int i = 0; i < RINGS; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			prism_ring *out = NULL;
			if (prism_ring_attach_shared(base + 64 + i * one, one, base, &out) != 0)
				_exit(91);
			for (uint64_t v = 0; v < PER;) {
				uint64_t msg = ((uint64_t)i << 32) | v;
				if (prism_ring_enqueue_burst(out, &msg, 1) == 1)
					v++;
				else
					sched_yield();
				if (v % (1000 * (i + 1)) ==
				    0) { /* pauses let the consumer sleep */
					struct timespec ts = {0, 1000000};
					nanosleep(&ts, NULL);
				}
			}
			_exit(0);
		}
	}
	uint64_t next[RINGS] = {0};
	uint64_t total = 0;
	while (total < (uint64_t)RINGS * PER) {
		int idx =
			prism_ring_wait_any(rings, RINGS, 2000, 10 * (int64_t)PRISM_NS_PER_SEC);
		cr_assert_geq(idx, 0, "wait_any: %d", idx);
		uint64_t buf[64];
		unsigned got = prism_ring_dequeue_burst(rings[idx], buf, 64);
		cr_assert_gt(got, 0, "wait_any named an empty ring");
		for (unsigned k = 0; k < got; k++) {
			cr_assert_eq(buf[k] >> 32, (uint64_t)idx);
			cr_assert_eq(buf[k] & 0xffffffffu, next[idx], "ring %d out of order",
				     idx);
			next[idx]++;
		}
		total += got;
	}
	for (int i = 0; i < RINGS; i++)
		cr_assert_eq(wait_child(pids[i]), 0);
	struct prism_ring_stats st;
	prism_ring_get_stats(rings[0], &st);
	cr_log_info("shared doorbell: %lu sleeps, %lu wakes", (unsigned long)st.sleeps,
		    (unsigned long)st.wakes);
	cr_assert_gt(st.sleeps, 0, "the consumer must have slept during the pauses");
	prism_ring *mixed[2] = {rings[0], NULL};
	size_t sz;
	void *m = ring_mem(8, 16, &sz);
	cr_assert_eq(prism_ring_create(m, sz, "own", 8, 16, &mixed[1]), 0);
	cr_assert_eq(prism_ring_wait_any(mixed, 2, 0, 0), -EINVAL,
		     "rings with different bells");
	prism_ring_destroy(mixed[1]);
	free(m);
	for (int i = 0; i < RINGS; i++)
		prism_ring_destroy(rings[i]);
	prism_shm_destroy(seg);
}

Test(ring, bulk_is_all_or_nothing)
{
	size_t sz;
	void *m = ring_mem(64, 10, &sz);
	prism_ring *r = NULL;
	cr_assert_eq(prism_ring_create(m, sz, "bulk", 64, 10, &r), 0);
	uint8_t in[11][64], out[11][64];
	for (int i = 0; i < 11; i++)
		memset(in[i], i + 1, 64);
	cr_assert_eq(prism_ring_enqueue_bulk(r, in, 11), 0, "11 slots never fit in 10");
	cr_assert_eq(prism_ring_count(r), 0, "a refused bulk leaves nothing behind");
	cr_assert_eq(prism_ring_enqueue_bulk(r, in, 7), 7);
	cr_assert_eq(prism_ring_free_count(r), 3);
	cr_assert_eq(prism_ring_enqueue_bulk(r, in, 4), 0);
	cr_assert_eq(prism_ring_dequeue_bulk(r, out, 8), 0, "only 7 are there");
	cr_assert_eq(prism_ring_dequeue_bulk(r, out, 7), 7);
	cr_assert_eq(memcmp(in, out, 7 * 64), 0);
	prism_ring_destroy(r);
	free(m);
}

Test(ring, producer_wakes_an_event_loop_consumer_through_its_eventfd, .timeout = 30)
{
	/* The consumer sleeps in read(2) on an eventfd, as the node daemon sleeps in its
	 * io_uring loop; the producer, in another process, writes the eventfd instead of
	 * calling futex_wake. */
	size_t one = (prism_ring_memsize(8, 64) + 63) & ~(size_t)63;
	prism_shm *seg = NULL;
	cr_assert_eq(prism_shm_create("efd", 64 + one, 0, &seg), 0);
	char *base = prism_shm_base(seg);
	prism_doorbell_init(base);
	prism_ring *in = NULL;
	cr_assert_eq(prism_ring_create_shared(base + 64, one, "efd", 8, 64, base, &in), 0);
	int efd = eventfd(0, EFD_CLOEXEC);
	cr_assert_geq(efd, 0);
	int go[2];
	cr_assert_eq(pipe(go), 0);
	pid_t pid = fork();
	if (pid == 0) {
		prism_ring *out = NULL;
		char c;
		if (prism_ring_attach_shared(base + 64, one, base, &out) != 0)
			_exit(91);
		prism_ring_set_wake_fd(out, efd);
		for (uint64_t v = 1; v <= 20; v++) {
			if (read(go[0], &c, 1) != 1) /* wait until the consumer sleeps */
				_exit(92);
			if (prism_ring_enqueue_burst(out, &v, 1) != 1)
				_exit(93);
		}
		_exit(0);
	}
	for (uint64_t want = 1; want <= 20; want++) {
		prism_doorbell_prepare_sleep(base);
		uint64_t v = 0, cnt;
		cr_assert_eq(prism_ring_dequeue_burst(in, &v, 1), 0, "nothing sent yet");
		cr_assert_eq(write(go[1], "g", 1), 1);
		cr_assert_eq(read(efd, &cnt, sizeof(cnt)), (ssize_t)sizeof(cnt),
			     "the producer must write the eventfd");
		prism_doorbell_cancel_sleep(base);
		cr_assert_eq(prism_ring_dequeue_burst(in, &v, 1), 1);
		cr_assert_eq(v, want);
	}
	cr_assert_eq(wait_child(pid), 0);
	prism_ring_destroy(in);
	close(efd);
	prism_shm_destroy(seg);
}
