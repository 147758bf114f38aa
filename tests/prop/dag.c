/* tests/prop/dag.c — a black-box property test of prism's task graphs.
 *
 * Written from the public API only (prism.h, README, examples).  For each seed it builds
 * a random task graph, runs it on an embedded node and checks every result it chose to
 * check against a model computed here, in the driver, without prism:
 *
 *   - N tasks of one remote function (`dagfn`), each with 0-6 inputs: refs to results of
 *     earlier tasks, bytes by value (0 B - 200 KiB, sometimes several big ones so that a
 *     call's arguments exceed 128 KiB), refs from prism_put (0 B - 3 MiB), the same ref
 *     twice; 1-3 results each, 0 B - 4 MiB.
 *   - Result r of a task = expand(mix(H, r)), H = a hash of the task's seed and of the
 *     digests of all its inputs in order; the model computes the same from its values.
 *     The task's first argument is a small header (seed, sizes, what to do, the expected
 *     digest of each input, so that a corrupted argument is named by the task itself).
 *   - ~3 % fail on purpose (prism_fail); every task that takes one of their results,
 *     directly or transitively, must fail with PRISM_E_TASK_FAILED and a text naming the
 *     root failure; every other result must be exact.
 *   - Nested tasks: a task that submits a tree of children (fan-out 2-3, depth 1-4) from
 *     inside the worker, waits for them with prism_get / prism_wait and combines their
 *     results; children may pass refs to each other, take a prism_put made by the
 *     parent, fail on purpose, and a parent may return a child's result with
 *     prism_return_ref.  --nested N lets the trees of a graph hold N waiting tasks at
 *     once (default 16 or 30), beyond the worker processes a node may start.
 *   - The driver releases refs as soon as it no longer needs them (often right after
 *     submitting the task that uses them), checks results in random order, sometimes
 *     after a prism_wait on a random subset, and turns a result that never comes into a
 *     reported failure ("missing result") instead of a hang.
 *   - Some results and error texts are read again later (at the address prism_get gave
 *     and with a second prism_get), after many other prism calls: they must not change
 *     while the ref is held.  Every prism_last_error() read must be printable text.
 *   - --kill-workers: a thread SIGKILLs a random worker of the node every 50-300 ms
 *     (at most 40 times, for at most 60 s); results must still be right, and an error
 *     is allowed only if its text says that a worker died.
 *
 * Besides the graphs, a few deterministic cases (--case NAME, see --help): NULL data,
 * killing a made-up actor, an actor whose constructor fails, > 128 KiB of small by-value
 * arguments, tasks starting while the driver sleeps.
 *
 * Build: cc -Wall -Wextra -Werror -I core/include -I core/base/include tests/prop/dag.c
 *        -lprism -lpthread.  --small, --no-nested, --no-early-release and --no-fail turn
 * features off to narrow a failure down (they change the graph of a seed).
 *
 * Every seed and case runs in a forked child of the test (so that a crash or a hang of
 * the driver is reported with its seed and the run goes on); a watchdog in the parent
 * kills a child that hangs.  Output: the seed before it runs, one line per problem
 * (task, expected vs got, first differing byte), and at the end exactly one line
 * "N passed, N failed".  Exit status 0 only if nothing failed.
 *
 * Workers re-run this executable; they enter their task loop from the constructor that
 * PRISM_REMOTE emits, so main() runs only in the driver.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "prism.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define NS_PER_S 1000000000LL
#define MAX_IN 6
#define MAX_RET 3
#define MAX_FAN 3

/* ---- hashing and pseudo-random bytes (shared by workers and the model) ---------------- */

static inline uint64_t fmix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline uint64_t sm64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

typedef struct {
	uint64_t s;
} rng;

static inline uint64_t rnext(rng *r)
{
	return sm64(&r->s);
}
/* Uniform in [0, n) (n > 0); the tiny bias does not matter here. */
static inline uint64_t rbelow(rng *r, uint64_t n)
{
	return n ? rnext(r) % n : 0;
}
/* Uniform in [lo, hi]. */
static inline uint64_t rrange(rng *r, uint64_t lo, uint64_t hi)
{
	return lo + rbelow(r, hi - lo + 1);
}
static inline bool rpct(rng *r, unsigned pct)
{
	return rbelow(r, 100) < pct;
}

/* One step of the digest: a bijection of h for a fixed w and injective in w for a fixed
 * h, so that any single changed 8-byte word changes the digest. */
static inline uint64_t dg_word(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0x9fb21c651e98df25ULL;
	return h ^ (h >> 28);
}
static inline uint64_t dg_init(size_t n)
{
	return 0x6a09e667f3bcc908ULL ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
}

/* The digest of n bytes (length included). */
static uint64_t digest(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = dg_init(n);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, b + i, 8);
		h = dg_word(h, w);
	}
	if (i < n) {
		uint64_t w = 0;
		memcpy(&w, b + i, n - i);
		h = dg_word(h, w ^ 0x5bd1e9955bd1e995ULL);
	}
	return fmix(h ^ n);
}

/* The bytes of a value: a splitmix64 stream from vseed, cut to len. */
static void expand(uint64_t vseed, void *dst, size_t len)
{
	uint8_t *d = dst;
	uint64_t s = vseed;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w = sm64(&s);
		memcpy(d + i, &w, 8);
	}
	if (i < len) {
		uint64_t w = sm64(&s);
		memcpy(d + i, &w, len - i);
	}
}

/* digest(expand(vseed, len)) without a buffer. */
static uint64_t val_digest(uint64_t vseed, size_t len)
{
	uint64_t s = vseed, h = dg_init(len);
	size_t i = 0;
	for (; i + 8 <= len; i += 8)
		h = dg_word(h, sm64(&s));
	if (i < len) {
		uint64_t w = sm64(&s), t = 0;
		memcpy(&t, &w, len - i);
		h = dg_word(h, t ^ 0x5bd1e9955bd1e995ULL);
	}
	return fmix(h ^ len);
}

/* Byte `off` of expand(vseed, ...). */
static uint8_t val_byte(uint64_t vseed, size_t off)
{
	uint64_t s = vseed + (uint64_t)(off / 8) * 0x9e3779b97f4a7c15ULL;
	uint64_t w = sm64(&s);
	uint8_t b[8];
	memcpy(b, &w, 8);
	return b[off % 8];
}

/* The first offset where p differs from expand(vseed, len), or -1. */
static long first_diff(uint64_t vseed, const void *p, size_t len)
{
	const uint8_t *d = p;
	uint64_t s = vseed;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = sm64(&s);
		uint8_t b[8];
		memcpy(b, &w, 8);
		size_t k = len - i < 8 ? len - i : 8;
		if (memcmp(d + i, b, k) != 0)
			for (size_t j = 0; j < k; j++)
				if (d[i + j] != b[j])
					return (long)(i + j);
	}
	return -1;
}

static inline uint64_t hstart(uint64_t seed)
{
	return fmix(seed ^ 0x243f6a8885a308d3ULL);
}
static inline uint64_t hmix(uint64_t H, uint64_t d)
{
	return fmix(((H << 17) | (H >> 47)) * 0x9e3779b97f4a7c15ULL ^ d);
}
/* The value seed of result/derived value number r of a task whose hash is H. */
static inline uint64_t rmix(uint64_t H, uint64_t r)
{
	return fmix(H ^ ((r + 1) * 0xd6e8feb86659fd93ULL));
}

#define R_PUT 0x200       /* a nested parent's put */
#define R_BLOB 0x100      /* + child index: a child's by-value blob */
#define R_SMALL 0x300     /* + child index: a child's 8-byte argument */
#define R_FAILSET 0x400   /* a failing task's result set before it fails */
#define R_CHILDPLAN 0x500 /* the seed of the children's plan */

/* ---- the task header: the first argument of every dagfn call -------------------------- */

#define HDR_MAGIC 0x3147414450525031ULL

struct hdr {
	uint64_t magic;
	uint64_t seed;
	uint32_t nret;
	uint32_t nin;
	uint32_t out_len[MAX_RET];
	uint32_t put_len;       /* nested: the parent puts this many bytes for its children */
	uint32_t timeout_s;     /* nested: how long to wait for children */
	uint8_t fail;           /* leaf: fail on purpose */
	uint8_t fail_after_set; /* ... after setting result 0 */
	uint8_t depth;          /* levels of children below (0: a leaf) */
	uint8_t fanout;
	uint8_t wait_mode;      /* nested: 0 gets in order, 1 wait all, 2 wait one by one */
	uint8_t return_ref;     /* nested: the last result is child 0's result 0 */
	uint8_t child_fail_pct; /* nested: % of leaf children failing on purpose */
	uint8_t skip_empty;     /* leave empty results unset */
	uint8_t in_known[MAX_IN];
	uint8_t pad[6];
	uint64_t in_len[MAX_IN];
	uint64_t in_digest[MAX_IN];
	char path[40]; /* "T12" or "T12.0.2": names the task in failure texts */
};

#define FAIL_MARK "intentional failure ["

static void path_child(char *out, size_t n, const char *parent, unsigned i)
{
	size_t l = strnlen(parent, n - 3);
	memmove(out, parent, l);
	out[l] = '.';
	out[l + 1] = (char)('0' + i % 10);
	out[l + 2] = 0;
}

/* Result sizes of nested children: mostly small, some around the inline limit, few big. */
static uint32_t child_len(rng *r)
{
	unsigned u = (unsigned)rbelow(r, 100);
	if (u < 10)
		return 0;
	if (u < 75)
		return (uint32_t)rrange(r, 1, 2048);
	if (u < 95)
		return (uint32_t)rrange(r, 60 * KIB, 100 * KIB);
	return (uint32_t)rrange(r, 150 * KIB, 400 * KIB);
}

struct child_plan {
	struct hdr h; /* in_* not filled */
	bool blob;
	uint32_t blob_len;
	bool use_put;
	bool sib; /* takes the previous child's result 0 */
};

/* The children of a nested task, from its header and input hash: the same in a worker
 * and in the model. */
static unsigned plan_children(const struct hdr *p, uint64_t H, struct child_plan *c)
{
	rng r = {rmix(H ^ p->seed, R_CHILDPLAN)};
	unsigned n = p->fanout;
	for (unsigned i = 0; i < n; i++) {
		struct child_plan *k = &c[i];
		memset(k, 0, sizeof(*k));
		k->h.magic = HDR_MAGIC;
		k->h.seed = rnext(&r);
		k->h.nret = 1 + (uint32_t)rbelow(&r, 2);
		for (unsigned j = 0; j < MAX_RET; j++)
			k->h.out_len[j] = child_len(&r);
		k->h.depth = p->depth ? (uint8_t)(p->depth - 1) : 0;
		k->h.fanout = k->h.depth ? p->fanout : 0;
		k->h.wait_mode = (uint8_t)rbelow(&r, 3);
		k->h.return_ref = rpct(&r, 35);
		uint32_t pl = rpct(&r, 80) ? (uint32_t)rrange(&r, 0, 4096)
					   : (uint32_t)rrange(&r, 64 * KIB, 200 * KIB);
		k->h.put_len = (k->h.depth && rpct(&r, 35)) ? pl : 0;
		k->h.timeout_s = p->timeout_s;
		k->h.child_fail_pct = p->child_fail_pct;
		bool f = rbelow(&r, 100) < p->child_fail_pct;
		k->h.fail = k->h.depth == 0 && f;
		k->h.fail_after_set = rpct(&r, 50);
		k->h.skip_empty = rpct(&r, 50);
		path_child(k->h.path, sizeof(k->h.path), p->path, i);
		k->blob = rpct(&r, 35);
		k->blob_len = rpct(&r, 60) ? (uint32_t)rrange(&r, 0, 2048)
					   : (uint32_t)rrange(&r, 60 * KIB, 100 * KIB);
		k->use_put = p->put_len && rpct(&r, 70);
		k->sib = i > 0 && rpct(&r, 35);
		k->h.nin = 1 + k->blob + k->use_put + k->sib;
	}
	return n;
}

/* ---- the remote functions ------------------------------------------------------------- */

static bool printable(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= 0x20 && c < 0x7f) && c != '\n' && c != '\t')
			return false;
	}
	return true;
}

/* The text of an error object: trailing NULs dropped. */
static size_t text_len(const void *d, size_t n)
{
	const char *s = d;
	if (!s)
		return 0;
	while (n > 0 && s[n - 1] == '\0')
		n--;
	return n;
}

