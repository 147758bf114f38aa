/* peer_pull — a node's daemon serves its objects to peers (objstore/xfer.h), checked
 * end to end: this program attaches to a running node as a driver, puts a 5 MiB object
 * into it, then, acting as another node (its own store and transport endpoint, with the
 * cluster token), pulls the object from the node's peer address and compares the bytes;
 * a missing object fails cleanly.  Usage: peer_pull SOCKET PEER_ADDR TOKEN_FILE.
 * Prints "peer pull: ok" and exits 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/clock.h"
#include "base/error.h"
#include "objstore/objstore.h"
#include "objstore/xfer.h"
#include "prism.h"
#include "transport/transport.h"

#define SIZE (5u << 20)

static int fail(const char *what, int rc)
{
	fprintf(stderr, "peer pull: %s: %s\n", what, prism_strerror(rc));
	prism_shutdown();
	return 1;
}

typedef struct result {
	int calls, status;
} result;

static void on_pulled(void *arg, int status, prism_id id)
{
	(void)id;
	result *r = arg;
	r->calls++;
	r->status = status;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: peer_pull SOCKET PEER_ADDR TOKEN_FILE\n");
		return 2;
	}
	prism_opts po = {.address = argv[1], .log_level = -1};
	int rc = prism_init(&po);
	if (rc)
		return fail("attach", rc);
	uint8_t *data = malloc(SIZE);
	if (!data)
		return fail("malloc", -ENOMEM);
	for (size_t i = 0; i < SIZE; i++)
		data[i] = (uint8_t)(i * 31 + (i >> 16));
	prism_ref ref;
	if ((rc = prism_put(data, SIZE, &ref)) != 0)
		return fail("put", rc);

	/* Another node: its own store and endpoint. */
	size_t arena = 32u << 20, rsize = objstore_region_size(arena, 64);
	void *region =
		mmap(NULL, rsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	objstore *os = NULL;
	transport *t = NULL;
	objstore_xfer *x = NULL;
	transport_opts to = {.backend = TRANSPORT_TCP};
	char why[512];
	if (region == MAP_FAILED || (rc = objstore_format(region, rsize, arena, 64)) != 0 ||
	    (rc = objstore_attach(region, rsize, 0, &os)) != 0)
		return fail("store", rc ? rc : -ENOMEM);
	if ((rc = transport_token_load(argv[3], to.token, why, sizeof(why))) != 0)
		return fail(why, rc);
	if ((rc = transport_create(&to, &t)) != 0 ||
	    (rc = objstore_xfer_create(t, os, region, rsize, &x)) != 0)
		return fail("endpoint", rc);
	transport_conn *c;
	if ((rc = transport_connect(t, argv[2], NULL, &c)) != 0)
		return fail("connect", rc);
	result r = {0}, missing = {0};
	bool asked = false;
	prism_id nothing = ref.id;
	nothing.b[0] ^= 0xff;
	uint64_t end = prism_now_ns() + 20ull * 1000000000ull;
	while (r.calls == 0 || missing.calls == 0) {
		if (prism_now_ns() > end)
			return fail("pull", PRISM_E_TIMEOUT);
		transport_event ev[32];
		int n = transport_poll(t, ev, 32, 1000000);
		for (int i = 0; i < n; i++) {
			if (ev[i].kind == TRANSPORT_EV_CONNECTED && !asked) {
				asked = true;
				if ((rc = objstore_xfer_pull(x, c, ref.id, on_pulled, &r)) !=
					    0 ||
				    (rc = objstore_xfer_pull(x, c, nothing, on_pulled,
							     &missing)) != 0)
					return fail("pull", rc);
			}
			if (ev[i].kind == TRANSPORT_EV_CLOSED)
				return fail("the link closed", ev[i].status);
			objstore_xfer_event(x, &ev[i]);
		}
	}
	if (r.status)
		return fail("pulling the object", r.status);
	if (missing.status != -ENOENT)
		return fail("a missing object should fail with -ENOENT", missing.status);
	const void *got;
	size_t len;
	if ((rc = objstore_get(os, ref.id, &got, &len)) != 0)
		return fail("the pulled object", rc);
	if (len != SIZE || memcmp(got, data, SIZE) != 0)
		return fail("the pulled bytes differ", PRISM_E_CORRUPT);
	objstore_release(os, ref.id);
	objstore_xfer_destroy(x);
	transport_destroy(t);
	objstore_detach(os);
	munmap(region, rsize);
	prism_ref_release(ref);
	free(data);
	prism_shutdown();
	printf("peer pull: ok (%u bytes)\n", SIZE);
	return 0;
}
