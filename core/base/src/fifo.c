/* fifo.c — a growable FIFO of fixed-size elements (see base/fifo.h). */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/fifo.h"

void prism_fifo_init(prism_fifo *q, size_t elem)
{
	*q = (prism_fifo){.elem = elem};
}

void prism_fifo_free(prism_fifo *q)
{
	prism_free(q->buf);
	q->buf = NULL;
	q->len = q->cap = q->head = 0;
}

void *prism_fifo_at(const prism_fifo *q, uint32_t i)
{
	return q->buf + (size_t)((q->head + i) % q->cap) * q->elem;
}

int prism_fifo_push(prism_fifo *q, const void *e)
{
	if (q->len == q->cap) {
		/* 256 to start: a loop's worth of completions. */
		uint32_t cap = q->cap ? q->cap * 2 : 256;
		uint8_t *b = prism_malloc((size_t)cap * q->elem);
		if (!b)
			return -ENOMEM;
		for (uint32_t i = 0; i < q->len; i++)
			memcpy(b + (size_t)i * q->elem, prism_fifo_at(q, i), q->elem);
		prism_free(q->buf);
		q->buf = b;
		q->cap = cap;
		q->head = 0;
	}
	memcpy(q->buf + (size_t)((q->head + q->len) % q->cap) * q->elem, e, q->elem);
	q->len++;
	return 0;
}

bool prism_fifo_pop(prism_fifo *q, void *out)
{
	if (!q->len)
		return false;
	if (out)
		memcpy(out, prism_fifo_at(q, 0), q->elem);
	q->head = (q->head + 1) % q->cap;
	q->len--;
	return true;
}