static void hexdump(char *out, size_t cap, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t o = 0;
	out[0] = 0;
	for (size_t i = 0; i < n && o + 3 < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%02x", b[i]);
}

static int set_result(prism_task_ctx *ctx, const struct hdr *h, unsigned r, uint64_t vseed,
		      uint32_t len)
{
	if (len == 0 && h->skip_empty)
		return 0; /* unset results are empty */
	void *buf = malloc(len ? len : 1);
	if (!buf)
		return prism_fail(ctx, "[%s] out of memory for %u bytes", h->path, len);
	expand(vseed, buf, len);
	int rc = prism_return(ctx, r, buf, len);
	free(buf);
	if (rc < 0)
		return prism_fail(ctx, "RETURN-FAILED [%s] prism_return(%u, %u bytes): %s (%s)",
				  h->path, r, len, prism_strerror(rc), prism_last_error());
	return 0;
}

static int nested(prism_task_ctx *ctx, const struct hdr *h, uint64_t H);

static int dagfn(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	struct hdr h;
	if (nargs < 1 || args[0].len != sizeof(h) || !args[0].data)
		return prism_fail(ctx, "BADHDR nargs %zu, header length %zu", nargs,
				  nargs ? args[0].len : 0);
	memcpy(&h, args[0].data, sizeof(h));
	if (h.magic != HDR_MAGIC || h.nret < 1 || h.nret > MAX_RET || h.nin > MAX_IN ||
	    h.fanout > MAX_FAN)
		return prism_fail(ctx, "BADHDR corrupt header (magic %016" PRIx64 ")", h.magic);
	h.path[sizeof(h.path) - 1] = 0;
	if (nargs - 1 != h.nin)
		return prism_fail(ctx, "ARGCOUNT [%s] got %zu inputs, expected %u", h.path,
				  nargs - 1, h.nin);
	uint64_t H = hstart(h.seed);
	for (size_t i = 0; i < h.nin; i++) {
		const prism_arg *a = &args[i + 1];
		if (a->len && !a->data)
			return prism_fail(ctx, "ARGCHECK [%s] input %zu: NULL data, len %zu",
					  h.path, i, a->len);
		uint64_t d = digest(a->data, a->len);
		if (h.in_known[i] && (d != h.in_digest[i] || a->len != h.in_len[i])) {
			char hx[40];
			hexdump(hx, sizeof(hx), a->data, a->len < 16 ? a->len : 16);
			return prism_fail(
				ctx,
				"ARGCHECK [%s] input %zu corrupt: len %zu digest %016" PRIx64
				", expected len %" PRIu64 " digest %016" PRIx64
				"; first bytes %s",
				h.path, i, a->len, d, h.in_len[i], h.in_digest[i], hx);
		}
		H = hmix(H, d);
	}
	if (h.depth > 0)
		return nested(ctx, &h, H);
	if (h.fail) {
		if (h.fail_after_set) {
			char b[32];
			expand(rmix(H, R_FAILSET), b, sizeof(b));
			prism_return(ctx, 0, b, sizeof(b));
		}
		return prism_fail(ctx, FAIL_MARK "%s] (seed %016" PRIx64 ")", h.path, h.seed);
	}
	for (unsigned r = 0; r < h.nret; r++) {
		int rc = set_result(ctx, &h, r, rmix(H, r), h.out_len[r]);
		if (rc)
			return rc;
	}
	return 0;
}
PRISM_REMOTE(dagfn);

static void release_all(prism_ref refs[MAX_FAN][MAX_RET], const unsigned *nref, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < nref[i]; j++)
			prism_ref_release(refs[i][j]);
}

/* A nested wait that timed out: print the node's state (`prism status`, from the bin/
 * directory beside this binary's) to stderr, so a hang seen once can be explained. */
static void dump_node_status(const char *path)
{
	char exe[4096], cmd[8400];
	const char *sock = getenv("PRISM_NODE_SOCKET");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (!sock || n <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(cmd, sizeof(cmd),
		 "echo '--- node status at the nested timeout of [%s]:' >&2; "
		 "p='%s/../bin/prism'; [ -x \"$p\" ] || p=prism; "
		 "\"$p\" status --socket '%s' >&2",
		 path, exe, sock);
	if (system(cmd) != 0)
		fprintf(stderr, "prop_dag: could not run prism status\n");
}

/* A nested task: submits its children, waits for them, combines their results. */
static int nested(prism_task_ctx *ctx, const struct hdr *h, uint64_t H)
{
	struct child_plan cp[MAX_FAN];
	unsigned n = plan_children(h, H, cp);
	prism_ref cref[MAX_FAN][MAX_RET];
	unsigned nref[MAX_FAN] = {0};
	prism_ref put = {{{0}}};
	uint64_t putdig = 0;
	char msg[600];
	int64_t tmo = (int64_t)h->timeout_s * NS_PER_S;

	if (h->put_len) {
		void *b = malloc(h->put_len);
		if (!b)
			return prism_fail(ctx, "[%s] out of memory", h->path);
		expand(rmix(H, R_PUT), b, h->put_len);
		putdig = digest(b, h->put_len);
		int rc = prism_put(b, h->put_len, &put);
		memset(b, 0xa5, h->put_len);
		free(b);
		if (rc < 0)
			return prism_fail(ctx, "NESTED-PUT [%s] prism_put(%u bytes): %s (%s)",
					  h->path, h->put_len, prism_strerror(rc),
					  prism_last_error());
	}
	for (unsigned i = 0; i < n; i++) {
		struct hdr ch = cp[i].h;
		prism_value a[1 + MAX_IN];
		unsigned k = 0, in = 0;
		uint64_t small = rmix(H, R_SMALL + i);
		void *blob = NULL;
		a[k++] = prism_bytes(NULL, 0); /* the header, below */
		a[k++] = prism_bytes(&small, sizeof(small));
		ch.in_known[in] = 1, ch.in_len[in] = 8, ch.in_digest[in++] = digest(&small, 8);
		if (cp[i].blob) {
			blob = malloc(cp[i].blob_len ? cp[i].blob_len : 1);
			if (!blob) {
				release_all(cref, nref, i);
				if (h->put_len)
					prism_ref_release(put);
				return prism_fail(ctx, "[%s] out of memory", h->path);
			}
			expand(rmix(H, R_BLOB + i), blob, cp[i].blob_len);
			a[k++] = prism_bytes(blob, cp[i].blob_len);
			ch.in_known[in] = 1, ch.in_len[in] = cp[i].blob_len;
			ch.in_digest[in++] = digest(blob, cp[i].blob_len);
		}
		if (cp[i].use_put) {
			a[k++] = prism_refval(put);
			ch.in_known[in] = 1, ch.in_len[in] = h->put_len,
			ch.in_digest[in++] = putdig;
		}
		if (cp[i].sib)
			a[k++] = prism_refval(cref[i - 1][0]), ch.in_known[in++] = 0;
		a[0] = prism_bytes(&ch, sizeof(ch));
		prism_call_opts o = {.num_returns = ch.nret};
		int rc = prism_submit("dagfn", a, k, &o, cref[i]);
		if (blob) {
			memset(blob, 0xa5, cp[i].blob_len);
			free(blob);
		}
		if (rc < 0) {
			snprintf(msg, sizeof(msg),
				 "NESTED-SUBMIT [%s] child %u (%u args): %s (%s)", h->path, i,
				 k, prism_strerror(rc), prism_last_error());
			release_all(cref, nref, i);
			if (h->put_len)
				prism_ref_release(put);
			return prism_fail(ctx, "%s", msg);
		}
		nref[i] = ch.nret;
	}
	if (h->put_len)
		prism_ref_release(put); /* the children hold what they need */

	/* Every child result, flat. */
	prism_ref flat[MAX_FAN * MAX_RET];
	unsigned fi[MAX_FAN * MAX_RET], fj[MAX_FAN * MAX_RET], tot = 0;
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < nref[i]; j++)
			flat[tot] = cref[i][j], fi[tot] = i, fj[tot++] = j;
	bool ready[MAX_FAN * MAX_RET];
	if (h->wait_mode == 1 || h->wait_mode == 2) {
		unsigned from = h->wait_mode == 1 ? tot : 1;
		for (unsigned want = from; want <= tot; want++) {
			int rc = prism_wait(flat, tot, want, tmo, ready);
			if (rc < (int)want) {
				snprintf(msg, sizeof(msg),
					 "NESTED-WAIT [%s] prism_wait(%u refs, %u) returned %d "
					 "(%s) after up to %u s",
					 h->path, tot, want, rc,
					 rc < 0 ? prism_strerror(rc) : "timeout", h->timeout_s);
				dump_node_status(h->path);
				release_all(cref, nref, n);
				return prism_fail(ctx, "%s", msg);
			}
		}
	}
	uint64_t cd[MAX_FAN][MAX_RET];
	for (unsigned q = 0; q < tot; q++) {
		unsigned x = h->wait_mode == 2 ? tot - 1 - q : q;
		const void *d = NULL;
		size_t len = 0;
		int rc = prism_get(flat[x], tmo, &d, &len);
		if (rc == 0) {
			if (len && !d) {
				snprintf(msg, sizeof(msg),
					 "NESTED-GET [%s] child %u result %u: NULL data",
					 h->path, fi[x], fj[x]);
				release_all(cref, nref, n);
				return prism_fail(ctx, "%s", msg);
			}
			cd[fi[x]][fj[x]] = digest(d, len);
			continue;
		}
		if (rc == PRISM_E_TASK_FAILED) {
			size_t tl = text_len(d, len);
			if (!printable(d, tl)) {
				char hx[80];
				hexdump(hx, sizeof(hx), d, len < 32 ? len : 32);
				snprintf(msg, sizeof(msg),
					 "NESTED-BADTEXT [%s] child %u result %u: error text "
					 "of %zu "
					 "bytes not printable: %s",
					 h->path, fi[x], fj[x], len, hx);
			} else {
				snprintf(msg, sizeof(msg), "child %u of [%s] failed: %.*s",
					 fi[x], h->path, (int)(tl > 400 ? 400 : tl),
					 (const char *)d);
			}
		} else {
			snprintf(msg, sizeof(msg),
				 "NESTED-%s [%s] child %u result %u: prism_get: %d %s (%s)",
				 rc == PRISM_E_TIMEOUT ? "TIMEOUT" : "GET", h->path, fi[x],
				 fj[x], rc, prism_errname(rc), prism_last_error());
			if (rc == PRISM_E_TIMEOUT)
				dump_node_status(h->path);
		}
		release_all(cref, nref, n);
		return prism_fail(ctx, "%s", msg);
	}
	uint64_t H2 = H;
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < nref[i]; j++)
			H2 = hmix(H2, cd[i][j]);
	int ret = 0;
	for (unsigned r = 0; r < h->nret && !ret; r++) {
		if (h->return_ref && r == h->nret - 1) {
			int rc = prism_return_ref(ctx, r, cref[0][0]);
			if (rc < 0)
				ret = prism_fail(ctx, "RETURN-REF-FAILED [%s]: %s (%s)",
						 h->path, prism_strerror(rc),
						 prism_last_error());
		} else {
			ret = set_result(ctx, h, r, rmix(H2, r), h->out_len[r]);
		}
	}
	release_all(cref, nref, n);
	return ret;
}

/* argsum(args...): {nargs, total length, hash of the digests}. */
static int argsum(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	uint64_t out[3] = {nargs, 0, hstart(nargs)};
	for (size_t i = 0; i < nargs; i++) {
		out[1] += args[i].len;
		out[2] = hmix(out[2], digest(args[i].data, args[i].len));
	}
	return prism_return(ctx, 0, out, sizeof(out));
}
PRISM_REMOTE(argsum);

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

/* stamp(...): the CLOCK_MONOTONIC time at which it started. */
static int stamp(prism_task_ctx *ctx, const prism_arg *args, size_t nargs)
{
	(void)args;
	(void)nargs;
	int64_t t = mono_ns();
	return prism_return(ctx, 0, &t, sizeof(t));
}
PRISM_REMOTE(stamp);

