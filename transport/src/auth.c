/* auth.c — the cluster-token handshake every link runs before anything else.
 *
 * Both sides send a hello (magic, version, backend, a fresh 32-byte nonce), then a proof:
 * HMAC-SHA-256 keyed by the token over a role label, the receiver's nonce and the
 * sender's nonce.  The receiver's fresh nonce makes a recorded proof useless on another
 * link; the role label makes a proof reflected back at its sender fail.  Verification is
 * libsodium's constant-time compare.
 */
#include <sodium.h>
#include <string.h>

#include "base/error.h"
#include "base/wire.h"
#include "transport_int.h"

static const uint8_t auth_magic[8] = {'P', 'R', 'S', 'M', 'L', 'I', 'N', 'K'};
enum { AUTH_VERSION = 1 };

void auth__init(auth_state *a, bool server)
{
	memset(a, 0, sizeof(*a));
	a->server = server;
	randombytes_buf(a->my_nonce, sizeof(a->my_nonce));
}

void auth__hello(const auth_state *a, enum transport_backend b, uint8_t out[AUTH_HELLO_BYTES])
{
	memcpy(out, auth_magic, 8);
	prism_le16_store(out + 8, AUTH_VERSION);
	prism_le16_store(out + 10, (uint16_t)b);
	memcpy(out + 12, a->my_nonce, 32);
}

int auth__take_hello(auth_state *a, enum transport_backend b,
		     const uint8_t in[AUTH_HELLO_BYTES])
{
	if (memcmp(in, auth_magic, 8) != 0)
		return PRISM_E_BAD_MAGIC;
	if (prism_le16_load(in + 8) != AUTH_VERSION)
		return PRISM_E_BAD_VERSION;
	if (prism_le16_load(in + 10) != (uint16_t)b)
		return PRISM_E_PROTO;
	memcpy(a->peer_nonce, in + 12, 32);
	a->got_hello = true;
	return 0;
}

/* HMAC(token, label || receiver nonce || sender nonce). */
static void proof_of(const uint8_t *token, bool sender_is_server, const uint8_t *recv_nonce,
		     const uint8_t *send_nonce, uint8_t out[AUTH_PROOF_BYTES])
{
	static const char label_c[] = "prism-link-client";
	static const char label_s[] = "prism-link-server";
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, token, TRANSPORT_TOKEN_BYTES);
	if (sender_is_server)
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)label_s,
					      sizeof(label_s) - 1);
	else
		crypto_auth_hmacsha256_update(&st, (const uint8_t *)label_c,
					      sizeof(label_c) - 1);
	crypto_auth_hmacsha256_update(&st, recv_nonce, 32);
	crypto_auth_hmacsha256_update(&st, send_nonce, 32);
	crypto_auth_hmacsha256_final(&st, out);
}

void auth__proof(const auth_state *a, const uint8_t *token, uint8_t out[AUTH_PROOF_BYTES])
{
	proof_of(token, a->server, a->peer_nonce, a->my_nonce, out);
}

int auth__check_proof(auth_state *a, const uint8_t *token, const uint8_t in[AUTH_PROOF_BYTES])
{
	uint8_t want[AUTH_PROOF_BYTES];
	if (!a->got_hello)
		return PRISM_E_PROTO;
	proof_of(token, !a->server, a->my_nonce, a->peer_nonce, want);
	int ok = sodium_memcmp(want, in, AUTH_PROOF_BYTES) == 0;
	sodium_memzero(want, sizeof(want));
	if (!ok)
		return PRISM_E_AUTH;
	a->got_proof = true;
	return 0;
}
