/* base/fifo.h — a FIFO of fixed-size elements that doubles as it fills.
 *
 * For queues whose length is bounded by what is outstanding (completion events, requests
 * in flight): pushes allocate only when the queue outgrows every earlier size, so a steady
 * state never allocates.  Elements are copied in and out; prism_fifo_at() names one in
 * place (valid until the next push or pop).
 *
 * Ownership: the caller owns the struct; prism_fifo_free() releases the storage.  Thread
 * safety: none.  Errors: prism_fifo_push() returns 0 or -ENOMEM (the queue is unchanged).
 */
#ifndef PRISM_BASE_FIFO_H
#define PRISM_BASE_FIFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fields may be read (len: the number of elements); change them only through the calls. */
typedef struct prism_fifo {
	uint8_t *buf;
	size_t elem;
	uint32_t head, len, cap;
} prism_fifo;

PRISM_API void prism_fifo_init(prism_fifo *q, size_t elem);
PRISM_API void prism_fifo_free(prism_fifo *q);
/* Append a copy of *e. */
PRISM_API int prism_fifo_push(prism_fifo *q, const void *e);
/* The i-th element from the head (i < len). */
PRISM_API void *prism_fifo_at(const prism_fifo *q, uint32_t i);
/* Remove the head into *out (may be NULL); false when empty. */
PRISM_API bool prism_fifo_pop(prism_fifo *q, void *out);

#ifdef __cplusplus
}
#endif
#endif