/* An actor whose constructor fails, with the nonce it was given in the message. */
static int badctor_new(prism_task_ctx *ctx, const prism_arg *a, size_t n, void **state)
{
	uint64_t nonce = 0, sleep_ms = 0;
	(void)state;
	if (n >= 1 && a[0].len == 8)
		memcpy(&nonce, a[0].data, 8);
	if (n >= 2 && a[1].len == 8)
		memcpy(&sleep_ms, a[1].data, 8);
	if (sleep_ms) {
		struct timespec ts = {(time_t)(sleep_ms / 1000),
				      (long)(sleep_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	return prism_fail(ctx, "CTORFAIL-%016" PRIx64 " constructor refused on purpose", nonce);
}
static int ping(prism_task_ctx *ctx, void *state, const prism_arg *a, size_t n)
{
	(void)state;
	(void)a;
	(void)n;
	return prism_return(ctx, 0, "pong", 4);
}
PRISM_ACTOR(BadCtor, badctor_new, NULL);
PRISM_METHOD(BadCtor, ping);

/* An actor holding one 8-byte value. */
static int holder_new(prism_task_ctx *ctx, const prism_arg *a, size_t n, void **state)
{
	uint64_t *v = calloc(1, sizeof(*v));
	if (!v)
		return prism_fail(ctx, "out of memory");
	if (n >= 1 && a[0].len == 8)
		memcpy(v, a[0].data, 8);
	*state = v;
	return 0;
}
static int value(prism_task_ctx *ctx, void *state, const prism_arg *a, size_t n)
{
	(void)a;
	(void)n;
	return prism_return(ctx, 0, state, sizeof(uint64_t));
}
PRISM_ACTOR(Holder, holder_new, free);
PRISM_METHOD(Holder, value);

/* ---- reporting ------------------------------------------------------------------------- */

static struct {
	int tasks; /* 0: random per seed */
	bool kill;
	bool verbose;
	bool no_fork;
	int timeout_s;   /* watchdog per seed or case */
	int budget_s;    /* how long results may take in all */
	int max_reports; /* problems printed per seed */
	/* to narrow a failure down */
	bool no_nested, no_early_release, small, no_fail;
	int nested; /* tasks of a graph's nested trees that wait (0: 16 or 30, per seed) */
} opt = {0, false, false, false, 300, 120, 12, false, false, false, false, 0};

/* Shared with the parent: where a child was when it hung or crashed. */
struct shared {
	volatile int verdict; /* -1 none, 0 pass, 1 fail */
	char phase[512];
};
static struct shared *g_sh;
static char g_label[64];
static int g_problems;

static void phase(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void phase(const char *fmt, ...)
{
	if (!g_sh)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g_sh->phase, sizeof(g_sh->phase), fmt, ap);
	va_end(ap);
}

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void problem(const char *fmt, ...)
{
	g_problems++;
	if (g_problems > opt.max_reports) {
		if (g_problems == opt.max_reports + 1)
			printf("  %s: (further problems counted, not printed)\n", g_label);
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	printf("  %s: FAIL: ", g_label);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

/* Cascades: the same cause shows in many results.  A problem of `kind` whose key was seen
 * in this seed is counted, not printed (after `allow` printed ones). */
static char *g_seen[64];
static int g_nseen, g_suppressed;

static bool first_of(const char *key, int allow)
{
	int n = 0;
	for (int i = 0; i < g_nseen; i++)
		n += !strcmp(g_seen[i], key);
	if (n < allow && g_nseen < 64)
		g_seen[g_nseen++] = strdup(key);
	if (n >= allow || (n < allow && g_nseen >= 64 && n > 0)) {
		g_problems++;
		g_suppressed++;
		return false;
	}
	return true;
}

static void seen_reset(void)
{
	for (int i = 0; i < g_nseen; i++)
		free(g_seen[i]);
	g_nseen = g_suppressed = 0;
}

/* The innermost cause of an error text: after the last "argument failed: ". */
static const char *inner_cause(const char *s, size_t n, char *out, size_t cap)
{
	char *c = strndup(s, n);
	const char *p = c, *q;
	while (c && (q = strstr(p, "argument failed: ")))
		p = q + strlen("argument failed: ");
	snprintf(out, cap, "%.100s", c ? p : "");
	/* numbers vary (sizes, pids): drop digits */
	size_t o = 0;
	for (size_t i = 0; out[i]; i++)
		if (!isdigit((unsigned char)out[i]))
			out[o++] = out[i];
	out[o] = 0;
	free(c);
	return out;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	if (!opt.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	printf("  %s: ", g_label);
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
}

/* The error text, quoted and escaped, at most ~200 characters. */
static const char *quote(const void *d, size_t n)
{
	static char buf[900];
	const unsigned char *s = d;
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; s && i < n && o < 800; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\')
			buf[o++] = (char)s[i];
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", s[i]);
	}
	if (n && o >= 800)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "...");
	buf[o++] = '"';
	buf[o] = 0;
	return buf;
}

/* prism_last_error(), checked: details of a failed call must be printable text. */
static const char *lasterr(void)
{
	static char buf[600];
	const char *e = prism_last_error();
	if (!e)
		return "(NULL)";
	size_t n = strnlen(e, 400);
	if (n && !printable(e, n)) {
		snprintf(buf, sizeof(buf), "%s", quote(e, n));
		problem("prism_last_error() is not printable text: %s", buf);
		return buf;
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)n, e);
	return buf;
}

/* In kill mode: an error that a worker's death explains. */
static bool death_text(const char *s, size_t n)
{
	static const char *const words[] = {"died", "no retries left", "killed",
					    "worker exited", "worker crashed"};
	char *c = strndup(s, n);
	if (!c)
		return false;
	bool yes = false;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcasestr(c, words[i]))
			yes = true;
	free(c);
	return yes;
}

/* ---- the plan and its model ------------------------------------------------------------ */

enum in_type { IN_RESULT, IN_BYTES, IN_PUT, IN_DUP };

struct input {
	uint8_t type;
	int task, idx; /* IN_RESULT */
	int put;       /* IN_PUT */
	int dup;       /* IN_DUP: the earlier input of this call */
	uint64_t vseed;
	uint32_t len; /* IN_BYTES */
};

struct task {
	struct hdr h;
	int nin;
	struct input in[MAX_IN];
	int max_retries;
	double num_cpus;
	int nret;
	/* model */
	bool err;        /* its results are errors */
	bool own_fail;   /* it (or a child) fails, not an input */
	uint64_t *roots; /* err: the tasks failing on purpose that cause it (bitset) */
	uint64_t vseed[MAX_RET], len[MAX_RET], dig[MAX_RET];
	int nsub; /* nested: tasks in its tree below it */
	/* run */
	int state; /* 0 not yet, 1 submitted, -1 not submitted */
	prism_ref ref[MAX_RET];
	bool live[MAX_RET], check[MAX_RET], checked[MAX_RET];
	bool hold[MAX_RET]; /* a snapshot of its data is to be verified again */
	int last_use[MAX_RET];
};

struct put {
	uint64_t vseed;
	uint32_t len;
	uint64_t dig;
	int first_use, last_use;
	bool check, checked;
	int state; /* 0 not made, 1 made, -1 failed */
	bool live;
	prism_ref ref;
};

struct plan {
	uint64_t seed;
	int n, nputs, cap_puts;
	struct task *t;
	struct put *p;
	int nwords;
	bool use_opts;
	uint32_t num_workers;
	int fails, nested, nested_tasks, bigargs, deep;
	uint64_t bytes_big;
};

struct mres {
	bool ok;
	unsigned nret;
	uint64_t vseed[MAX_RET], len[MAX_RET], dig[MAX_RET];
};

/* The model of one (possibly nested) task, given the digests of its inputs. */
static void model_node(const struct hdr *h, const uint64_t *dig, unsigned nin, struct mres *m)
{
	uint64_t H = hstart(h->seed);
	for (unsigned i = 0; i < nin; i++)
		H = hmix(H, dig[i]);
	memset(m, 0, sizeof(*m));
	m->nret = h->nret;
	if (h->depth == 0) {
		if (h->fail)
			return;
		for (unsigned r = 0; r < h->nret; r++) {
			m->vseed[r] = rmix(H, r);
			m->len[r] = h->out_len[r];
			m->dig[r] = val_digest(m->vseed[r], m->len[r]);
		}
		m->ok = true;
		return;
	}
	struct child_plan cp[MAX_FAN];
	unsigned n = plan_children(h, H, cp);
	uint64_t putdig = h->put_len ? val_digest(rmix(H, R_PUT), h->put_len) : 0;
	struct mres cm[MAX_FAN];
	for (unsigned i = 0; i < n; i++) {
		uint64_t d[MAX_IN];
		unsigned k = 0;
		uint64_t small = rmix(H, R_SMALL + i);
		d[k++] = digest(&small, 8);
		if (cp[i].blob)
			d[k++] = val_digest(rmix(H, R_BLOB + i), cp[i].blob_len);
		if (cp[i].use_put)
			d[k++] = putdig;
		if (cp[i].sib) {
			if (!cm[i - 1].ok)
				return; /* the child gets an error argument: this task fails */
			d[k++] = cm[i - 1].dig[0];
		}
		model_node(&cp[i].h, d, k, &cm[i]);
		if (!cm[i].ok)
			return;
	}
	uint64_t H2 = H;
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < cm[i].nret; j++)
			H2 = hmix(H2, cm[i].dig[j]);
	for (unsigned r = 0; r < h->nret; r++) {
		if (h->return_ref && r == h->nret - 1) {
			m->vseed[r] = cm[0].vseed[0];
			m->len[r] = cm[0].len[0];
			m->dig[r] = cm[0].dig[0];
		} else {
			m->vseed[r] = rmix(H2, r);
			m->len[r] = h->out_len[r];
			m->dig[r] = val_digest(m->vseed[r], m->len[r]);
		}
	}
	m->ok = true;
}

static int tree_size(int depth, int fan)
{
	int s = 0, lvl = 1;
	for (int d = 0; d <= depth; d++, lvl *= fan)
		s += lvl;
	return s;
}

#define BIG_BUDGET (40u * MIB)

static uint32_t result_len(rng *r, struct plan *P)
{
	if (opt.small)
		return (uint32_t)rrange(r, 0, 8 * KIB);
	unsigned u = (unsigned)rbelow(r, 1000);
	if (u < 80)
		return 0;
	if (u < 700)
		return (uint32_t)rrange(r, 1, 4096);
	if (u < 960) {
		static const uint32_t edge[] = {65535, 65536, 65537, 64 * KIB - 8,
						64 * KIB + 8};
		if (rpct(r, 20))
			return edge[rbelow(r, 5)];
		return (uint32_t)rrange(r, 60 * KIB, 100 * KIB);
	}
	uint32_t len = rpct(r, 70) ? (uint32_t)rrange(r, 256 * KIB, 1 * MIB)
				   : (uint32_t)rrange(r, 1 * MIB, 4 * MIB);
	if (P->bytes_big + len > BIG_BUDGET)
		return (uint32_t)rrange(r, 1, 4096);
	P->bytes_big += len;
	return len;
}

static uint32_t bytes_len(rng *r)
{
	if (opt.small)
		return (uint32_t)rrange(r, 0, 8 * KIB);
	unsigned u = (unsigned)rbelow(r, 100);
	if (u < 10)
		return 0;
	if (u < 60)
		return (uint32_t)rrange(r, 1, 1024);
	if (u < 80) {
		if (rpct(r, 15))
			return 65536;
		return (uint32_t)rrange(r, 1 * KIB, 64 * KIB);
	}
	return (uint32_t)rrange(r, 64 * KIB + 1, 200 * KIB);
}

static uint32_t put_len(rng *r, struct plan *P)
{
	if (opt.small)
		return (uint32_t)rrange(r, 0, 8 * KIB);
	unsigned u = (unsigned)rbelow(r, 100);
	if (u < 12)
		return 0;
	if (u < 62)
		return (uint32_t)rrange(r, 1, 8 * KIB);
	if (u < 90)
		return (uint32_t)rrange(r, 8 * KIB, 200 * KIB);
	uint32_t len = (uint32_t)rrange(r, 256 * KIB, 3 * MIB);
	if (P->bytes_big + len > BIG_BUDGET)
		return (uint32_t)rrange(r, 1, 8 * KIB);
	P->bytes_big += len;
	return len;
}

static int new_put(struct plan *P, rng *r)
{
	if (P->nputs == P->cap_puts) {
		P->cap_puts = P->cap_puts ? P->cap_puts * 2 : 64;
		P->p = realloc(P->p, (size_t)P->cap_puts * sizeof(*P->p));
		if (!P->p) {
			perror("realloc");
			exit(2);
		}
	}
	struct put *p = &P->p[P->nputs];
	memset(p, 0, sizeof(*p));
	p->vseed = rnext(r);
	p->len = put_len(r, P);
	p->dig = val_digest(p->vseed, p->len);
	p->first_use = p->last_use = -1;
	p->check = rpct(r, 25);
	return P->nputs++;
}

/* The value of input i of task t: error (with roots) or digest. */
static bool input_value(struct plan *P, struct task *T, int i, uint64_t *dig, uint64_t *len,
			const uint64_t **roots)
{
	const struct input *in = &T->in[i];
	if (in->type == IN_DUP)
		in = &T->in[in->dup];
	*roots = NULL;
	switch (in->type) {
	case IN_RESULT: {
		struct task *U = &P->t[in->task];
		if (U->err) {
			*roots = U->roots;
			return false;
		}
		*dig = U->dig[in->idx];
		*len = U->len[in->idx];
		return true;
	}
	case IN_PUT:
		*dig = P->p[in->put].dig;
		*len = P->p[in->put].len;
		return true;
	default:
		*dig = val_digest(in->vseed, in->len);
		*len = in->len;
		return true;
	}
}

static void plan_build(struct plan *P, uint64_t seed)
{
	memset(P, 0, sizeof(*P));
	rng r = {fmix(seed * 0x9e3779b97f4a7c15ULL + 0x1234567)};
	P->seed = seed;
	P->n = opt.tasks > 0 ? opt.tasks : (int)rrange(&r, 200, 500);
	P->t = calloc((size_t)P->n, sizeof(*P->t));
	P->nwords = (P->n + 63) / 64;
	if (!P->t) {
		perror("calloc");
		exit(2);
	}
	P->use_opts = rpct(&r, 50);
	P->num_workers = (uint32_t)rrange(&r, 1, 4);
	P->deep = rpct(&r, 35);
	int internal_budget = opt.nested > 0 ? opt.nested : P->deep ? 30 : 16, internal = 0;
	int force_fail = (int)rbelow(&r, (uint64_t)P->n);
	int force_nested = (int)rbelow(&r, (uint64_t)P->n);
	int force_big = (int)rbelow(&r, (uint64_t)P->n);
	if (force_nested == force_fail)
		force_nested = (force_nested + 1) % P->n;
	if (force_big == force_fail || force_big == force_nested)
		force_big = (force_big + 2) % P->n;

	for (int t = 0; t < P->n; t++) {
		struct task *T = &P->t[t];
		struct hdr *h = &T->h;
		h->magic = HDR_MAGIC;
		h->seed = rnext(&r);
		T->nret = (int)(rpct(&r, 55) ? 1 : rrange(&r, 2, 3));
		h->nret = (uint32_t)T->nret;
		for (int j = 0; j < MAX_RET; j++)
			h->out_len[j] = j < T->nret ? result_len(&r, P) : 0;
		snprintf(h->path, sizeof(h->path), "T%d", t);
		h->timeout_s = opt.kill ? 100 : 60;
		h->skip_empty = rpct(&r, 50);
		h->fail_after_set = rpct(&r, 50);
		/* nested? */
		bool want_nested = !opt.no_nested &&
				   (t == force_nested || rpct(&r, opt.nested > 30 ? 20 : 5));
		if (want_nested) {
			int depth, fan;
			unsigned u = (unsigned)rbelow(&r, 100);
			if (P->deep ? u < 20 : u < 50)
				depth = 1, fan = (int)rrange(&r, 2, 3);
			else if (P->deep ? u < 55 : u < 85)
				depth = 2, fan = (int)rrange(&r, 2, 3);
			else if (P->deep ? u < 85 : u < 97)
				depth = 3, fan = rpct(&r, 80) ? 2 : 3;
			else
				depth = 4, fan = 2;
			int in_tree = tree_size(depth - 1, fan); /* internal nodes */
			if (internal + in_tree > internal_budget && t != force_nested)
				want_nested = false;
			if (t == force_nested && internal + in_tree > internal_budget)
				depth = 1, fan = 2, in_tree = 1;
			if (want_nested) {
				internal += in_tree;
				h->depth = (uint8_t)depth;
				h->fanout = (uint8_t)fan;
				h->wait_mode = (uint8_t)rbelow(&r, 3);
				h->return_ref = rpct(&r, 40);
				h->put_len =
					rpct(&r, 40) ? (uint32_t)rrange(&r, 0, 150 * KIB) : 0;
				h->child_fail_pct = rpct(&r, 20) && !opt.no_fail ? 25 : 0;
				T->nsub = tree_size(depth, fan) - 1;
				P->nested++;
				P->nested_tasks += T->nsub;
			}
		}
		if (!want_nested)
			h->fail = !opt.no_fail && (t == force_fail || rpct(&r, 3));
		T->max_retries = opt.kill ? (rpct(&r, 10)   ? -1
					     : rpct(&r, 30) ? 5
							    : 0)
					  : (rpct(&r, 10)   ? -1
					     : rpct(&r, 10) ? 5
							    : 0);
		T->num_cpus = rpct(&r, 15) ? 0.5 : 0;

		/* inputs */
		static const unsigned nin_w[] = {8, 25, 25, 17, 10, 8, 7};
		unsigned u = (unsigned)rbelow(&r, 100), acc = 0;
		int nin = 0;
		for (nin = 0; nin < MAX_IN; nin++) {
			acc += nin_w[nin];
			if (u < acc)
				break;
		}
		bool big = !opt.small && (t == force_big || rpct(&r, 4));
		int nbig = 0;
		if (big) {
			nbig = (int)rrange(&r, 2, 4);
			if (nin < nbig)
				nin = nbig;
			P->bigargs++;
		}
		T->nin = nin;
		uint32_t big_total = 0;
		for (int i = 0; i < nin; i++) {
			struct input *in = &T->in[i];
			memset(in, 0, sizeof(*in));
			if (i < nbig) {
				in->type = IN_BYTES;
				in->vseed = rnext(&r);
				in->len = (uint32_t)rrange(&r, 45 * KIB, 200 * KIB);
				big_total += in->len;
				if (i == nbig - 1 && big_total <= 128 * KIB)
					in->len += 128 * KIB - big_total + 1 +
						   (uint32_t)rbelow(&r, 4096);
				continue;
			}
			unsigned k = (unsigned)rbelow(&r, 100);
			if (k < 50 && t > 0) {
				in->type = IN_RESULT;
				/* mostly recent tasks; errors passed on less often, so that
				 * cascades stay a minority */
				for (int tries = 0; tries < 3; tries++) {
					in->task =
						rpct(&r, 60)
							? t - 1 -
								  (int)rbelow(
									  &r,
									  (uint64_t)(t < 16 ? t
											    : 16))
							: (int)rbelow(&r, (uint64_t)t);
					if (!P->t[in->task].err || rpct(&r, 30))
						break;
				}
				in->idx = (int)rbelow(&r, (uint64_t)P->t[in->task].nret);
			} else if (k < 70) {
				in->type = IN_BYTES;
				in->vseed = rnext(&r);
				in->len = bytes_len(&r);
			} else if (k < 88) {
				in->type = IN_PUT;
				if (P->nputs > 0 && rpct(&r, 30))
					in->put = (int)rbelow(&r, (uint64_t)P->nputs);
				else
					in->put = new_put(P, &r);
				struct put *p = &P->p[in->put];
				if (p->first_use < 0)
					p->first_use = t;
				p->last_use = t;
			} else {
				int cand[MAX_IN], nc = 0;
				for (int q = 0; q < i; q++)
					if (T->in[q].type == IN_RESULT ||
					    T->in[q].type == IN_PUT)
						cand[nc++] = q;
				if (nc) {
					in->type = IN_DUP;
					in->dup = cand[rbelow(&r, (uint64_t)nc)];
					if (T->in[in->dup].type == IN_PUT)
						P->p[T->in[in->dup].put].last_use = t;
				} else {
					in->type = IN_BYTES;
					in->vseed = rnext(&r);
					in->len = (uint32_t)rbelow(&r, 64);
				}
			}
		}
		h->nin = (uint32_t)nin;

		/* the model */
		bool err = false;
		uint64_t dig[MAX_IN];
		for (int i = 0; i < nin; i++) {
			uint64_t d = 0, len = 0;
			const uint64_t *roots;
			if (!input_value(P, T, i, &d, &len, &roots)) {
				if (!T->roots)
					T->roots = calloc((size_t)P->nwords, 8);
				for (int w = 0; w < P->nwords; w++)
					T->roots[w] |= roots[w];
				err = true;
				h->in_known[i] = 0;
				continue;
			}
			dig[i] = d;
			h->in_known[i] = 1;
			h->in_len[i] = len;
			h->in_digest[i] = d;
		}
		if (err) {
			T->err = true;
		} else {
			struct mres m;
			model_node(h, dig, (unsigned)nin, &m);
			if (!m.ok) {
				T->err = T->own_fail = true;
				T->roots = calloc((size_t)P->nwords, 8);
				T->roots[t / 64] |= 1ULL << (t % 64);
				P->fails++;
			} else {
				for (int j = 0; j < T->nret; j++) {
					T->vseed[j] = m.vseed[j];
					T->len[j] = m.len[j];
					T->dig[j] = m.dig[j];
				}
			}
		}
		for (int j = 0; j < MAX_RET; j++) {
			T->last_use[j] = -1;
			T->check[j] = j < T->nret && rpct(&r, 75);
		}
		for (int i = 0; i < nin; i++)
			if (T->in[i].type == IN_RESULT)
				P->t[T->in[i].task].last_use[T->in[i].idx] = t;
	}
}

static void plan_free(struct plan *P)
{
	for (int t = 0; t < P->n; t++)
		free(P->t[t].roots);
	free(P->t);
	free(P->p);
}

static const char *describe(struct plan *P, int t)
{
	static char buf[600];
	struct task *T = &P->t[t];
	size_t o = 0;
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "task #%d (%s", t,
			      T->h.depth ? "nested" : "leaf");
	if (T->h.depth)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o,
				      " depth %u fanout %u wait_mode %u%s%s, %d subtasks",
				      T->h.depth, T->h.fanout, T->h.wait_mode,
				      T->h.return_ref ? " return_ref" : "",
				      T->h.put_len ? " put" : "", T->nsub);
	if (T->h.fail)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, ", fails on purpose");
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, ", %d results [", T->nret);
	for (int j = 0; j < T->nret; j++)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%u", j ? " " : "",
				      T->h.out_len[j]);
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "], inputs [");
	for (int i = 0; i < T->nin && o < sizeof(buf) - 60; i++) {
		const struct input *in = &T->in[i];
		const char *sep = i ? ", " : "";
		switch (in->type) {
		case IN_RESULT:
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s#%d.%d", sep,
					      in->task, in->idx);
			break;
		case IN_BYTES:
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%u bytes", sep,
					      in->len);
			break;
		case IN_PUT:
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%sput%d (%u bytes)",
					      sep, in->put, P->p[in->put].len);
			break;
		default:
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%ssame as input %d",
					      sep, in->dup);
		}
	}
	snprintf(buf + o, sizeof(buf) - o, "])");
	return buf;
}

