/* base/shm.h — shared-memory segments that other processes can map.
 *
 * A segment is a memfd (or, with PRISM_SHM_HUGETLB, a memfd on hugetlbfs) sized once,
 * mapped MAP_SHARED, and sealed against growing and shrinking so no process that holds
 * the fd can truncate it under the others.  Its memory is reserved up front with
 * fallocate(): running out of memory (or of huge pages) is an error code from
 * prism_shm_create(), never a SIGBUS on first touch later.
 *
 * Other processes get the fd over a Unix socket (prism_shm_send_fd/prism_shm_recv_fd,
 * SCM_RIGHTS) and map it with prism_shm_attach(), usually at a different address: so
 * everything stored inside a segment refers to other places in it by offset, never by
 * pointer (prism_shm_ptr/prism_shm_off convert).
 *
 * Ownership: a prism_shm owns its mapping and its fd; prism_shm_destroy() unmaps and
 * closes both (the memory itself lives until the last process unmaps it).  Handles are
 * not thread-safe to destroy while in use; reading and writing the mapped memory is the
 * caller's business.  Errors: negative codes (base/error.h).
 */
#ifndef PRISM_BASE_SHM_H
#define PRISM_BASE_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "base/api.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct prism_shm prism_shm;

enum prism_shm_flags {
	/* Back the segment with huge pages (2 MiB): fewer TLB misses for the object arena,
	 * and the memory RDMA NICs register best.  Needs reserved huge pages
	 * (/proc/sys/vm/nr_hugepages); without them creation fails with -ENOMEM. */
	PRISM_SHM_HUGETLB = 1u << 0,
	/* Pre-fault the pages at map time (MAP_POPULATE) so the first touch on a hot path
	 * does not take a page fault. */
	PRISM_SHM_POPULATE = 1u << 1,
};

/* Create a segment of at least `size` bytes (rounded up to the page size, or to the huge
 * page size with PRISM_SHM_HUGETLB).  `name` is for /proc/PID/fd and debugging only.
 * Errors: -EINVAL (size 0 or a bad flag), -ENOMEM/-ENOSPC (the memory could not be
 * reserved), other -errno from memfd_create/mmap. */
int prism_shm_create(const char *name, size_t size, unsigned flags, prism_shm **out);

/* Map a segment received from another process.  Takes ownership of `fd` on success only.
 * The size comes from the fd itself.  Errors: -EINVAL (not a prism segment: an fd that is
 * not a sealed memfd, or of size 0), -errno from fstat/mmap. */
int prism_shm_attach(int fd, unsigned flags, prism_shm **out);

/* Unmap and close.  NULL-safe. */
void prism_shm_destroy(prism_shm *seg);

void *prism_shm_base(const prism_shm *seg);
size_t prism_shm_size(const prism_shm *seg);
/* The segment's fd, still owned by the segment: dup() it to keep it. */
int prism_shm_fd(const prism_shm *seg);

/* Offset <-> pointer.  prism_shm_ptr returns NULL when off + len runs past the end, so a
 * corrupt offset read from shared memory cannot point outside the segment. */
void *prism_shm_ptr(const prism_shm *seg, uint64_t off, size_t len);
uint64_t prism_shm_off(const prism_shm *seg, const void *ptr);

/* Send `fd` with `len` bytes of data (1 to 4096; a stream socket needs at least one byte
 * to carry ancillary data) over a connected Unix socket.  Does not close fd. */
int prism_shm_send_fd(int sock, int fd, const void *data, size_t len);
/* Receive one fd and up to `cap` bytes.  The received fd is close-on-exec; *fd is owned by
 * the caller.  Errors: PRISM_E_PIPE when the peer closed, PRISM_E_PROTO when the message
 * carried no fd or more than one (extras are closed), -errno otherwise. */
int prism_shm_recv_fd(int sock, int *fd, void *data, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
