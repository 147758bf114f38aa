/* wal.c — the write-ahead log (see gcs/wal.h). */
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/wire.h"
#include "gcs/wal.h"
#include "gcs_int.h"

#define LOGM "gcs"

static const uint8_t wal_magic[8] = {'P', 'R', 'S', 'M', 'W', 'A', 'L', '1'};
enum { WAL_VERSION = 1, WAL_HDR = 16, ENT_HDR = 16 };

struct gcs_wal {
	char *path;
	int fd;
	struct io_uring ring;
	uint8_t *buf;
	size_t len, cap;
	uint64_t off; /* where the next batch goes */
	uint64_t last_seq, durable_seq;
};

static uint32_t entry_crc(uint64_t seq, const void *payload, size_t len)
{
	uint8_t s[8];
	prism_le64_store(s, seq);
	return prism_crc32c(prism_crc32c(0, s, 8), payload, len);
}

static int write_header(int fd)
{
	uint8_t h[WAL_HDR] = {0};
	memcpy(h, wal_magic, 8);
	prism_le32_store(h + 8, WAL_VERSION);
	if (pwrite(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -EIO;
	return fdatasync(fd) ? -errno : 0;
}

/* Walk the entries of a mapped log, replaying the intact prefix. */
static int scan(const uint8_t *p, size_t size, gcs_wal_replay_cb cb, void *arg,
		gcs_wal_info *info)
{
	size_t o = WAL_HDR;
	uint64_t expect = 0;
	while (o < size) {
		int bad = 0;
		uint32_t len = 0;
		if (size - o < ENT_HDR) {
			bad = PRISM_E_TRUNCATED;
		} else {
			len = prism_le32_load(p + o);
			uint64_t seq = prism_le64_load(p + o + 8);
			if (len > GCS_WAL_ENTRY_MAX)
				bad = PRISM_E_CORRUPT;
			else if (size - o - ENT_HDR < len)
				bad = PRISM_E_TRUNCATED;
			else if (entry_crc(seq, p + o + ENT_HDR, len) !=
				 prism_le32_load(p + o + 4))
				bad = PRISM_E_CORRUPT;
			else if (expect && seq != expect)
				bad = PRISM_E_CORRUPT;
			if (!bad) {
				if (cb) {
					int rc = cb(seq, p + o + ENT_HDR, len, arg);
					if (rc)
						return rc;
				}
				if (!info->entries)
					info->first_seq = seq;
				info->entries++;
				info->last_seq = seq;
				expect = seq + 1;
			}
		}
		if (bad) {
			info->tail_status = bad;
			info->tail_offset = o;
			info->tail_bytes = size - o;
			return 0;
		}
		o += ENT_HDR + len;
	}
	info->tail_offset = o;
	return 0;
}

static int replay(gcs_wal *w, unsigned flags, gcs_wal_replay_cb cb, void *arg,
		  gcs_wal_info *info)
{
	struct stat st;
	if (fstat(w->fd, &st) != 0)
		return -errno;
	size_t size = (size_t)st.st_size;
	if (size == 0) {
		w->off = WAL_HDR;
		return write_header(w->fd);
	}
	if (size < WAL_HDR)
		return PRISM_E_TRUNCATED;
	uint8_t *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, w->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	int rc = 0;
	if (memcmp(p, wal_magic, 8) != 0)
		rc = PRISM_E_BAD_MAGIC;
	else if (prism_le32_load(p + 8) != WAL_VERSION)
		rc = PRISM_E_BAD_VERSION;
	else
		rc = scan(p, size, cb, arg, info);
	munmap(p, size);
	if (rc)
		return rc;
	w->off = info->tail_offset;
	w->last_seq = w->durable_seq = info->last_seq;
	if (!info->tail_status)
		return 0;
	PRISM_LOG(PRISM_LOG_WARN, LOGM,
		  "%s: %s at byte %llu after %llu good entries (last seq %llu); %llu bytes "
		  "follow",
		  w->path, prism_strerror(info->tail_status),
		  (unsigned long long)info->tail_offset, (unsigned long long)info->entries,
		  (unsigned long long)info->last_seq, (unsigned long long)info->tail_bytes);
	if (!(flags & GCS_WAL_TRUNCATE_TAIL))
		return info->tail_status;
	if (ftruncate(w->fd, (off_t)info->tail_offset) != 0 || fdatasync(w->fd) != 0)
		return -errno;
	PRISM_LOG(PRISM_LOG_WARN, LOGM, "%s: cut the damaged tail (%llu bytes)", w->path,
		  (unsigned long long)info->tail_bytes);
	return 0;
}

int gcs_wal_open(const char *path, unsigned flags, gcs_wal_replay_cb cb, void *arg,
		 gcs_wal_info *info, gcs_wal **out)
{
	gcs_wal_info scratch;
	*out = NULL;
	if (!info)
		info = &scratch;
	memset(info, 0, sizeof(*info));
	if (!path || (flags & ~GCS_WAL_TRUNCATE_TAIL))
		return -EINVAL;
	gcs_wal *w = prism_calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int rc = -ENOMEM;
	w->path = prism_strdup(path);
	if (!w->path)
		goto fail_path;
	w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		rc = -errno;
		goto fail_open;
	}
	rc = io_uring_queue_init(8, &w->ring, 0);
	if (rc < 0)
		goto fail_ring;
	rc = replay(w, flags, cb, arg, info);
	if (rc)
		goto fail_replay;
	*out = w;
	return 0;
fail_replay:
	io_uring_queue_exit(&w->ring);
fail_ring:
	close(w->fd);
fail_open:
	prism_free(w->path);
fail_path:
	prism_free(w);
	return rc;
}

void gcs_wal_close(gcs_wal *w)
{
	if (!w)
		return;
	gcs_wal_sync(w);
	io_uring_queue_exit(&w->ring);
	close(w->fd);
	prism_free(w->buf);
	prism_free(w->path);
	prism_free(w);
}

int gcs_wal_append(gcs_wal *w, uint64_t seq, const void *payload, size_t len)
{
	if (len > GCS_WAL_ENTRY_MAX)
		return PRISM_E_TOO_BIG;
	if ((w->last_seq && seq != w->last_seq + 1) || (len && !payload))
		return -EINVAL;
	if (w->len + ENT_HDR + len > w->cap) {
		size_t cap = w->cap ? w->cap : 64u << 10;
		while (cap < w->len + ENT_HDR + len)
			cap *= 2;
		uint8_t *b = prism_realloc(w->buf, cap);
		if (!b)
			return -ENOMEM;
		w->buf = b;
		w->cap = cap;
	}
	uint8_t *e = w->buf + w->len;
	prism_le32_store(e, (uint32_t)len);
	prism_le32_store(e + 4, entry_crc(seq, payload, len));
	prism_le64_store(e + 8, seq);
	if (len)
		memcpy(e + ENT_HDR, payload, len);
	w->len += ENT_HDR + len;
	w->last_seq = seq;
	return 0;
}

int gcs_wal_sync(gcs_wal *w)
{
	if (!w->len)
		return 0;
	struct io_uring_sqe *wr = io_uring_get_sqe(&w->ring);
	struct io_uring_sqe *fs = io_uring_get_sqe(&w->ring);
	if (!wr || !fs)
		return -EBUSY;
	io_uring_prep_write(wr, w->fd, w->buf, (unsigned)w->len, w->off);
	wr->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(wr, 1);
	io_uring_prep_fsync(fs, w->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(fs, 2);
	int rc = io_uring_submit_and_wait(&w->ring, 2);
	if (rc < 0)
		return rc;
	int status = 0;
	for (int i = 0; i < 2; i++) {
		struct io_uring_cqe *cqe;
		rc = io_uring_wait_cqe(&w->ring, &cqe);
		if (rc < 0)
			return rc;
		if (cqe->res < 0 && !status)
			status = cqe->res;
		else if (io_uring_cqe_get_data64(cqe) == 1 && (size_t)cqe->res != w->len &&
			 !status)
			status = -EIO; /* a short write: the link cancelled the sync */
		io_uring_cqe_seen(&w->ring, cqe);
	}
	if (status)
		return status;
	w->off += w->len;
	w->len = 0;
	w->durable_seq = w->last_seq;
	return 0;
}

uint64_t gcs_wal_last_seq(const gcs_wal *w)
{
	return w->last_seq;
}

uint64_t gcs_wal_durable_seq(const gcs_wal *w)
{
	return w->durable_seq;
}

int gcs_wal_reset(gcs_wal *w, uint64_t seq)
{
	int rc = gcs_wal_sync(w);
	if (rc)
		return rc;
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", w->path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = write_header(fd);
	if (rc == 0 && rename(tmp, w->path) != 0)
		rc = -errno;
	if (rc) {
		close(fd);
		unlink(tmp);
		return rc;
	}
	close(w->fd);
	w->fd = fd;
	w->off = WAL_HDR;
	rc = gcs__sync_dir(w->path);
	if (rc)
		return rc;
	w->last_seq = w->durable_seq = seq;
	return 0;
}
