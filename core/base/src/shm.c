/* shm.c — memfd segments, fd passing; see base/shm.h. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/shm.h"

#define HUGE_PAGE_SIZE (2u << 20) /* the x86-64 default hugetlbfs page */
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

struct prism_shm {
	void *base;
	size_t size;
	int fd;
};

static size_t round_up(size_t v, size_t to)
{
	return (v + to - 1) / to * to;
}

static int map_fd(int fd, size_t size, unsigned flags, void **base)
{
	int mflags = MAP_SHARED | ((flags & PRISM_SHM_POPULATE) ? MAP_POPULATE : 0);
	int rc = prism_fault_point();
	if (rc)
		return rc;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, mflags, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	*base = p;
	return 0;
}

int prism_shm_create(const char *name, size_t size, unsigned flags, prism_shm **out)
{
	const unsigned known = PRISM_SHM_HUGETLB | PRISM_SHM_POPULATE;
	unsigned mfd = MFD_CLOEXEC | MFD_ALLOW_SEALING;
	int rc;

	if (!out || size == 0 || (flags & ~known))
		return -EINVAL;
	if (flags & PRISM_SHM_HUGETLB) {
		mfd |= MFD_HUGETLB;
		size = round_up(size, HUGE_PAGE_SIZE);
	} else {
		size = round_up(size, (size_t)sysconf(_SC_PAGESIZE));
	}
	prism_shm *seg = prism_calloc(1, sizeof(*seg));
	if (!seg)
		return -ENOMEM;
	rc = prism_fault_point();
	if (rc)
		goto fail_memfd;
	seg->fd = memfd_create(name ? name : "prism", mfd);
	if (seg->fd < 0) {
		rc = -errno;
		goto fail_memfd;
	}
	if (ftruncate(seg->fd, (off_t)size) != 0) {
		rc = -errno;
		goto fail_size;
	}
	/* Reserve every page now.  tmpfs and hugetlbfs both allocate on fallocate, so a
	 * full machine answers here with ENOSPC/ENOMEM instead of a SIGBUS later. */
	rc = prism_fault_point();
	if (rc)
		goto fail_size;
	rc = posix_fallocate(seg->fd, 0, (off_t)size); /* returns the error, not -1 */
	if (rc != 0) {
		rc = rc == ENOSPC ? -ENOMEM : -rc;
		PRISM_LOG_W("shm", "cannot reserve %zu bytes for segment '%s'%s: %s", size,
			    name ? name : "prism",
			    (flags & PRISM_SHM_HUGETLB) ? " in huge pages" : "",
			    prism_strerror(rc));
		goto fail_size;
	}
	if (fcntl(seg->fd, F_ADD_SEALS, SEALS) != 0) {
		rc = -errno;
		goto fail_size;
	}
	rc = map_fd(seg->fd, size, flags, &seg->base);
	if (rc)
		goto fail_size;
	seg->size = size;
	*out = seg;
	return 0;

fail_size:
	close(seg->fd);
fail_memfd:
	prism_free(seg);
	return rc;
}

int prism_shm_attach(int fd, unsigned flags, prism_shm **out)
{
	struct stat st;
	int rc;

	if (!out || fd < 0 || (flags & ~(unsigned)PRISM_SHM_POPULATE))
		return -EINVAL;
	if (fstat(fd, &st) != 0)
		return -errno;
	/* Only a memfd sealed against resizing is safe to map: an ordinary file could be
	 * truncated by its owner and fault us with SIGBUS. */
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 ||
	    (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW) ||
	    st.st_size <= 0)
		return -EINVAL;
	prism_shm *seg = prism_calloc(1, sizeof(*seg));
	if (!seg)
		return -ENOMEM;
	rc = map_fd(fd, (size_t)st.st_size, flags, &seg->base);
	if (rc) {
		prism_free(seg);
		return rc;
	}
	seg->size = (size_t)st.st_size;
	seg->fd = fd;
	*out = seg;
	return 0;
}

void prism_shm_destroy(prism_shm *seg)
{
	if (!seg)
		return;
	munmap(seg->base, seg->size);
	close(seg->fd);
	prism_free(seg);
}

void *prism_shm_base(const prism_shm *seg)
{
	return seg->base;
}

size_t prism_shm_size(const prism_shm *seg)
{
	return seg->size;
}

int prism_shm_fd(const prism_shm *seg)
{
	return seg->fd;
}

void *prism_shm_ptr(const prism_shm *seg, uint64_t off, size_t len)
{
	if (off > seg->size || len > seg->size - off)
		return NULL;
	return (char *)seg->base + off;
}

uint64_t prism_shm_off(const prism_shm *seg, const void *ptr)
{
	return (uint64_t)((const char *)ptr - (const char *)seg->base);
}

int prism_shm_send_fd(int sock, int fd, const void *data, size_t len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	if (!data || len == 0 || len > 4096 || fd < 0)
		return -EINVAL;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	memset(ctl.buf, 0, sizeof(ctl.buf));
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EPIPE || errno == ECONNRESET ? PRISM_E_PIPE : -errno;
	/* Unix stream sockets send a message of at most 4 KiB whole or not at all. */
	return (size_t)n == len ? 0 : PRISM_E_PROTO;
}

/* Close every fd carried by the control message, except the one kept. */
static void close_fds(struct msghdr *msg, int keep)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (f != keep)
				close(f);
		}
	}
}

int prism_shm_recv_fd(int sock, int *fd, void *data, size_t cap, size_t *len)
{
	/* Room for several fds so that a peer sending more than one cannot make us leak
	 * the ones the kernel had to drop (MSG_CTRUNC): we receive and close them. */
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(8 * sizeof(int))];
	} ctl;
	if (!fd || !data || cap == 0)
		return -EINVAL;
	struct iovec iov = {.iov_base = data, .iov_len = cap};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf)};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return PRISM_E_PIPE;
	int got = -1, count = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(sizeof(int)))
			continue;
		count += (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (got < 0)
			memcpy(&got, CMSG_DATA(c), sizeof(int));
	}
	if (count != 1 || (msg.msg_flags & MSG_CTRUNC)) {
		close_fds(&msg, -1);
		return PRISM_E_PROTO;
	}
	*fd = got;
	if (len)
		*len = (size_t)n;
	return 0;
}
