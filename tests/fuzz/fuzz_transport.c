/* Fuzz the transport's decoders end to end: a live server endpoint reads the input off a
 * real socket.  The first byte picks the backend.  tcp: the input follows a correct
 * token handshake, so it reaches the packet parser and the one-sided request handlers.
 * softverbs: it follows a valid connection request, so it reaches the emulated NIC's
 * packet handlers and, through SENDs, the rc protocol's message and auth parsing.  The
 * server must never crash, and either keep the link or drop it; the descriptor decoder
 * gets the same bytes. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/transport.h"
#include "transport_int.h"

static transport *server[2];
static char addr[2][TRANSPORT_ADDR_MAX];
static uint8_t token[TRANSPORT_TOKEN_BYTES];

static void pump(transport *t, int rounds)
{
	transport_event ev[16];
	for (int i = 0; i < rounds; i++)
		transport_poll(t, ev, 16, 0);
}

static int setup(int which)
{
	if (server[which])
		return 0;
	memset(token, 7, sizeof(token));
	transport_opts o = {.backend = which ? TRANSPORT_SOFTVERBS : TRANSPORT_TCP};
	memcpy(o.token, token, sizeof(token));
	if (transport_create(&o, &server[which]) != 0)
		return -1;
	/* A region a fuzzed READ or WRITE may hit. */
	static uint8_t mem[2][4096];
	transport_mr *mr;
	transport_reg(server[which], mem[which], sizeof(mem[which]),
		      TRANSPORT_REMOTE_READ | TRANSPORT_REMOTE_WRITE, &mr);
	return transport_listen(server[which], "127.0.0.1:0", addr[which], sizeof(addr[which]));
}

static int dial(int which)
{
	struct sockaddr_in sa;
	if (transport__parse_addr(addr[which], &sa) != 0)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The client's half of the token handshake, against the live server. */
static int handshake(int fd)
{
	auth_state a;
	uint8_t hello[AUTH_HELLO_BYTES], in[AUTH_HELLO_BYTES + AUTH_PROOF_BYTES],
		proof[AUTH_PROOF_BYTES];
	auth__init(&a, false);
	auth__hello(&a, TRANSPORT_TCP, hello);
	if (write(fd, hello, sizeof(hello)) != (ssize_t)sizeof(hello))
		return -1;
	size_t got = 0;
	for (int i = 0; i < 100000 && got < sizeof(in); i++) {
		pump(server[0], 1);
		ssize_t r = recv(fd, in + got, sizeof(in) - got, MSG_DONTWAIT);
		if (r > 0)
			got += (size_t)r;
	}
	if (got < sizeof(in) || auth__take_hello(&a, TRANSPORT_TCP, in) != 0 ||
	    auth__check_proof(&a, token, in + AUTH_HELLO_BYTES) != 0)
		return -1;
	auth__proof(&a, token, proof);
	return write(fd, proof, sizeof(proof)) == (ssize_t)sizeof(proof) ? 0 : -1;
}

static int cm_request(int fd)
{
	uint8_t req[32] = {1};
	uint32_t magic = 0x56535250u, aux = 1u << 16 | 16u;
	memcpy(req + 24, &magic, 4);
	memcpy(req + 28, &aux, 4);
	return write(fd, req, sizeof(req)) == (ssize_t)sizeof(req) ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	transport_mr_desc d;
	transport_mr_desc_decode(data, size, &d);
	if (size < 1)
		return 0;
	int which = data[0] & 1;
	if (setup(which) != 0)
		abort();
	int fd = dial(which);
	if (fd < 0)
		abort();
	int rc = which ? cm_request(fd) : handshake(fd);
	if (rc != 0)
		abort();
	/* At most 64 KiB, so a write never blocks on a server that is not reading. */
	size_t n = size - 1 < 65536 ? size - 1 : 65536;
	if (n && write(fd, data + 1, n) < 0)
		abort();
	pump(server[which], 200);
	close(fd);
	pump(server[which], 50);
	return 0;
}