/* ---- the worker killer ------------------------------------------------------------------ */

static struct {
	pthread_t th;
	atomic_int stop;
	atomic_int kills;
	uint64_t seed;
	bool running;
} killer;

/* Children of pid (from /proc). */
static int children_of(pid_t pid, pid_t *out, int cap)
{
	DIR *d = opendir("/proc");
	int n = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < cap) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/%.255s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
		char *rp = strrchr(buf, ')');
		if (!rp)
			continue;
		char st;
		int ppid;
		if (sscanf(rp + 1, " %c %d", &st, &ppid) != 2 || st == 'Z')
			continue;
		if (ppid == pid)
			out[n++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return n;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {ns / NS_PER_S, ns % NS_PER_S};
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

#define MAX_KILLS 40
#define KILL_SECONDS 60

static void *killer_main(void *arg)
{
	(void)arg;
	rng r = {killer.seed};
	int64_t end = mono_ns() + KILL_SECONDS * NS_PER_S;
	while (!killer.stop && killer.kills < MAX_KILLS && mono_ns() < end) {
		int64_t nap = (int64_t)rrange(&r, 50, 300) * 1000000;
		for (int64_t slept = 0; slept < nap && !killer.stop; slept += 10000000)
			sleep_ns(10000000);
		if (killer.stop)
			break;
		pid_t nodes[8], workers[256];
		int nn = children_of(getpid(), nodes, 8), nw = 0;
		for (int i = 0; i < nn; i++)
			nw += children_of(nodes[i], workers + nw, 256 - nw);
		if (nw == 0)
			continue;
		pid_t victim = workers[rbelow(&r, (uint64_t)nw)];
		if (kill(victim, SIGKILL) == 0)
			killer.kills++;
	}
	return NULL;
}

/* ---- running a graph -------------------------------------------------------------------- */

static int64_t g_deadline; /* results should all have come by then */

static int64_t get_timeout(void)
{
	int64_t left = g_deadline - mono_ns();
	return left > 100000000 ? left : 100000000;
}

static void dag_init_opts(struct plan *P, prism_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->log_level = -1;
	o->num_workers = P->num_workers;
}

static int g_death_errors; /* kill mode: errors explained by a worker's death */
static int g_ok_values, g_ok_nested, g_ok_errors; /* results that matched the model */

/* Data that prism_get gave must stay valid and unchanged until the ref is released (an
 * error text too): some results are read again, at the same address and with a second
 * prism_get, after many later prism calls. */
struct snap {
	int t, j, rc, due;
	const void *ptr;
	size_t len;
	void *copy;
};
static struct snap g_snaps[8];
static int g_nsnaps, g_checks;
static rng g_rng;

static void snapshot(struct plan *P, int t, int j, int rc, const void *d, size_t len)
{
	if (g_nsnaps == 8 || len > 1 * MIB || !rpct(&g_rng, 15))
		return;
	struct snap *s = &g_snaps[g_nsnaps];
	s->copy = malloc(len ? len : 1);
	if (!s->copy)
		return;
	memcpy(s->copy, d, len);
	s->t = t, s->j = j, s->rc = rc, s->ptr = d, s->len = len;
	s->due = g_checks + (int)rrange(&g_rng, 3, 30);
	P->t[t].hold[j] = true;
	g_nsnaps++;
}

static void maybe_release(struct plan *P, int t, int j, int now);

static void verify_snaps(struct plan *P, bool all, int now)
{
	for (int i = 0; i < g_nsnaps;) {
		struct snap *s = &g_snaps[i];
		if (!all && s->due > g_checks) {
			i++;
			continue;
		}
		struct task *T = &P->t[s->t];
		phase("re-reading the data prism_get gave earlier for task #%d result %d (%zu "
		      "bytes at %p)",
		      s->t, s->j, s->len, s->ptr);
		const uint8_t *old = s->ptr, *c = s->copy;
		if (s->len && memcmp(old, c, s->len)) {
			size_t k = 0;
			while (old[k] == c[k])
				k++;
			problem("%s result %d: the %s prism_get gave changed while the ref is "
				"still "
				"held (after later prism calls): first change at byte %zu of "
				"%zu: "
				"now %s",
				describe(P, s->t), s->j, s->rc ? "error text" : "data", k,
				s->len, quote(old, s->len < 200 ? s->len : 200));
		} else {
			const void *d = NULL;
			size_t len = 0;
			phase("prism_get again (task #%d result %d)", s->t, s->j);
			int rc = prism_get(T->ref[s->j], 5 * NS_PER_S, &d, &len);
			if (rc != s->rc || len != s->len || (len && (!d || memcmp(d, c, len))))
				problem("%s result %d: a second prism_get gave rc %d and %zu "
					"bytes %s, "
					"the first rc %d and %zu bytes",
					describe(P, s->t), s->j, rc, len,
					rc == s->rc && len == s->len ? "(different bytes)" : "",
					s->rc, s->len);
		}
		int t = s->t, j = s->j;
		T->hold[j] = false;
		free(s->copy);
		*s = g_snaps[--g_nsnaps];
		maybe_release(P, t, j, now);
	}
}

/* For a missing result: which inputs of task t are ready now (of those the driver still
 * holds). */
static const char *inputs_state(struct plan *P, int t)
{
	static char buf[400];
	struct task *T = &P->t[t];
	size_t o = (size_t)snprintf(buf, sizeof(buf), "its task inputs:");
	int n = 0;
	for (int i = 0; i < T->nin && o < sizeof(buf) - 60; i++) {
		const struct input *in = &T->in[i];
		if (in->type != IN_RESULT)
			continue;
		struct task *U = &P->t[in->task];
		const char *st = "released by the driver";
		if (U->live[in->idx]) {
			bool ready = false;
			int rc = prism_wait(&U->ref[in->idx], 1, 1, 0, &ready);
			st = rc < 0 ? "prism_wait failed" : ready ? "ready" : "NOT ready";
		}
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s #%d.%d %s", n++ ? "," : "",
				      in->task, in->idx, st);
	}
	if (!n)
		snprintf(buf + o, sizeof(buf) - o, " none");
	return buf;
}

