/* ring.c — SPSC rings on DPDK rte_ring with a futex doorbell; see base/ring.h. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/ring.h"

#define RING_MAGIC 0x474e5250u /* "PRNG" */
#define RING_VERSION 1u
#define HDR_SIZE 128u

struct ring_hdr {
	uint32_t magic;
	uint32_t version;
	uint32_t esize;
	uint32_t count;
	uint64_t memsize;
	char name[32];
	uint32_t flags; /* HDR_F_* */
	uint32_t pad_;
};

/* The ring sleeps on a doorbell outside its memory, shared with other rings that the
 * same consumer drains; whoever attaches must be handed that doorbell. */
#define HDR_F_EXT_BELL 1u

/* The consumer sets `sleeping` and re-checks the ring before it waits on `word`; a
 * producer stores its elements, fences, and wakes only when it sees `sleeping`.  The two
 * fences make it impossible for both to miss each other (the Dekker pattern). */
struct doorbell {
	_Atomic uint32_t word;
	_Atomic uint32_t sleeping;
	_Atomic uint64_t sleeps;
	_Atomic uint64_t wakes;
	uint8_t pad_[40];
};

_Static_assert(sizeof(struct ring_hdr) == 64, "header is one cache line");
_Static_assert(sizeof(struct doorbell) == 64, "doorbell is one cache line");

struct prism_ring {
	struct rte_ring *r;
	struct doorbell *bell;
	uint32_t esize;
	int wake_fd; /* producer side: an eventfd to write instead of futex_wake, or -1 */
};

static int esize_ok(uint32_t esize)
{
	return esize >= 4 && esize <= PRISM_RING_MAX_ESIZE && esize % 4 == 0;
}

size_t prism_ring_memsize(uint32_t esize, uint32_t count)
{
	if (!esize_ok(esize) || count == 0 || count > PRISM_RING_MAX_COUNT)
		return 0;
	/* RING_F_EXACT_SZ: the capacity is exactly `count`, at the price of rounding the
	 * slot array up to a power of two. */
	ssize_t sz = rte_ring_get_memsize_elem(esize, rte_align32pow2(count + 1));
	if (sz <= 0)
		return 0;
	return HDR_SIZE + (size_t)sz;
}

static int make_handle(void *mem, void *bell, prism_ring **out)
{
	prism_ring *h = prism_malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	struct ring_hdr *hdr = mem;
	h->r = (struct rte_ring *)((char *)mem + HDR_SIZE);
	h->bell = bell ? bell : (struct doorbell *)((char *)mem + 64);
	h->wake_fd = -1;
	h->esize = hdr->esize;
	*out = h;
	return 0;
}

void prism_doorbell_init(void *bell)
{
	memset(bell, 0, PRISM_DOORBELL_SIZE);
}

int prism_ring_create(void *mem, size_t memsize, const char *name, uint32_t esize,
		      uint32_t count, prism_ring **out)
{
	return prism_ring_create_shared(mem, memsize, name, esize, count, NULL, out);
}

