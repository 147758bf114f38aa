/* id.c — id generation, hex print and parse; see base/id.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/id.h"

static uint64_t prefix;
static _Atomic uint64_t counter;
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void reseed(void)
{
	uint64_t p = 0;
	if (getrandom(&p, sizeof(p), GRND_NONBLOCK) != (ssize_t)sizeof(p)) {
		/* No entropy yet (early boot): pid, time and an address still make a prefix
		 * that differs between processes. */
		p = ((uint64_t)getpid() << 32) ^ prism_now_ns() ^ (uint64_t)(uintptr_t)&p;
		p *= 0x9e3779b97f4a7c15ull;
	}
	prefix = p ? p : 1; /* a zero prefix could make a nil id */
	atomic_store(&counter, 0);
}

/* A forked child must not repeat its parent's ids. */
static void seed(void)
{
	reseed();
	pthread_atfork(NULL, NULL, reseed);
}

static void compose(prism_id *id, uint64_t pfx, uint64_t ctr, uint8_t index, uint8_t kind)
{
	memcpy(id->b, &pfx, 8);
	for (int i = 0; i < 6; i++)
		id->b[8 + i] = (uint8_t)(ctr >> (8 * i));
	id->b[14] = index;
	id->b[15] = kind;
}

prism_id prism_id_new(enum prism_id_kind kind)
{
	prism_id id;
	pthread_once(&seed_once, seed);
	/* 48 bits: 2.8e14 ids, ten years at 1M ids/s, before the counter wraps. */
	uint64_t ctr = atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1;
	compose(&id, prefix, ctr, 0, (uint8_t)kind);
	return id;
}

prism_id prism_id_derive(prism_id base, enum prism_id_kind kind, uint8_t index)
{
	base.b[14] = index;
	base.b[15] = (uint8_t)kind;
	return base;
}

char *prism_id_to_hex(prism_id id, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < PRISM_ID_SIZE; i++) {
		out[2 * i] = digits[id.b[i] >> 4];
		out[2 * i + 1] = digits[id.b[i] & 15];
	}
	out[PRISM_ID_HEX_LEN] = '\0';
	return out;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int prism_id_from_hex(const char *hex, prism_id *out)
{
	prism_id id;
	if (!hex || !out)
		return -EINVAL;
	for (int i = 0; i < PRISM_ID_SIZE; i++) {
		int hi = hexval(hex[2 * i]);
		if (hi < 0)
			return -EINVAL; /* also stops at an early NUL */
		int lo = hexval(hex[2 * i + 1]);
		if (lo < 0)
			return -EINVAL;
		id.b[i] = (uint8_t)(hi << 4 | lo);
	}
	if (hex[PRISM_ID_HEX_LEN] != '\0' || id.b[15] > PRISM_ID_KIND_MAX)
		return -EINVAL;
	*out = id;
	return 0;
}