/* Check one result (or, with put >= 0, a put) against the model.  expect_ready: a
 * prism_wait said it is ready. */
static void check_result(struct plan *P, int t, int j, bool expect_ready)
{
	struct task *T = &P->t[t];
	const void *d = NULL;
	size_t len = 0;
	phase("prism_get(%s result %d)", describe(P, t), j);
	int64_t t0 = mono_ns();
	g_checks++;
	int rc = prism_get(T->ref[j], expect_ready ? 5 * NS_PER_S : get_timeout(), &d, &len);
	double took = (double)(mono_ns() - t0) / 1e9;
	T->checked[j] = true;
	if (rc == PRISM_E_TIMEOUT) {
		if (expect_ready)
			problem("%s result %d: prism_wait said ready, but prism_get timed out "
				"after 5 s",
				describe(P, t), j);
		else if (first_of("missing result", 3))
			problem("missing result: %s result %d: not ready after %.1f s "
				"(PRISM_E_TIMEOUT); %s",
				describe(P, t), j, took, inputs_state(P, t));
		return;
	}
	if (rc != 0 && rc != PRISM_E_TASK_FAILED) {
		problem("%s result %d: prism_get returned %d (%s): %s", describe(P, t), j, rc,
			prism_errname(rc), lasterr());
		return;
	}
	if (rc == 0 && len && !d) {
		problem("%s result %d: prism_get gave NULL data with len %zu", describe(P, t),
			j, len);
		return;
	}
	if (!T->err) {
		if (rc == PRISM_E_TASK_FAILED) {
			size_t tl = text_len(d, len);
			if (opt.kill && printable(d, tl) && death_text(d, tl)) {
				g_death_errors++;
				note("%s result %d: allowed error: %s", describe(P, t), j,
				     quote(d, tl));
				return;
			}
			char key[128];
			inner_cause(d, tl, key, sizeof(key));
			if (first_of(key, 1))
				problem("%s result %d: unexpected error (PRISM_E_TASK_FAILED), "
					"expected %" PRIu64 " bytes: %s",
					describe(P, t), j, T->len[j], quote(d, len));
			return;
		}
		long off = len == T->len[j] ? first_diff(T->vseed[j], d, len) : -1;
		if (len != T->len[j]) {
			size_t m = len < T->len[j] ? len : T->len[j];
			off = first_diff(T->vseed[j], d, m);
			problem("%s result %d: wrong length: got %zu bytes, expected %" PRIu64
				"; first differing byte %ld%s",
				describe(P, t), j, len, T->len[j], off,
				off < 0 ? " (none: the common prefix matches)" : "");
		} else if (off >= 0) {
			long nd = 0;
			const uint8_t *b = d;
			for (size_t q = (size_t)off; q < len; q++)
				nd += b[q] != val_byte(T->vseed[j], q);
			problem("%s result %d: wrong bytes (len %zu right): first differing "
				"byte "
				"at offset %ld: got 0x%02x, expected 0x%02x (%ld bytes differ)",
				describe(P, t), j, len, off, b[off],
				val_byte(T->vseed[j], (size_t)off), nd);
		} else {
			g_ok_values++;
			g_ok_nested += T->h.depth > 0;
			snapshot(P, t, j, rc, d, len);
		}
		return;
	}
	/* expected: an error naming one of the roots */
	if (rc == 0) {
		problem("%s result %d: expected an error (a task failing on purpose upstream), "
			"got %zu bytes",
			describe(P, t), j, len);
		return;
	}
	size_t tl = text_len(d, len);
	if (!printable(d, tl)) {
		problem("%s result %d: error text is not printable text (%zu bytes): %s",
			describe(P, t), j, len, quote(d, len));
		return;
	}
	if (opt.kill && death_text(d, tl)) {
		g_death_errors++;
		return;
	}
	char *s = strndup(d, tl);
	const char *m = s ? strstr(s, FAIL_MARK "T") : NULL;
	bool ok = false;
	long root = -1;
	if (m) {
		char *end;
		root = strtol(m + strlen(FAIL_MARK "T"), &end, 10);
		ok = (*end == ']' || *end == '.') && root >= 0 && root < P->n &&
		     (T->roots[root / 64] >> (root % 64) & 1);
	}
	if (ok && T->own_fail && !strstr(s, "dagfn"))
		ok = false; /* its own failure: "dagfn: message" */
	char key[128];
	if (ok) {
		g_ok_errors++;
		snapshot(P, t, j, rc, d, len);
	} else if (first_of(inner_cause(d, tl, key, sizeof(key)), 1)) {
		char rl[200];
		size_t o = 0;
		int nr = 0;
		rl[0] = 0;
		for (int q = 0; q < P->n && o < sizeof(rl) - 40; q++)
			if (T->roots[q / 64] >> (q % 64) & 1)
				o += (size_t)snprintf(rl + o, sizeof(rl) - o, "%s#%d",
						      nr++ ? ", " : "", q);
		problem("%s result %d: expected an error caused by the failure on purpose of "
			"%s, "
			"got an error whose text %s: %s",
			describe(P, t), j, rl,
			root >= 0 ? "names a task that is not upstream" : "names none of them",
			quote(d, len));
	}
	free(s);
}

static void check_put(struct plan *P, int k)
{
	struct put *p = &P->p[k];
	const void *d = NULL;
	size_t len = 0;
	phase("prism_get(put%d, %u bytes)", k, p->len);
	int rc = prism_get(p->ref, get_timeout(), &d, &len);
	p->checked = true;
	if (rc != 0) {
		problem("put%d (%u bytes): prism_get returned %d (%s): %s", k, p->len, rc,
			prism_errname(rc), lasterr());
		return;
	}
	long off = len == p->len ? first_diff(p->vseed, d, len) : 0;
	if (len != p->len || off >= 0)
		problem("put%d: got %zu bytes, expected %u; first differing byte %ld", k, len,
			p->len, off);
}

static void release_ref(prism_ref ref, const char *what, int a, int b)
{
	int rc = prism_ref_release(ref);
	if (rc < 0)
		problem("prism_ref_release(%s %d.%d) returned %d (%s): %s", what, a, b, rc,
			prism_errname(rc), lasterr());
}

/* Release the refs the driver no longer needs after submitting task `now`. */
static void maybe_release(struct plan *P, int t, int j, int now)
{
	struct task *T = &P->t[t];
	if (opt.no_early_release && now < P->n)
		return;
	if (T->hold[j])
		return;
	if (T->live[j] && T->last_use[j] <= now && (!T->check[j] || T->checked[j])) {
		release_ref(T->ref[j], "task", t, j);
		T->live[j] = false;
	}
}

static void maybe_release_put(struct plan *P, int k, int now)
{
	struct put *p = &P->p[k];
	if (opt.no_early_release && now < P->n)
		return;
	if (p->live && p->last_use <= now && (!p->check || p->checked)) {
		release_ref(p->ref, "put", k, 0);
		p->live = false;
	}
}

/* A prism_wait on a random subset of the live, unchecked results; checks those it calls
 * ready. */
static void random_wait(struct plan *P, rng *r, int now, bool poll)
{
	prism_ref refs[16];
	int tt[16], jj[16], n = 0;
	int want = (int)rrange(r, 1, 16);
	for (int tries = 0; tries < 200 && n < want; tries++) {
		int t = (int)rbelow(r, (uint64_t)(now + 1));
		struct task *T = &P->t[t];
		if (T->state != 1)
			continue;
		int j = (int)rbelow(r, (uint64_t)T->nret);
		if (!T->live[j] || !T->check[j] || T->checked[j])
			continue;
		bool dup = false;
		for (int q = 0; q < n; q++)
			dup |= tt[q] == t && jj[q] == j;
		if (dup)
			continue;
		refs[n] = T->ref[j], tt[n] = t, jj[n++] = j;
	}
	if (!n)
		return;
	size_t num_ready = (size_t)rrange(r, 1, (uint64_t)n);
	bool ready[16];
	memset(ready, 0, sizeof(ready));
	phase("prism_wait(%d refs, %zu)", n, num_ready);
	int rc = prism_wait(refs, (size_t)n, num_ready, poll ? 0 : get_timeout(), ready);
	if (rc < 0) {
		problem("prism_wait(%d refs, num_ready %zu) returned %d (%s): %s", n, num_ready,
			rc, prism_errname(rc), lasterr());
		return;
	}
	int flags = 0;
	for (int q = 0; q < n; q++)
		flags += ready[q];
	if (rc > n || flags != rc)
		problem("prism_wait(%d refs, num_ready %zu) returned %d but set %d ready flags",
			n, num_ready, rc, flags);
	if (!poll && rc < (int)num_ready)
		problem("prism_wait(%d refs, num_ready %zu): only %d ready after %d s (missing "
			"results follow)",
			n, num_ready, rc, opt.budget_s);
	for (int q = 0; q < n; q++)
		if (ready[q]) {
			check_result(P, tt[q], jj[q], true);
			maybe_release(P, tt[q], jj[q], now);
		}
}