int prism_ring_create_shared(void *mem, size_t memsize, const char *name, uint32_t esize,
			     uint32_t count, void *bell, prism_ring **out)
{
	size_t need = prism_ring_memsize(esize, count);
	if (!mem || !out || need == 0 || memsize < need || ((uintptr_t)mem & 63) ||
	    ((uintptr_t)bell & 63))
		return -EINVAL;
	struct ring_hdr *hdr = mem;
	memset(mem, 0, HDR_SIZE);
	hdr->flags = bell ? HDR_F_EXT_BELL : 0;
	hdr->esize = esize;
	hdr->count = count;
	hdr->memsize = need;
	snprintf(hdr->name, sizeof(hdr->name), "%s", name ? name : "ring");
	struct rte_ring *r = (struct rte_ring *)((char *)mem + HDR_SIZE);
	int rc = rte_ring_init(r, hdr->name, count,
			       RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (rc != 0)
		return rc < 0 ? rc : -EINVAL;
	rc = make_handle(mem, bell, out);
	if (rc)
		return rc;
	hdr->version = RING_VERSION;
	/* Publish the magic last: a peer that sees it sees a formatted ring. */
	__atomic_store_n(&hdr->magic, RING_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

int prism_ring_attach(void *mem, size_t memsize, prism_ring **out)
{
	return prism_ring_attach_shared(mem, memsize, NULL, out);
}

int prism_ring_attach_shared(void *mem, size_t memsize, void *bell, prism_ring **out)
{
	if (!mem || !out || ((uintptr_t)mem & 63) || ((uintptr_t)bell & 63) ||
	    memsize < HDR_SIZE + sizeof(struct rte_ring))
		return -EINVAL;
	const struct ring_hdr *hdr = mem;
	if (__atomic_load_n(&hdr->magic, __ATOMIC_ACQUIRE) != RING_MAGIC)
		return PRISM_E_BAD_MAGIC;
	if (hdr->version != RING_VERSION)
		return PRISM_E_BAD_VERSION;
	if (!!(hdr->flags & HDR_F_EXT_BELL) != !!bell)
		return -EINVAL; /* a shared-doorbell ring opened without it, or the reverse */
	size_t need = prism_ring_memsize(hdr->esize, hdr->count);
	if (need == 0 || hdr->memsize != need || memsize < need)
		return PRISM_E_CORRUPT;
	/* rte_ring indexes its slots with size and mask on every operation: they must be
	 * exactly what init would have written for this count, or a corrupt peer could
	 * send us outside the memory we checked. */
	const struct rte_ring *r = (const struct rte_ring *)((const char *)mem + HDR_SIZE);
	uint32_t size = rte_align32pow2(hdr->count + 1);
	if (r->size != size || r->mask != size - 1 || r->capacity != hdr->count ||
	    r->prod.sync_type != RTE_RING_SYNC_ST || r->cons.sync_type != RTE_RING_SYNC_ST)
		return PRISM_E_CORRUPT;
	return make_handle(mem, bell, out);
}

void prism_ring_destroy(prism_ring *r)
{
	prism_free(r);
}

static long futex(_Atomic uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	/* Not FUTEX_PRIVATE_FLAG: the word is shared between processes, and the kernel
	 * keys a shared futex by the page, whatever address each process maps it at. */
	return syscall(SYS_futex, (uint32_t *)uaddr, op, val, ts, NULL, 0);
}

static void wake(struct doorbell *bell, int wake_fd)
{
	if (atomic_exchange_explicit(&bell->sleeping, 0, memory_order_acq_rel)) {
		atomic_fetch_add_explicit(&bell->word, 1, memory_order_release);
		atomic_fetch_add_explicit(&bell->wakes, 1, memory_order_relaxed);
		if (wake_fd >= 0) {
			/* The consumer sleeps in an event loop that polls this eventfd.  A
			 * full counter (EAGAIN) already means "wake up", so the result can
			 * be ignored. */
			uint64_t one = 1;
			ssize_t n = write(wake_fd, &one, sizeof(one));
			(void)n;
		} else {
			futex(&bell->word, FUTEX_WAKE, INT_MAX, NULL);
		}
	}
}

void prism_ring_set_wake_fd(prism_ring *r, int fd)
{
	r->wake_fd = fd;
}

void prism_doorbell_prepare_sleep(void *bell)
{
	struct doorbell *b = bell;
	atomic_store_explicit(&b->sleeping, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->sleeps, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
}

bool prism_doorbell_asleep(const void *bell, uint64_t *sleeps, uint64_t *wakes)
{
	const struct doorbell *b = bell;
	if (sleeps)
		*sleeps = atomic_load_explicit(&b->sleeps, memory_order_relaxed);
	if (wakes)
		*wakes = atomic_load_explicit(&b->wakes, memory_order_relaxed);
	return atomic_load_explicit(&b->sleeping, memory_order_relaxed) != 0;
}

void prism_doorbell_cancel_sleep(void *bell)
{
	struct doorbell *b = bell;
	atomic_store_explicit(&b->sleeping, 0, memory_order_relaxed);
}

static inline void after_enqueue(prism_ring *r)
{
	/* Order the ring's tail store before the load of `sleeping` (see struct doorbell).
	 * A full fence costs ~20 ns; the wake it guards costs thousands. */
	atomic_thread_fence(memory_order_seq_cst);
	if (PRISM_UNLIKELY(atomic_load_explicit(&r->bell->sleeping, memory_order_relaxed)))
		wake(r->bell, r->wake_fd);
}

unsigned prism_ring_enqueue_bulk(prism_ring *r, const void *objs, unsigned n)
{
	unsigned done = rte_ring_sp_enqueue_bulk_elem(r->r, objs, r->esize, n, NULL);
	if (done)
		after_enqueue(r);
	return done;
}

unsigned prism_ring_dequeue_bulk(prism_ring *r, void *objs, unsigned n)
{
	return rte_ring_sc_dequeue_bulk_elem(r->r, objs, r->esize, n, NULL);
}

unsigned prism_ring_peek(const prism_ring *r, void *obj)
{
	/* Single consumer: its head is its tail, and nobody else moves either.  The
	 * producer's tail is read with acquire, as rte_ring's own dequeue does, so the
	 * element's bytes are there once the index says so. */
	const struct rte_ring *rr = r->r;
	uint32_t head = rr->cons.head;
	uint32_t ptail = __atomic_load_n(&rr->prod.tail, __ATOMIC_ACQUIRE);
	if (ptail == head)
		return 0;
	memcpy(obj, (const uint8_t *)&rr[1] + (size_t)(head & rr->mask) * r->esize, r->esize);
	return 1;
}

unsigned prism_ring_free_count(const prism_ring *r)
{
	return rte_ring_free_count(r->r);
}

unsigned prism_ring_enqueue_burst(prism_ring *r, const void *objs, unsigned n)
{
	unsigned done = rte_ring_sp_enqueue_burst_elem(r->r, objs, r->esize, n, NULL);
	after_enqueue(r);
	return done;
}

unsigned prism_ring_dequeue_burst(prism_ring *r, void *objs, unsigned n)
{
	return rte_ring_sc_dequeue_burst_elem(r->r, objs, r->esize, n, NULL);
}

void prism_ring_wake(prism_ring *r)
{
	atomic_thread_fence(memory_order_seq_cst);
	wake(r->bell, r->wake_fd);
}

static int any_ready(prism_ring *const *rings, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (rte_ring_count(rings[i]->r) != 0)
			return (int)i;
	return -1;
}

/* Sleep on the doorbell the rings share until woken or until `deadline` (prism_now_ns;
 * 0 = none).  Returns -ETIMEDOUT once the deadline has passed.  A non-zero *flag (if
 * flag) is a reason not to sleep, checked after `sleeping` is published, as the rings
 * are: whoever sets it and then wakes the doorbell is never missed. */
static int sleep_on(prism_ring *const *rings, unsigned nrings, uint64_t deadline,
		    const uint32_t *flag)
{
	struct doorbell *bell = rings[0]->bell;
	uint32_t seq = atomic_load_explicit(&bell->word, memory_order_acquire);
	atomic_store_explicit(&bell->sleeping, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	if (any_ready(rings, nrings) >= 0 ||
	    (flag && __atomic_load_n(flag, __ATOMIC_RELAXED))) {
		atomic_store_explicit(&bell->sleeping, 0, memory_order_relaxed);
		return 0;
	}
	struct timespec ts, *tsp = NULL;
	if (deadline) {
		uint64_t now = prism_now_ns();
		if (now >= deadline) {
			atomic_store_explicit(&bell->sleeping, 0, memory_order_relaxed);
			return -ETIMEDOUT;
		}
		ts.tv_sec = (time_t)((deadline - now) / PRISM_NS_PER_SEC);
		ts.tv_nsec = (long)((deadline - now) % PRISM_NS_PER_SEC);
		tsp = &ts;
	}
	atomic_fetch_add_explicit(&bell->sleeps, 1, memory_order_relaxed);
	/* EAGAIN (the word moved: a wake came first), EINTR and ETIMEDOUT all return to
	 * the caller, which re-checks the ring and the deadline. */
	futex(&bell->word, FUTEX_WAIT, seq, tsp);
	atomic_store_explicit(&bell->sleeping, 0, memory_order_relaxed);
	return 0;
}

/* What a waiting consumer tries on every spin: > 0 (or an index >= 0) ends the wait. */
struct poll_ctx {
	prism_ring *const *rings;
	unsigned n;
	void *objs;
	unsigned max;
	const uint32_t *flag; /* prism_ring_wait_any_flag: ends the wait when set */
};

static inline int poll_dequeue(const struct poll_ctx *p)
{
	return (int)prism_ring_dequeue_burst(p->rings[0], p->objs, p->max) - 1;
}

static inline int poll_any(const struct poll_ctx *p)
{
	return any_ready(p->rings, p->n);
}

/* Spin up to spin_ns, then sleep on the rings' doorbell, until poll() returns >= 0 or
 * timeout_ns passes.  Inlined with each poll function, so the spin loop of a single-ring
 * wait is the dequeue itself and nothing else. */
static inline __attribute__((always_inline)) int spin_then_sleep(
	const struct poll_ctx *p, int (*poll)(const struct poll_ctx *), uint64_t spin_ns,
	int64_t timeout_ns)
{
	uint64_t deadline = timeout_ns > 0 ? prism_now_ns() + (uint64_t)timeout_ns : 0;
	uint64_t c0 = prism_cycles();
	uint64_t spin_cycles =
		spin_ns == PRISM_RING_SPIN_FOREVER ? UINT64_MAX : prism_ns_to_cycles(spin_ns);
	uint64_t timeout_cycles =
		timeout_ns > 0 ? prism_ns_to_cycles((uint64_t)timeout_ns) : UINT64_MAX;
	for (;;) {
		int rc = poll(p);
		if (rc >= 0)
			return rc;
		uint64_t spent = prism_cycles() - c0;
		if (spent >= timeout_cycles)
			return PRISM_E_TIMEOUT;
		if (spent < spin_cycles) {
			rte_pause();
			continue;
		}
		if (sleep_on(p->rings, p->n, deadline, p->flag) == -ETIMEDOUT)
			return PRISM_E_TIMEOUT;
	}
}

int prism_ring_dequeue_wait(prism_ring *r, void *objs, unsigned n, uint64_t spin_ns,
			    int64_t timeout_ns)
{
	unsigned got = prism_ring_dequeue_burst(r, objs, n);
	if (PRISM_LIKELY(got) || n == 0)
		return (int)got;
	if (timeout_ns == 0)
		return PRISM_E_TIMEOUT;
	struct poll_ctx p = {.rings = &r, .n = 1, .objs = objs, .max = n};
	int rc = spin_then_sleep(&p, poll_dequeue, spin_ns, timeout_ns);
	return rc < 0 ? rc : rc + 1;
}

int prism_ring_wait_any(prism_ring *const *rings, unsigned n, uint64_t spin_ns,
			int64_t timeout_ns)
{
	if (!rings || n == 0)
		return -EINVAL;
	for (unsigned i = 1; i < n; i++)
		if (rings[i]->bell != rings[0]->bell)
			return -EINVAL;
	int ready = any_ready(rings, n);
	if (PRISM_LIKELY(ready >= 0) || timeout_ns == 0)
		return ready >= 0 ? ready : PRISM_E_TIMEOUT;
	struct poll_ctx p = {.rings = rings, .n = n};
	return spin_then_sleep(&p, poll_any, spin_ns, timeout_ns);
}

static inline int poll_any_flag(const struct poll_ctx *p)
{
	if (__atomic_load_n(p->flag, __ATOMIC_ACQUIRE))
		return (int)p->n;
	return any_ready(p->rings, p->n);
}

int prism_ring_wait_any_flag(prism_ring *const *rings, unsigned n, uint64_t spin_ns,
			     int64_t timeout_ns, const uint32_t *flag)
{
	if (!rings || n == 0 || !flag)
		return -EINVAL;
	for (unsigned i = 1; i < n; i++)
		if (rings[i]->bell != rings[0]->bell)
			return -EINVAL;
	struct poll_ctx p = {.rings = rings, .n = n, .flag = flag};
	int ready = poll_any_flag(&p);
	if (ready >= 0 || timeout_ns == 0)
		return ready >= 0 ? ready : PRISM_E_TIMEOUT;
	return spin_then_sleep(&p, poll_any_flag, spin_ns, timeout_ns);
}

unsigned prism_ring_count(const prism_ring *r)
{
	return rte_ring_count(r->r);
}

unsigned prism_ring_capacity(const prism_ring *r)
{
	return rte_ring_get_capacity(r->r);
}

uint32_t prism_ring_esize(const prism_ring *r)
{
	return r->esize;
}

void prism_ring_get_stats(const prism_ring *r, struct prism_ring_stats *st)
{
	st->sleeps = atomic_load_explicit(&r->bell->sleeps, memory_order_relaxed);
	st->wakes = atomic_load_explicit(&r->bell->wakes, memory_order_relaxed);
}
