/* Shared-memory segments: reservation, sealing, attach at another address, fd passing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/shm.h"

Test(shm, create_rounds_up_and_maps)
{
	prism_shm *seg = NULL;
	cr_assert_eq(prism_shm_create("t", 5000, 0, &seg), 0);
	cr_assert_eq(prism_shm_size(seg), 8192);
	memset(prism_shm_base(seg), 0xab, prism_shm_size(seg));
	cr_assert_eq(((unsigned char *)prism_shm_base(seg))[8191], 0xab);
	prism_shm_destroy(seg);
	prism_shm_destroy(NULL);
}

Test(shm, bad_arguments)
{
	prism_shm *seg = NULL;
	cr_assert_eq(prism_shm_create("t", 0, 0, &seg), -EINVAL);
	cr_assert_eq(prism_shm_create("t", 4096, 1u << 7, &seg), -EINVAL);
	cr_assert_eq(prism_shm_create("t", 4096, 0, NULL), -EINVAL);
	cr_assert_eq(prism_shm_attach(-1, 0, &seg), -EINVAL);
}

Test(shm, sealed_against_resizing)
{
	prism_shm *seg = NULL;
	cr_assert_eq(prism_shm_create("t", 4096, 0, &seg), 0);
	cr_assert_eq(ftruncate(prism_shm_fd(seg), 0), -1, "shrinking must be refused");
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(ftruncate(prism_shm_fd(seg), 1 << 20), -1, "growing must be refused");
	prism_shm_destroy(seg);
}

Test(shm, attach_rejects_files_that_are_not_sealed_segments)
{
	prism_shm *seg = NULL;
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(prism_shm_attach(p[0], 0, &seg), -EINVAL);
	int mfd = memfd_create("unsealed", MFD_CLOEXEC);
	cr_assert_eq(ftruncate(mfd, 4096), 0);
	cr_assert_eq(prism_shm_attach(mfd, 0, &seg), -EINVAL,
		     "an unsealed memfd could be truncated under us");
	close(mfd);
	close(p[0]);
	close(p[1]);
}

Test(shm, attach_in_same_process_sees_same_bytes_at_another_address)
{
	prism_shm *a = NULL, *b = NULL;
	cr_assert_eq(prism_shm_create("t", 1 << 16, PRISM_SHM_POPULATE, &a), 0);
	cr_assert_eq(prism_shm_attach(dup(prism_shm_fd(a)), 0, &b), 0);
	cr_assert_neq(prism_shm_base(a), prism_shm_base(b));
	cr_assert_eq(prism_shm_size(b), 1 << 16);
	strcpy(prism_shm_ptr(a, 1000, 6), "hello");
	cr_assert_str_eq(prism_shm_ptr(b, 1000, 6), "hello");
	cr_assert_eq(prism_shm_off(b, prism_shm_ptr(b, 1000, 6)), 1000);
	cr_assert_null(prism_shm_ptr(b, (1 << 16) - 2, 6), "range past the end");
	cr_assert_null(prism_shm_ptr(b, UINT64_MAX, 1), "offset overflow");
	prism_shm_destroy(b);
	prism_shm_destroy(a);
}

Test(shm, fd_passes_to_another_process_which_maps_elsewhere, .timeout = 30)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	prism_shm *seg = NULL;
	cr_assert_eq(prism_shm_create("pass", 1 << 20, 0, &seg), 0);
	void *parent_base = prism_shm_base(seg);
	pid_t pid = fork();
	if (pid == 0) {
		/* Child: forget the inherited mapping, take the fd from the socket. */
		prism_shm_destroy(seg);
		char tag[8];
		size_t len = 0;
		int fd = -1;
		if (prism_shm_recv_fd(sv[1], &fd, tag, sizeof(tag), &len) != 0 || len != 4)
			_exit(2);
		prism_shm *mine = NULL;
		if (prism_shm_attach(fd, 0, &mine) != 0)
			_exit(3);
		unsigned char *p = prism_shm_base(mine);
		for (size_t i = 0; i < prism_shm_size(mine); i++)
			p[i] = (unsigned char)(i * 7);
		int moved = prism_shm_base(mine) != parent_base;
		/* Report the child's address through the segment itself. */
		memcpy(p, &moved, sizeof(moved));
		prism_shm_destroy(mine);
		_exit(0);
	}
	cr_assert_eq(prism_shm_send_fd(sv[0], prism_shm_fd(seg), "SEG1", 4), 0);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	unsigned char *p = parent_base;
	for (size_t i = sizeof(int); i < prism_shm_size(seg); i++)
		cr_assert_eq(p[i], (unsigned char)(i * 7), "byte %zu", i);
	prism_shm_destroy(seg);
	close(sv[0]);
	close(sv[1]);
}

Test(shm, recv_fd_rejects_plain_data_closed_peer_and_extra_fds)
{
	int sv[2], fd = -1;
	char buf[16];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(write(sv[0], "x", 1), 1);
	cr_assert_eq(prism_shm_recv_fd(sv[1], &fd, buf, sizeof(buf), NULL), PRISM_E_PROTO);

	/* Two fds in one message: refused, and both closed on our side. */
	int two[2] = {dup(0), dup(0)};
	union {
		struct cmsghdr a;
		char b[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = "y", .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), two, sizeof(two));
	cr_assert_eq(sendmsg(sv[0], &msg, 0), 1);
	int before = dup(0);
	close(before); /* the lowest free fd number now */
	cr_assert_eq(prism_shm_recv_fd(sv[1], &fd, buf, sizeof(buf), NULL), PRISM_E_PROTO);
	int after = dup(0);
	cr_assert_eq(after, before, "received fds must be closed, not leaked");
	close(after);
	close(two[0]);
	close(two[1]);

	close(sv[0]);
	cr_assert_eq(prism_shm_recv_fd(sv[1], &fd, buf, sizeof(buf), NULL), PRISM_E_PIPE);
	close(sv[1]);
}

static long hugepages_free(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "HugePages_Free: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

Test(shm, exhausted_reservation_is_an_error_not_sigbus)
{
	/* Ask for one more huge page than the machine has free: the reservation must
	 * fail at create time.  (With plain pages the same path cannot be tested safely:
	 * exhausting RAM would wake the OOM killer.) */
	long free_pages = hugepages_free();
	if (free_pages < 0)
		cr_skip_test("no HugePages_Free in /proc/meminfo");
	prism_shm *seg = NULL;
	size_t size = ((size_t)free_pages + 1) * (2u << 20);
	int rc = prism_shm_create("huge", size, PRISM_SHM_HUGETLB, &seg);
	cr_assert_lt(rc, 0, "reserving %zu bytes of huge pages must fail", size);
	cr_assert_null(seg);
}

Test(shm, fault_injection_every_failure_returns_an_error)
{
	int n;
	for (n = 1; n < 100; n++) {
		prism_shm *a = NULL, *b = NULL;
		prism_fault_arm(n);
		int rc = prism_shm_create("fi", 1 << 16, 0, &a);
		if (rc == 0) {
			int fd = dup(prism_shm_fd(a));
			rc = prism_shm_attach(fd, 0, &b);
			if (rc != 0)
				close(fd);
		}
		bool fired = prism_fault_fired();
		prism_fault_arm(0);
		prism_shm_destroy(b);
		prism_shm_destroy(a);
		if (!fired) {
			cr_assert_eq(rc, 0);
			break;
		}
		cr_assert_lt(rc, 0, "injected failure %d was swallowed", n);
	}
	cr_assert_gt(n, 2, "the injector must reach several fault points");
	cr_assert_lt(n, 100);
}