/* Submit task t; false if it could not be. */
static bool submit_task(struct plan *P, int t, rng *r)
{
	struct task *T = &P->t[t];
	prism_value a[1 + MAX_IN];
	void *bufs[MAX_IN] = {0};
	size_t byval = 0;
	for (int i = 0; i < T->nin; i++) {
		const struct input *in = &T->in[i];
		if (in->type == IN_DUP)
			in = &T->in[in->dup];
		if (in->type == IN_RESULT && P->t[in->task].state != 1) {
			T->state = -1; /* its input was never submitted */
			return false;
		}
		if (in->type == IN_PUT && P->p[in->put].state < 0) {
			T->state = -1;
			return false;
		}
	}
	/* puts made just before their first use */
	for (int i = 0; i < T->nin; i++) {
		if (T->in[i].type != IN_PUT)
			continue;
		struct put *p = &P->p[T->in[i].put];
		if (p->state != 0)
			continue;
		void *b = malloc(p->len ? p->len : 1);
		if (!b) {
			perror("malloc");
			exit(2);
		}
		expand(p->vseed, b, p->len);
		phase("prism_put(put%d, %u bytes) for task #%d", T->in[i].put, p->len, t);
		int rc = prism_put(b, p->len, &p->ref);
		memset(b, 0x5a, p->len);
		free(b);
		if (rc < 0) {
			problem("prism_put(put%d, %u bytes) returned %d (%s): %s", T->in[i].put,
				p->len, rc, prism_errname(rc), lasterr());
			p->state = -1;
			T->state = -1;
			return false;
		}
		p->state = 1;
		p->live = true;
	}
	a[0] = prism_bytes(&T->h, sizeof(T->h));
	for (int i = 0; i < T->nin; i++) {
		const struct input *in = &T->in[i];
		if (in->type == IN_DUP)
			in = &T->in[in->dup];
		switch (in->type) {
		case IN_RESULT:
			a[1 + i] = prism_refval(P->t[in->task].ref[in->idx]);
			break;
		case IN_PUT:
			a[1 + i] = prism_refval(P->p[in->put].ref);
			break;
		default:
			bufs[i] = malloc(in->len ? in->len : 1);
			if (!bufs[i]) {
				perror("malloc");
				exit(2);
			}
			expand(in->vseed, bufs[i], in->len);
			a[1 + i] = prism_bytes(bufs[i], in->len);
			byval += in->len;
		}
	}
	prism_call_opts o = {.num_returns = (uint32_t)T->nret,
			     .max_retries = T->max_retries,
			     .num_cpus = T->num_cpus};
	phase("prism_submit(%s)", describe(P, t));
	int rc = prism_submit("dagfn", a, (size_t)(1 + T->nin), &o, T->ref);
	/* bytes are copied at submit time: scribble over them */
	for (int i = 0; i < T->nin; i++)
		if (bufs[i]) {
			memset(bufs[i], 0xa5, T->in[i].len);
			free(bufs[i]);
		}
	if (rc < 0) {
		problem("prism_submit(%s) returned %d (%s): %s [by-value bytes in all: %zu]",
			describe(P, t), rc, prism_errname(rc), lasterr(), byval);
		T->state = -1;
		return false;
	}
	T->state = 1;
	for (int j = 0; j < T->nret; j++)
		T->live[j] = true;
	if (rpct(r, 3)) { /* one more reference, given back at once */
		prism_ref_retain(T->ref[0]);
		release_ref(T->ref[0], "task (retained)", t, 0);
	}
	return true;
}

static int run_seed(uint64_t seed)
{
	struct plan P;
	int64_t t_start = mono_ns();
	g_problems = 0;
	g_death_errors = 0;
	g_ok_values = g_ok_nested = g_ok_errors = 0;
	g_nsnaps = g_checks = 0;
	g_rng.s = fmix(seed ^ 0x5a5a5a5a);
	seen_reset();
	plan_build(&P, seed);
	int nchecks = 0;
	for (int t = 0; t < P.n; t++)
		for (int j = 0; j < P.t[t].nret; j++)
			nchecks += P.t[t].check[j];
	int nerr = 0;
	for (int t = 0; t < P.n; t++)
		nerr += P.t[t].err;
	printf("  %s: %d tasks (%d fail on purpose, %d with failed inputs; %d nested with %d "
	       "subtasks%s; %d with >128 KiB of arguments), %d puts, %d results checked, %s\n",
	       g_label, P.n, P.fails, nerr - P.fails, P.nested, P.nested_tasks,
	       P.deep ? ", deep" : "", P.bigargs, P.nputs, nchecks,
	       P.use_opts ? "init with opts" : "init(NULL)");
	fflush(stdout);

	prism_opts o;
	dag_init_opts(&P, &o);
	phase("prism_init");
	int rc = prism_init(P.use_opts ? &o : NULL);
	if (rc < 0) {
		problem("prism_init returned %d (%s): %s", rc, prism_errname(rc), lasterr());
		plan_free(&P);
		return 1;
	}
	if (opt.kill) {
		killer.seed = fmix(seed ^ 0xdeadbeef);
		killer.stop = 0;
		killer.kills = 0;
		killer.running = pthread_create(&killer.th, NULL, killer_main, NULL) == 0;
	}
	g_deadline = mono_ns() + (int64_t)opt.budget_s * NS_PER_S;
	rng r = {fmix(seed ^ 0x5eed5eed5eedULL)};

	/* phase A: submit, releasing early, checking now and then */
	int submitted = 0;
	for (int t = 0; t < P.n; t++) {
		struct task *T = &P.t[t];
		if (!submit_task(&P, t, &r))
			continue;
		submitted++;
		for (int i = 0; i < T->nin; i++) {
			const struct input *in = &T->in[i];
			if (in->type == IN_RESULT)
				maybe_release(&P, in->task, in->idx, t);
			else if (in->type == IN_PUT)
				maybe_release_put(&P, in->put, t);
		}
		for (int j = 0; j < T->nret; j++)
			maybe_release(&P, t, j, t);
		if (rpct(&r, 4)) { /* check an earlier result now */
			int u = (int)rbelow(&r, (uint64_t)(t + 1));
			struct task *U = &P.t[u];
			if (U->state == 1)
				for (int j = 0; j < U->nret; j++)
					if (U->live[j] && U->check[j] && !U->checked[j]) {
						check_result(&P, u, j, false);
						maybe_release(&P, u, j, t);
						break;
					}
		}
		if (rpct(&r, 2))
			random_wait(&P, &r, t, rpct(&r, 50));
		verify_snaps(&P, false, t);
	}
	int64_t t_submitted = mono_ns();

	/* phase B: the rest, in random order */
	int nleft = 0;
	int *lt = malloc(sizeof(int) * (size_t)P.n * MAX_RET),
	    *lj = malloc(sizeof(int) * (size_t)P.n * MAX_RET);
	for (int t = 0; t < P.n; t++)
		for (int j = 0; j < P.t[t].nret; j++)
			if (P.t[t].state == 1 && P.t[t].check[j] && !P.t[t].checked[j])
				lt[nleft] = t, lj[nleft++] = j;
	for (int i = nleft - 1; i > 0; i--) {
		int k = (int)rbelow(&r, (uint64_t)i + 1), x = lt[i], y = lj[i];
		lt[i] = lt[k], lj[i] = lj[k], lt[k] = x, lj[k] = y;
	}
	for (int i = 0; i < nleft; i++) {
		if (rpct(&r, 10))
			random_wait(&P, &r, P.n - 1, rpct(&r, 20));
		struct task *T = &P.t[lt[i]];
		if (!T->checked[lj[i]])
			check_result(&P, lt[i], lj[i], false);
		maybe_release(&P, lt[i], lj[i], P.n);
		verify_snaps(&P, false, P.n);
	}
	verify_snaps(&P, true, P.n);
	for (int k = 0; k < P.nputs; k++) {
		if (P.p[k].state == 1 && P.p[k].check && !P.p[k].checked && P.p[k].live)
			check_put(&P, k);
		maybe_release_put(&P, k, P.n);
	}
	free(lt);
	free(lj);
	int64_t t_checked = mono_ns();
	if (opt.kill && killer.running) {
		killer.stop = 1;
		pthread_join(killer.th, NULL);
	}
	/* release what is left (results never checked nor released: none expected) */
	phase("releasing");
	for (int t = 0; t < P.n; t++)
		for (int j = 0; j < P.t[t].nret; j++)
			if (P.t[t].live[j]) {
				release_ref(P.t[t].ref[j], "task", t, j);
				P.t[t].live[j] = false;
			}
	for (int k = 0; k < P.nputs; k++)
		if (P.p[k].live) {
			release_ref(P.p[k].ref, "put", k, 0);
			P.p[k].live = false;
		}
	phase("prism_shutdown");
	int64_t t_sd = mono_ns();
	prism_shutdown();
	int64_t t_end = mono_ns();
	if (g_suppressed)
		printf("  %s: (%d more problems not shown: the same causes as above)\n",
		       g_label, g_suppressed);
	printf("  %s: %s: %d of %d tasks submitted; %d results exact (%d of nested tasks), "
	       "%d errors as expected; %.2f s (plan+submit %.2f, results %.2f, shutdown "
	       "%.2f)%s",
	       g_label, g_problems ? "FAILED" : "ok", submitted, P.n, g_ok_values, g_ok_nested,
	       g_ok_errors, (double)(t_end - t_start) / 1e9,
	       (double)(t_submitted - t_start) / 1e9, (double)(t_checked - t_submitted) / 1e9,
	       (double)(t_end - t_sd) / 1e9, opt.kill ? "" : "\n");
	if (opt.kill)
		printf(", %d workers killed, %d errors explained by a death\n", killer.kills,
		       g_death_errors);
	fflush(stdout);
	plan_free(&P);
	return g_problems ? 1 : 0;
}

/* ---- deterministic cases ------------------------------------------------------------------ */

static bool case_init(void)
{
	phase("prism_init");
	int rc = prism_init(NULL);
	if (rc < 0)
		problem("prism_init returned %d (%s): %s", rc, prism_errname(rc), lasterr());
	return rc == 0;
}

/* Submit fn(args) and get its one result (copied into out, at most cap bytes). */
static int call1(const char *fn, const prism_value *a, size_t n, void *out, size_t cap,
		 size_t *len, const char *what)
{
	prism_ref ref;
	phase("%s: submit", what);
	int rc = prism_submit(fn, a, n, NULL, &ref);
	if (rc < 0) {
		problem("%s: prism_submit(%s) returned %d (%s): %s", what, fn, rc,
			prism_errname(rc), lasterr());
		return rc;
	}
	const void *d = NULL;
	size_t l = 0;
	phase("%s: get", what);
	rc = prism_get(ref, 60 * NS_PER_S, &d, &l);
	if (rc == 0) {
		if (l && !d)
			problem("%s: prism_get gave NULL data with len %zu", what, l);
		else if (out)
			memcpy(out, d, l < cap ? l : cap);
		if (len)
			*len = l;
	} else {
		problem("%s: prism_get returned %d (%s): %s", what, rc, prism_errname(rc),
			rc == PRISM_E_TASK_FAILED ? quote(d, l) : lasterr());
	}
	prism_ref_release(ref);
	return rc;
}

static int case_null_data(void)
{
	if (!case_init())
		return 1;
	prism_ref ref;
	prism_value v = prism_bytes(NULL, 16);
	phase("prism_submit(prism_bytes(NULL, 16))");
	int rc = prism_submit("argsum", &v, 1, NULL, &ref);
	if (rc >= 0) {
		problem("prism_submit with prism_bytes(NULL, 16) returned %d, expected an "
			"error",
			rc);
		prism_ref_release(ref);
	} else {
		note("prism_bytes(NULL, 16) refused: %d (%s) %s", rc, prism_errname(rc),
		     lasterr());
	}
	uint64_t x = 7;
	prism_value mixed[3] = {prism_bytes(&x, 8), prism_bytes(NULL, 16), prism_bytes(&x, 8)};
	phase("prism_submit(x, prism_bytes(NULL, 16), x)");
	rc = prism_submit("argsum", mixed, 3, NULL, &ref);
	if (rc >= 0) {
		problem("prism_submit with a second argument prism_bytes(NULL, 16) returned "
			"%d, "
			"expected an error",
			rc);
		prism_ref_release(ref);
	}
	/* still works, and an empty NULL value is a valid empty argument */
	uint64_t out[3] = {0};
	size_t len = 0;
	prism_value ok[2] = {prism_bytes(&x, 8), prism_bytes(NULL, 0)};
	if (call1("argsum", ok, 2, out, sizeof(out), &len, "argsum(x, prism_bytes(NULL, 0))") ==
	    0) {
		uint64_t h = hmix(hmix(hstart(2), digest(&x, 8)), digest(NULL, 0));
		if (len != sizeof(out) || out[0] != 2 || out[1] != 8 || out[2] != h)
			problem("argsum(x, empty) returned nargs %" PRIu64 " total %" PRIu64
				" (len %zu), expected 2, 8 and the right hash",
				out[0], out[1], len);
	}
	prism_shutdown();
	return g_problems ? 1 : 0;
}

