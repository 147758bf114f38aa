/* Fuzz a GCS replica's message handling: the input is sent as one transport message (a
 * sequence of chain frames: PUT, GET, REPL, ACK, HELLO, anything) to a live replica over
 * an authenticated link, then, on a second link that first says CHAIN_HELLO, again as a
 * predecessor would.  The replica must never crash: it answers, or drops the link. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/wire.h"
#include "gcs/chain.h"
#include "transport/transport.h"

static gcs_replica *rep;
static transport *cli;
static char addr[TRANSPORT_ADDR_MAX];

/* Poll both ends; *c becomes NULL once its CLOSED event was seen (the handle is dead
 * from then on: the replica drops links that send garbage). */
static void pump(int rounds, transport_conn **c)
{
	transport_event ev[16];
	for (int i = 0; i < rounds; i++) {
		gcs_replica_poll(rep, 0);
		int n = transport_poll(cli, ev, 16, 0);
		for (int k = 0; k < n; k++)
			if (c && ev[k].conn == *c && ev[k].kind == TRANSPORT_EV_CLOSED)
				*c = NULL;
	}
}

static void hang_up(transport_conn *c)
{
	if (c)
		transport_close(c);
	pump(10, NULL);
}

static transport_conn *dial(void)
{
	transport_conn *c;
	if (transport_connect(cli, addr, NULL, &c) != 0)
		abort();
	for (int i = 0; i < 100000; i++) {
		transport_event ev[16];
		gcs_replica_poll(rep, 0);
		int n = transport_poll(cli, ev, 16, 0);
		for (int k = 0; k < n; k++)
			if (ev[k].conn == c && ev[k].kind == TRANSPORT_EV_CONNECTED)
				return c;
	}
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!rep) {
		gcs_replica_opts o = {.backend = TRANSPORT_TCP, .listen = "tcp://127.0.0.1:0"};
		memset(o.token, 3, sizeof(o.token));
		transport_opts to = {.backend = TRANSPORT_TCP};
		memset(to.token, 3, sizeof(to.token));
		if (gcs_replica_create(&o, addr, sizeof(addr), &rep) != 0 ||
		    transport_create(&to, &cli) != 0)
			abort();
	}
	if (size > 65536 || size == 0)
		return 0;
	/* As a client. */
	transport_conn *c = dial();
	if (transport_send(c, data, size, 0, 0) != 0 && size <= TRANSPORT_INLINE_MAX)
		abort();
	pump(50, &c);
	hang_up(c);
	/* As a predecessor. */
	c = dial();
	uint8_t hello[PRISM_WIRE_HDR_SIZE];
	prism_wire_hdr h = {.type = 7};
	prism_wire_encode(hello, sizeof(hello), &h, NULL, NULL);
	transport_send(c, hello, sizeof(hello), 0, 0);
	transport_send(c, data, size, 1, TRANSPORT_SIGNALED);
	pump(50, &c);
	hang_up(c);
	return 0;
}