static int case_kill_bogus_actor(void)
{
	if (!case_init())
		return 1;
	prism_actor a;
	uint64_t v = 0x1122334455667788ULL;
	prism_value arg = prism_bytes(&v, 8);
	phase("prism_actor_create(Holder)");
	int rc = prism_actor_create("Holder", &arg, 1, NULL, &a);
	if (rc < 0) {
		problem("prism_actor_create(Holder) returned %d (%s): %s", rc,
			prism_errname(rc), lasterr());
		prism_shutdown();
		return 1;
	}
	rng r = {(uint64_t)mono_ns() ^ ((uint64_t)getpid() << 32)};
	prism_actor fake[3];
	memset(fake, 0, sizeof(fake));
	for (int i = 0; i < 2; i++) {
		for (int b = 0; b < PRISM_ID_SIZE; b += 8) {
			uint64_t w = rnext(&r);
			memcpy(fake[i].id.b + b, &w, 8);
		}
		fake[i].id.b[14] = 0;
		fake[i].id.b[15] = PRISM_ID_ACTOR;
	}
	fake[0].cls = a.cls; /* a real class, an id nobody made */
	fake[1].cls = rnext(&r);
	fake[2].cls = a.cls; /* the nil id */
	static const char *const what[] = {"a made-up id of a real class",
					   "a made-up id and class", "the nil id"};
	for (int i = 0; i < 3; i++) {
		phase("prism_actor_kill(%s)", what[i]);
		rc = prism_actor_kill(fake[i]);
		if (rc >= 0)
			problem("prism_actor_kill(%s) returned %d, expected an error", what[i],
				rc);
		else
			note("prism_actor_kill(%s): %d (%s) %s", what[i], rc, prism_errname(rc),
			     lasterr());
	}
	/* the real actor is untouched */
	prism_ref ref;
	phase("prism_actor_call(Holder.value)");
	rc = prism_actor_call(a, "value", NULL, 0, NULL, &ref);
	if (rc < 0) {
		problem("prism_actor_call(value) returned %d (%s): %s", rc, prism_errname(rc),
			lasterr());
	} else {
		const void *d = NULL;
		size_t len = 0;
		rc = prism_get(ref, 60 * NS_PER_S, &d, &len);
		uint64_t got = 0;
		if (rc == 0 && len == 8)
			memcpy(&got, d, 8);
		if (rc != 0 || len != 8 || got != v)
			problem("the real actor after the bogus kills: rc %d (%s), len %zu, "
				"value "
				"%016" PRIx64 " (expected %016" PRIx64 ")",
				rc, prism_errname(rc), len, got, v);
		prism_ref_release(ref);
	}
	phase("prism_actor_kill(the real actor)");
	rc = prism_actor_kill(a);
	if (rc < 0)
		problem("prism_actor_kill(a real actor) returned %d (%s): %s", rc,
			prism_errname(rc), lasterr());
	prism_shutdown();
	return g_problems ? 1 : 0;
}

/* One actor of BadCtor: calls made before and after its constructor's failure is known
 * fail with PRISM_E_ACTOR_DIED and the constructor's message, intact, and the text stays
 * so until the ref is released. */
static void ctor_fail_round(uint64_t sleep_ms)
{
	rng r = {(uint64_t)mono_ns() ^ ((uint64_t)getpid() << 32)};
	uint64_t nonce = rnext(&r);
	char marker[80], what[64];
	snprintf(marker, sizeof(marker),
		 "CTORFAIL-%016" PRIx64 " constructor refused on purpose", nonce);
	snprintf(what, sizeof(what), "BadCtor failing after %" PRIu64 " ms", sleep_ms);
	prism_value args[2] = {prism_bytes(&nonce, 8), prism_bytes(&sleep_ms, 8)};
	prism_actor a;
	phase("prism_actor_create(%s)", what);
	int rc = prism_actor_create("BadCtor", args, 2, NULL, &a);
	if (rc < 0) {
		const char *e = lasterr();
		note("%s: prism_actor_create itself failed: %d (%s): %s", what, rc,
		     prism_errname(rc), e);
		if (!printable(e, strlen(e)) || !strstr(e, marker))
			problem("%s: prism_actor_create failed with %d and a text without the "
				"constructor's message %s: %s",
				what, rc, marker, quote(e, strlen(e)));
		return;
	}
	enum { NCALLS = 6 };
	prism_ref refs[NCALLS];
	const void *data[NCALLS];
	size_t lens[NCALLS];
	char *copies[NCALLS];
	bool made[NCALLS] = {false}, got[NCALLS] = {false};
	for (int i = 0; i < NCALLS; i++) {
		if (i == 3) {
			/* the rest after the failure is known */
			for (int k = 0; k < 3; k++)
				if (made[k]) {
					prism_wait(&refs[k], 1, 1, 60 * NS_PER_S, NULL);
					break;
				}
			sleep_ns(100000000);
		}
		uint64_t x = (uint64_t)i;
		prism_value v = prism_bytes(&x, 8);
		phase("%s: prism_actor_call(ping) #%d", what, i);
		rc = prism_actor_call(a, "ping", i % 2 ? &v : NULL, i % 2, NULL, &refs[i]);
		if (rc < 0) {
			const char *e = lasterr();
			if (!printable(e, strlen(e)) || !strstr(e, marker))
				problem("%s: call #%d: prism_actor_call returned %d (%s) with "
					"a text "
					"without \"%s\": %s",
					what, i, rc, prism_errname(rc), marker,
					quote(e, strlen(e)));
			continue;
		}
		made[i] = true;
	}
	for (int i = 0; i < NCALLS; i++) {
		copies[i] = NULL;
		if (!made[i])
			continue;
		const void *d = NULL;
		size_t len = 0;
		phase("%s: prism_get(ping #%d)", what, i);
		rc = prism_get(refs[i], 60 * NS_PER_S, &d, &len);
		if (rc == 0) {
			problem("%s: call #%d on an actor whose constructor failed returned "
				"%zu "
				"bytes",
				what, i, len);
		} else if (rc != PRISM_E_ACTOR_DIED) {
			problem("%s: call #%d: prism_get returned %d (%s), expected "
				"PRISM_E_ACTOR_DIED; data %s",
				what, i, rc, prism_errname(rc), d ? quote(d, len) : "(none)");
		} else {
			size_t tl = text_len(d, len);
			char *s = d ? strndup(d, tl) : NULL;
			if (!d || !printable(d, tl) || !s || !strstr(s, marker)) {
				problem("%s: call #%d: PRISM_E_ACTOR_DIED, but the error text "
					"is not "
					"intact (expected it to contain \"%s\"): %s",
					what, i, marker, d ? quote(d, len) : "(no data)");
			} else {
				note("%s: call #%d: %s", what, i, quote(d, len));
				got[i] = true;
				data[i] = d;
				lens[i] = len;
				copies[i] = malloc(len);
				if (copies[i])
					memcpy(copies[i], d, len);
			}
			free(s);
		}
	}
	/* the texts stay intact until the refs are released, and a second get agrees */
	for (int i = 0; i < NCALLS; i++) {
		if (!got[i] || !copies[i])
			continue;
		phase("%s: re-reading the text of call #%d", what, i);
		if (memcmp(data[i], copies[i], lens[i]))
			problem("%s: call #%d: the error text changed after later prism calls, "
				"while "
				"its ref is held: now %s",
				what, i, quote(data[i], lens[i]));
		const void *d = NULL;
		size_t len = 0;
		rc = prism_get(refs[i], 10 * NS_PER_S, &d, &len);
		if (rc != PRISM_E_ACTOR_DIED || len != lens[i] || !d ||
		    memcmp(d, copies[i], len))
			problem("%s: call #%d: a second prism_get gave %d (%s) and %s, the "
				"first %s",
				what, i, rc, prism_errname(rc), d ? quote(d, len) : "(no data)",
				quote(copies[i], lens[i]));
	}
	for (int i = 0; i < NCALLS; i++) {
		if (made[i])
			prism_ref_release(refs[i]);
		free(copies[i]);
	}
}

static int case_actor_ctor_fails(void)
{
	if (!case_init())
		return 1;
	ctor_fail_round(0);
	ctor_fail_round(300);
	prism_shutdown();
	return g_problems ? 1 : 0;
}

static int case_big_inline_args(void)
{
	if (!case_init())
		return 1;
	static const struct {
		int n;
		uint32_t len;
	} shapes[] = {{3, 45000}, {16, 16 * KIB}, {9, 16 * KIB}, {2, 65000}, {5, 30000}};
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		int n = shapes[s].n;
		uint32_t len = shapes[s].len;
		prism_value a[16];
		void *b[16];
		uint64_t h = hstart((uint64_t)n), total = 0;
		for (int i = 0; i < n; i++) {
			b[i] = malloc(len);
			if (!b[i]) {
				perror("malloc");
				exit(2);
			}
			expand(fmix((uint64_t)(s * 100 + (size_t)i)), b[i], len);
			h = hmix(h, digest(b[i], len));
			total += len;
			a[i] = prism_bytes(b[i], len);
		}
		char what[96];
		snprintf(what, sizeof(what), "argsum(%d x %u bytes = %" PRIu64 " bytes)", n,
			 len, total);
		uint64_t out[3] = {0};
		size_t got = 0;
		int rc = call1("argsum", a, (size_t)n, out, sizeof(out), &got, what);
		for (int i = 0; i < n; i++)
			free(b[i]);
		if (rc == 0 && (got != sizeof(out) || out[0] != (uint64_t)n ||
				out[1] != total || out[2] != h))
			problem("%s: the task saw %" PRIu64 " arguments, %" PRIu64
				" bytes, hash %s (result len %zu)",
				what, out[0], out[1], out[2] == h ? "right" : "WRONG", got);
	}
	prism_shutdown();
	return g_problems ? 1 : 0;
}

/* Tasks submitted just before the driver sleeps 1.5 s without calling prism must start
 * during the sleep (each within 1 s of its submission: a generous bound for a loaded
 * machine, still well before the driver wakes). */
static void sleep_probe(const char *what, const prism_value *a, size_t n, int count,
			prism_ref *release_after)
{
	prism_ref ref[16];
	int64_t t0[16];
	int ok = 0;
	for (int i = 0; i < count; i++) {
		t0[i] = mono_ns();
		phase("%s: submit #%d", what, i);
		int rc = prism_submit("stamp", a, n, NULL, &ref[i]);
		if (rc < 0) {
			problem("%s: prism_submit(stamp) returned %d (%s): %s", what, rc,
				prism_errname(rc), lasterr());
			break;
		}
		ok++;
	}
	if (release_after)
		prism_ref_release(*release_after);
	phase("%s: the driver sleeps 1.5 s", what);
	sleep_ns(1500000000);
	double worst = 0;
	int late = 0;
	for (int i = 0; i < ok; i++) {
		const void *d = NULL;
		size_t len = 0;
		phase("%s: get #%d", what, i);
		int rc = prism_get(ref[i], 60 * NS_PER_S, &d, &len);
		int64_t start = 0;
		if (rc == 0 && len == 8)
			memcpy(&start, d, 8);
		prism_ref_release(ref[i]);
		if (rc != 0 || len != 8) {
			problem("%s: prism_get(stamp #%d) returned %d (%s), len %zu", what, i,
				rc, prism_errname(rc), len);
			continue;
		}
		double lag = (double)(start - t0[i]) / 1e9;
		if (lag > worst)
			worst = lag;
		late += lag > 1.0;
	}
	if (late)
		problem("%s: %d of %d tasks started more than 1 s after their submission "
			"(the "
			"latest after %.3f s), while the driver slept 1.5 s without calling "
			"prism",
			what, late, ok, worst);
	note("%s: the latest of %d started %.3f s after its submission", what, ok, worst);
}

static bool warm_up(void)
{
	uint64_t t = 0;
	size_t len = 0;
	prism_value v = prism_bytes(&t, 8);
	return call1("stamp", &v, 1, &t, 8, &len, "warm-up") == 0;
}

static int case_sleep_start(void)
{
	if (!case_init())
		return 1;
	if (warm_up()) {
		uint64_t x = 1;
		prism_value v = prism_bytes(&x, 8);
		sleep_probe("stamp(8 bytes)", &v, 1, 1, NULL);
		void *b = calloc(1, 100 * KIB);
		prism_value big = prism_bytes(b, 100 * KIB);
		sleep_probe("stamp(100 KiB by value)", &big, 1, 1, NULL);
		free(b);
		sleep_probe("8 x stamp(8 bytes) at once", &v, 1, 8, NULL);
	}
	prism_shutdown();
	return g_problems ? 1 : 0;
}

/* Not in the default set: a task whose input is another task's result, both submitted
 * just before the driver sleeps; the second should start during the sleep too. */
static int case_sleep_start_dep(void)
{
	if (!case_init())
		return 1;
	if (warm_up()) {
		uint64_t x = 1;
		prism_value v = prism_bytes(&x, 8);
		prism_ref first;
		int rc = prism_submit("stamp", &v, 1, NULL, &first);
		if (rc < 0) {
			problem("prism_submit(stamp) returned %d", rc);
		} else {
			prism_value dep = prism_refval(first);
			sleep_probe("stamp(the result of another stamp)", &dep, 1, 1, &first);
		}
	}
	prism_shutdown();
	return g_problems ? 1 : 0;
}

/* Not in the default set: the first task of a fresh node (its workers may still be
 * starting). */
static int case_sleep_start_cold(void)
{
	if (!case_init())
		return 1;
	uint64_t x = 1;
	prism_value v = prism_bytes(&x, 8);
	sleep_probe("stamp(8 bytes) right after prism_init", &v, 1, 1, NULL);
	prism_shutdown();
	return g_problems ? 1 : 0;
}

static const struct {
	const char *name;
	int (*fn)(void);
	bool by_default;
	const char *help;
} cases[] = {
	{"null_data", case_null_data, true, "prism_bytes(NULL, 16) is refused, no crash"},
	{"kill_bogus_actor", case_kill_bogus_actor, true,
	 "prism_actor_kill on made-up handles returns an error"},
	{"actor_ctor_fails", case_actor_ctor_fails, true,
	 "calls on an actor whose constructor failed: ACTOR_DIED, text intact"},
	{"big_inline_args", case_big_inline_args, true,
	 "small by-value arguments totalling > 128 KiB (3 x 45000, 16 x 16 KiB...)"},
	{"sleep_start", case_sleep_start, true,
	 "a task submitted before the driver sleeps 1.5 s starts within 1 s"},
	{"sleep_start_dep", case_sleep_start_dep, false,
	 "(extra) the same for a task whose input is another task's result"},
	{"sleep_start_cold", case_sleep_start_cold, false,
	 "(extra) the same for the first task right after prism_init"},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* ---- the parent: a forked child per seed or case, with a watchdog ------------------------ */

static int n_passed, n_failed;

/* Every descendant of this process (from /proc). */
static int descendants(pid_t *out, int cap)
{
	pid_t queue[1024];
	int n = 0, head = 0;
	queue[0] = getpid();
	int qn = 1;
	while (head < qn && n < cap) {
		pid_t kids[256];
		int k = children_of(queue[head++], kids, 256);
		for (int i = 0; i < k && n < cap; i++) {
			out[n++] = kids[i];
			if (qn < 1024)
				queue[qn++] = kids[i];
		}
	}
	return n;
}

static void reap_leftovers(void)
{
	/* The node and its workers end by themselves after prism_shutdown (or when the driver
	 * is gone); give them a moment, then kill what is left. */
	int64_t end = mono_ns() + 3 * NS_PER_S, give_up = mono_ns() + 20 * NS_PER_S;
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		pid_t d[512];
		int n = descendants(d, 512);
		if (n == 0)
			return;
		if (mono_ns() > give_up) {
			printf("  %s: warning: %d processes left over will not die\n", g_label,
			       n);
			return;
		}
		if (mono_ns() > end) {
			if (opt.verbose)
				printf("  %s: killing %d processes left over\n", g_label, n);
			for (int i = 0; i < n; i++)
				kill(d[i], SIGKILL);
			end = mono_ns() + 3 * NS_PER_S;
		}
		sleep_ns(20000000);
	}
}

static void run_job(const char *label, int (*fn)(void *), void *arg)
{
	snprintf(g_label, sizeof(g_label), "%s", label);
	printf("%s\n", label);
	fflush(stdout);
	g_sh->verdict = -1;
	g_sh->phase[0] = 0;
	if (opt.no_fork) {
		int bad = fn(arg);
		bad ? n_failed++ : n_passed++;
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		setpgid(0, 0);
		int bad = fn(arg);
		g_sh->verdict = bad;
		fflush(stdout);
		fflush(stderr);
		_exit(bad ? 1 : 0);
	}
	setpgid(pid, pid);
	int64_t deadline = mono_ns() + (int64_t)opt.timeout_s * NS_PER_S;
	int status = 0;
	bool hung = false;
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (mono_ns() > deadline) {
			hung = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		sleep_ns(20000000);
	}
	bool pass = false;
	if (hung)
		printf("  %s: FAIL: HANG: no verdict after %d s (watchdog); it was in: %s\n",
		       label, opt.timeout_s, g_sh->phase);
	else if (WIFSIGNALED(status))
		printf("  %s: FAIL: CRASH: the driver died of signal %d (%s) in: %s\n", label,
		       WTERMSIG(status), strsignal(WTERMSIG(status)), g_sh->phase);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && g_sh->verdict == 0)
		pass = true;
	else if (g_sh->verdict != 1)
		printf("  %s: FAIL: the driver exited with status %d without a verdict (a "
		       "sanitizer report?) in: %s\n",
		       label, WIFEXITED(status) ? WEXITSTATUS(status) : -1, g_sh->phase);
	fflush(stdout);
	pass ? n_passed++ : n_failed++;
	reap_leftovers();
}

static int seed_job(void *arg)
{
	return run_seed(*(uint64_t *)arg);
}

static int case_job(void *arg)
{
	return cases[*(size_t *)arg].fn();
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: dag [--seeds A:B] [--seconds S] [--tasks N] [--kill-workers] [--case "
		"NAME]\n"
		"           [--timeout S] [--budget S] [--no-fork] [--verbose] [narrowing "
		"options]\n"
		"  --seeds A:B     run seeds A..B (inclusive; also --seeds A)\n"
		"  --seconds S     run fresh seeds (from the clock) until S seconds have "
		"passed\n"
		"  --tasks N       tasks per graph (default: 200-500, from the seed)\n"
		"  --kill-workers  SIGKILL a random worker every 50-300 ms while a graph runs\n"
		"  --case NAME     run one deterministic case, or 'all' (the default set)\n"
		"  --timeout S     watchdog per seed or case (default 300)\n"
		"  --budget S      how long a graph's results may take in all (default 120)\n"
		"  --no-fork       run in this process (one seed or case only; for debuggers)\n"
		"  --nested N      let a graph's nested trees hold up to N waiting tasks\n"
		"                  (default 16 or 30; more than the node's 56 worker\n"
		"                  processes makes blocked tasks run their own children)\n"
		"To narrow a failure down (the graph of a seed changes with them):\n"
		"  --no-nested     no nested tasks\n"
		"  --no-early-release  keep every ref until the results are checked\n"
		"  --small         every value 0-8 KiB (no store objects, no big argument "
		"sets)\n"
		"  --no-fail       no task fails on purpose\n"
		"With neither --seeds, --seconds nor --case: the default cases and seeds "
		"1:10.\n"
		"Cases:\n");
	for (size_t i = 0; i < NCASES; i++)
		fprintf(f, "  %-18s %s\n", cases[i].name, cases[i].help);
}

/* "seed N", and the mode that changes what it runs: " (kill-workers)", " (nested N)". */
static void seed_label(char *buf, size_t len, uint64_t seed)
{
	char nested[32] = "";
	if (opt.nested)
		snprintf(nested, sizeof(nested), " (nested %d)", opt.nested);
	snprintf(buf, len, "seed %" PRIu64 "%s%s", seed, opt.kill ? " (kill-workers)" : "",
		 nested);
}

int main(int argc, char **argv)
{
	uint64_t seed_a = 1, seed_b = 10;
	bool have_seeds = false;
	double seconds = 0;
	const char *case_name = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--seeds") && v) {
			char *end;
			seed_a = strtoull(v, &end, 0);
			seed_b = *end == ':' ? strtoull(end + 1, &end, 0) : seed_a;
			if (*end || seed_b < seed_a) {
				usage(stderr);
				return 2;
			}
			have_seeds = true;
			i++;
		} else if (!strcmp(a, "--seconds") && v) {
			seconds = atof(v);
			i++;
		} else if (!strcmp(a, "--tasks") && v) {
			opt.tasks = atoi(v);
			i++;
		} else if (!strcmp(a, "--timeout") && v) {
			opt.timeout_s = atoi(v);
			i++;
		} else if (!strcmp(a, "--nested") && v) {
			opt.nested = atoi(v);
			i++;
		} else if (!strcmp(a, "--budget") && v) {
			opt.budget_s = atoi(v);
			i++;
		} else if (!strcmp(a, "--case") && v) {
			case_name = v;
			i++;
		} else if (!strcmp(a, "--kill-workers")) {
			opt.kill = true;
		} else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
			opt.verbose = true;
		} else if (!strcmp(a, "--no-nested")) {
			opt.no_nested = true;
		} else if (!strcmp(a, "--no-early-release")) {
			opt.no_early_release = true;
		} else if (!strcmp(a, "--small")) {
			opt.small = true;
		} else if (!strcmp(a, "--no-fail")) {
			opt.no_fail = true;
		} else if (!strcmp(a, "--no-fork")) {
			opt.no_fork = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (opt.tasks < 0 || opt.timeout_s < 1 || opt.budget_s < 1) {
		usage(stderr);
		return 2;
	}
	if (case_name && strcmp(case_name, "all")) {
		bool found = false;
		for (size_t i = 0; i < NCASES; i++)
			found |= !strcmp(cases[i].name, case_name);
		if (!found) {
			fprintf(stderr, "dag: no case named '%s'\n", case_name);
			usage(stderr);
			return 2;
		}
	}
	bool run_cases = case_name || (!have_seeds && seconds <= 0);
	bool run_seeds = have_seeds || seconds > 0 || !case_name;

	/* digest(expand()) and val_digest() must agree (the model relies on it) */
	for (size_t len = 0; len < 40; len++) {
		uint8_t b[40];
		expand(len * 77 + 1, b, len);
		if (digest(b, len) != val_digest(len * 77 + 1, len) ||
		    (len && b[len - 1] != val_byte(len * 77 + 1, len - 1))) {
			fprintf(stderr, "dag: internal error: digest mismatch at %zu\n", len);
			return 2;
		}
	}

	g_sh = mmap(NULL, sizeof(*g_sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		    0);
	if (g_sh == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	/* so that the node and workers of a crashed driver become ours to clean up */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (opt.no_fork) {
		int jobs = (run_cases ? (case_name && strcmp(case_name, "all") ? 1 : 2) : 0) +
			   (run_seeds ? (seconds > 0 ? 2 : (int)(seed_b - seed_a + 1)) : 0);
		if (jobs != 1) {
			fprintf(stderr, "dag: --no-fork runs one seed or one case only\n");
			return 2;
		}
	}

	if (run_cases)
		for (size_t i = 0; i < NCASES; i++) {
			if (case_name && strcmp(case_name, "all")
				    ? strcmp(cases[i].name, case_name)
				    : !cases[i].by_default)
				continue;
			char label[64];
			snprintf(label, sizeof(label), "case %s", cases[i].name);
			size_t idx = i;
			run_job(label, case_job, &idx);
		}
	if (run_seeds) {
		if (seconds > 0) {
			int64_t end = mono_ns() + (int64_t)(seconds * 1e9);
			uint64_t s = fmix((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20) ^
					  (uint64_t)mono_ns());
			while (mono_ns() < end) {
				uint64_t seed = sm64(&s) % 1000000000000ULL;
				char label[64];
				seed_label(label, sizeof(label), seed);
				run_job(label, seed_job, &seed);
			}
		} else {
			for (uint64_t seed = seed_a; seed <= seed_b; seed++) {
				char label[64];
				seed_label(label, sizeof(label), seed);
				run_job(label, seed_job, &seed);
				if (seed == UINT64_MAX)
					break;
			}
		}
	}
	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed ? 1 : 0;
}
