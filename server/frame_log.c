#include "frame_log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "wal/walfmt.h"
#include "util.h"
#include "base/clock.h"
#include "base/fileio.h"
#include "metrics.h"

/* Three heads (see frame_log.h, "group commit"): written, the last commit
 * frame write(2) has stored, advanced by the one appender; synced, the last
 * one an fdatasync has covered, advanced by whoever synced; durable, at
 * least synced, and also advanced by an appender that made the frames
 * durable elsewhere (frame_log_declare_durable).  All are published with
 * release semantics after the fact they state, and frames at or below
 * written are never rewritten, so reads need no lock. */
struct frame_log {
	int fd;
	char *path;
	struct walfmt_header hdr;
	uint32_t chain[2]; /* checksum after the written head's frame */
	_Atomic uint32_t written;
	_Atomic uint32_t synced;
	_Atomic uint32_t durable;
	_Atomic uint32_t db_size; /* after the written head */
	atomic_int broken; /* a failed append or sync could not be undone */
	pthread_mutex_t sync_mu;             /* one fdatasync at a time */
	struct metrics_histogram *sync_time; /* NULL: not measured */
};

static void set_err(char *err, size_t n, const char *fmt, const char *path,
		    const char *why)
{
	snprintf(err, n, fmt, path, why);
}

static int write_new_header(struct frame_log *l)
{
	uint8_t buf[WALFMT_HDR_SIZE];
	uint32_t salt[2];
	int rv;

	if (RAND_bytes((unsigned char *)salt, sizeof salt) != 1)
		return -EIO;
	l->hdr.magic = WALFMT_MAGIC_BE;
	l->hdr.page_size = WALFMT_PAGE_SIZE;
	l->hdr.ckpt_seq = 0;
	l->hdr.salt[0] = salt[0];
	l->hdr.salt[1] = salt[1];
	walfmt_header_encode(&l->hdr, buf);
	if (ftruncate(l->fd, 0) != 0)
		return -errno;
	rv = fileio_write_all(l->fd, buf, sizeof buf, 0);
	if (rv == 0 && fsync(l->fd) != 0)
		rv = -errno;
	if (rv == 0)
		rv = fileio_fsync_parent(l->path);
	l->chain[0] = l->hdr.cksum[0];
	l->chain[1] = l->hdr.cksum[1];
	return rv;
}

/* Walk the checksum chain; the head is the last valid commit frame. */
static int recover(struct frame_log *l, uint64_t size)
{
	uint8_t *frame = malloc(WALFMT_FRAME_SIZE);
	uint32_t chain[2] = {l->hdr.cksum[0], l->hdr.cksum[1]};
	uint32_t i, head = 0, db_size = 0;
	uint64_t off;

	if (frame == NULL)
		return -ENOMEM;
	l->chain[0] = chain[0];
	l->chain[1] = chain[1];
	for (i = 1, off = WALFMT_HDR_SIZE; off + WALFMT_FRAME_SIZE <= size;
	     i++, off += WALFMT_FRAME_SIZE) {
		uint32_t commit;
		if (fileio_read_all(l->fd, frame, WALFMT_FRAME_SIZE, off) != 0)
			break;
		if (walfmt_frame_verify(l->hdr.magic & 1, l->hdr.salt, chain,
					frame, WALFMT_PAGE_SIZE) != 0)
			break;
		commit = walfmt_get32(frame + 4);
		if (commit != 0) {
			head = i;
			db_size = commit;
			l->chain[0] = chain[0];
			l->chain[1] = chain[1];
		}
	}
	free(frame);
	atomic_store(&l->written, head);
	atomic_store(&l->synced, head);
	atomic_store(&l->durable, head);
	atomic_store(&l->db_size, db_size);
	if (size != frame_log_offset(head + 1)) {
		if (ftruncate(l->fd, (off_t)frame_log_offset(head + 1)) != 0 ||
		    fsync(l->fd) != 0)
			return -errno;
	}
	return 0;
}

int frame_log_open(const char *path, int create, struct frame_log **out,
		   char *err, size_t err_len)
{
	struct frame_log *l = calloc(1, sizeof *l);
	uint8_t hdr[WALFMT_HDR_SIZE];
	struct stat st;
	int rv;

	if (l == NULL || (l->path = strdup(path)) == NULL) {
		free(l);
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	pthread_mutex_init(&l->sync_mu, NULL);
	l->fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
	if (l->fd < 0) {
		set_err(err, err_len, "cannot open frame log %s: %s", path,
			strerror(errno));
		goto err;
	}
	if (fstat(l->fd, &st) != 0) {
		set_err(err, err_len, "cannot stat frame log %s: %s", path,
			strerror(errno));
		goto err;
	}
	if (st.st_size < WALFMT_HDR_SIZE) {
		/* Only a crash during creation leaves a short file. */
		if (!create && st.st_size > 0) {
			set_err(err, err_len, "frame log %s is truncated (%s)",
				path, "shorter than its 32-byte header");
			goto err;
		}
		rv = write_new_header(l);
		if (rv != 0) {
			set_err(err, err_len,
				"cannot initialise frame log %s: %s", path,
				strerror(-rv));
			goto err;
		}
		*out = l;
		return 0;
	}
	if (fileio_read_all(l->fd, hdr, sizeof hdr, 0) != 0 ||
	    walfmt_header_decode(hdr, &l->hdr) != 0 ||
	    l->hdr.page_size != WALFMT_PAGE_SIZE) {
		set_err(err, err_len, "frame log %s has an invalid header (%s)",
			path, "not a 4096-byte-page WAL file");
		goto err;
	}
	rv = recover(l, (uint64_t)st.st_size);
	if (rv != 0) {
		set_err(err, err_len, "cannot recover frame log %s: %s", path,
			strerror(-rv));
		goto err;
	}
	*out = l;
	return 0;
err:
	frame_log_close(l);
	return -1;
}

void frame_log_close(struct frame_log *l)
{
	if (l == NULL)
		return;
	if (l->fd >= 0)
		close(l->fd);
	pthread_mutex_destroy(&l->sync_mu);
	free(l->path);
	free(l);
}

uint32_t frame_log_head(struct frame_log *l)
{
	return atomic_load_explicit(&l->durable, memory_order_acquire);
}

uint32_t frame_log_written_head(struct frame_log *l)
{
	return atomic_load_explicit(&l->written, memory_order_acquire);
}

uint32_t frame_log_synced_head(struct frame_log *l)
{
	return atomic_load_explicit(&l->synced, memory_order_acquire);
}

/* *head = max(*head, upto), published with release semantics. */
static void advance(_Atomic uint32_t *head, uint32_t upto)
{
	uint32_t cur = atomic_load(head);

	while (upto > cur && !atomic_compare_exchange_weak_explicit(
				 head, &cur, upto, memory_order_release,
				 memory_order_relaxed))
		;
}

/* Under sync_mu, so that fdatasyncs of one log never overlap: of two
 * concurrent ones, Linux reports a write-back error to one only, and the
 * other would advance the durable head over pages that were lost. */
static void mark_synced_locked(struct frame_log *l, uint32_t upto)
{
	assert(upto <= frame_log_written_head(l));
	advance(&l->synced, upto);
	advance(&l->durable, upto);
}

void frame_log_declare_durable(struct frame_log *l)
{
	advance(&l->durable, frame_log_written_head(l));
}

void frame_log_set_sync_histogram(struct frame_log *l,
				  struct metrics_histogram *h)
{
	l->sync_time = h;
}

/* fdatasync, timed into l->sync_time. */
static int timed_fdatasync(struct frame_log *l)
{
	int64_t t0 = clock_monotonic_us();
	int rv = fdatasync(l->fd);

	if (l->sync_time != NULL)
		metrics_histogram_observe(l->sync_time,
					  clock_monotonic_us() - t0);
	return rv;
}

int frame_log_sync(struct frame_log *l)
{
	uint32_t upto;
	int rv = 0;

	pthread_mutex_lock(&l->sync_mu);
	upto = frame_log_written_head(l);
	if (atomic_load(&l->broken)) {
		rv = -EIO;
	} else if (upto > atomic_load(&l->synced) && timed_fdatasync(l) != 0) {
		/* Linux may have dropped the dirty pages it failed to
		 * write: a later fdatasync could succeed without them. */
		rv = -errno;
		atomic_store(&l->broken, 1);
	} else {
		mark_synced_locked(l, upto);
	}
	pthread_mutex_unlock(&l->sync_mu);
	return rv;
}

int frame_log_broken(struct frame_log *l)
{
	return atomic_load(&l->broken);
}

uint32_t frame_log_db_size(struct frame_log *l)
{
	return atomic_load_explicit(&l->db_size, memory_order_acquire);
}

int frame_log_fd(struct frame_log *l)
{
	return l->fd;
}

uint64_t frame_log_offset(uint32_t frame_no)
{
	return walfmt_frame_offset(frame_no, WALFMT_PAGE_SIZE);
}

static int validate(const struct frame_log_entry *e, size_t n)
{
	size_t i;

	if (n == 0 || e[n - 1].db_size == 0)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (e[i].pgno == 0 || e[i].page == NULL)
			return -EINVAL;
	}
	return 0;
}

#define APPEND_CHUNK 64 /* frames per write(2) */

int frame_log_write(struct frame_log *l, const struct frame_log_entry *e,
		    size_t n)
{
	uint32_t head = frame_log_written_head(l);
	uint32_t chain[2] = {l->chain[0], l->chain[1]};
	uint8_t *buf;
	size_t i = 0;
	int rv;

	if (atomic_load(&l->broken))
		return -EIO;
	rv = validate(e, n);
	if (rv != 0)
		return rv;
	buf = malloc((size_t)APPEND_CHUNK * WALFMT_FRAME_SIZE);
	if (buf == NULL)
		return -ENOMEM;
	while (i < n) {
		size_t k, batch = n - i < APPEND_CHUNK ? n - i : APPEND_CHUNK;
		for (k = 0; k < batch; k++) {
			uint8_t *f = buf + k * WALFMT_FRAME_SIZE;
			const struct frame_log_entry *x = &e[i + k];
			walfmt_frame_encode(l->hdr.magic & 1, l->hdr.salt,
					    chain, x->pgno, x->db_size, x->page,
					    WALFMT_PAGE_SIZE, f);
			memcpy(f + WALFMT_FRAME_HDR_SIZE, x->page,
			       WALFMT_PAGE_SIZE);
		}
		rv = fileio_write_all(l->fd, buf, batch * WALFMT_FRAME_SIZE,
				      frame_log_offset(head + 1 + (uint32_t)i));
		if (rv != 0)
			goto fail;
		i += batch;
	}
	l->chain[0] = chain[0];
	l->chain[1] = chain[1];
	atomic_store_explicit(&l->db_size, e[n - 1].db_size,
			      memory_order_release);
	atomic_store_explicit(&l->written, head + (uint32_t)n,
			      memory_order_release);
	free(buf);
	return 0;
fail:
	/* The caller reports this transaction as failed, so it must not
	 * come back at the next open: cut the tail off.  If even that fails
	 * the file's state is unknown and the log refuses further appends. */
	pthread_mutex_lock(&l->sync_mu);
	if (ftruncate(l->fd, (off_t)frame_log_offset(head + 1)) != 0 ||
	    fdatasync(l->fd) != 0)
		atomic_store(&l->broken, 1);
	else
		mark_synced_locked(l, head);
	pthread_mutex_unlock(&l->sync_mu);
	free(buf);
	return rv;
}

int frame_log_append(struct frame_log *l, const struct frame_log_entry *e,
		     size_t n)
{
	int rv = frame_log_write(l, e, n);

	return rv != 0 ? rv : frame_log_sync(l);
}

int frame_log_read(struct frame_log *l, uint32_t start, uint32_t end,
		   uint8_t *buf)
{
	if (start < 1 || end <= start || end > frame_log_written_head(l) + 1)
		return -EINVAL;
	return fileio_read_all(l->fd, buf,
			       (size_t)(end - start) * WALFMT_FRAME_SIZE,
			       frame_log_offset(start));
}

int frame_log_chain(struct frame_log *l, uint32_t start, int *big_endian,
		    uint32_t salt[2], uint32_t chain[2])
{
	uint8_t hdr[WALFMT_FRAME_HDR_SIZE];
	struct walfmt_frame_header f;
	int rv;

	if (start < 1 || start > frame_log_written_head(l) + 1)
		return -EINVAL;
	*big_endian = (int)(l->hdr.magic & 1);
	salt[0] = l->hdr.salt[0];
	salt[1] = l->hdr.salt[1];
	if (start == 1) {
		chain[0] = l->hdr.cksum[0];
		chain[1] = l->hdr.cksum[1];
		return 0;
	}
	rv = fileio_read_all(l->fd, hdr, sizeof hdr,
			     frame_log_offset(start - 1));
	if (rv != 0)
		return rv;
	walfmt_frame_header_decode(hdr, &f);
	chain[0] = f.cksum[0];
	chain[1] = f.cksum[1];
	return 0;
}

/* For each page, the last frame at or before upto that holds it. */
static int last_frames(struct frame_log *l, uint32_t upto, uint32_t **out,
		       uint32_t *n_pages, uint32_t db_size)
{
	uint32_t *last = calloc((size_t)db_size + 1, sizeof *last);
	uint8_t hdr[WALFMT_FRAME_HDR_SIZE];
	uint32_t i;
	int rv;

	if (last == NULL)
		return -ENOMEM;
	for (i = 1; i <= upto; i++) {
		uint32_t pgno;
		rv = fileio_read_all(l->fd, hdr, sizeof hdr,
				     frame_log_offset(i));
		if (rv != 0) {
			free(last);
			return rv;
		}
		pgno = walfmt_get32(hdr);
		if (pgno <= db_size)
			last[pgno] = i;
	}
	*out = last;
	*n_pages = db_size;
	return 0;
}

int frame_log_replay(struct frame_log *l, uint32_t upto, int db_fd)
{
	uint8_t hdr[WALFMT_FRAME_HDR_SIZE];
	uint8_t *page = NULL;
	uint32_t *last = NULL, n_pages, db_size, pgno;
	int rv;

	if (upto == 0 || upto > frame_log_written_head(l))
		return -EINVAL;
	rv = fileio_read_all(l->fd, hdr, sizeof hdr, frame_log_offset(upto));
	if (rv != 0)
		return rv;
	db_size = walfmt_get32(hdr + 4);
	if (db_size == 0)
		return -EINVAL; /* upto is not a commit frame */
	rv = last_frames(l, upto, &last, &n_pages, db_size);
	if (rv != 0)
		return rv;
	page = malloc(WALFMT_PAGE_SIZE);
	if (page == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	for (pgno = 1; pgno <= n_pages; pgno++) {
		if (last[pgno] == 0)
			continue;
		rv = fileio_read_all(l->fd, page, WALFMT_PAGE_SIZE,
				     frame_log_offset(last[pgno]) +
					 WALFMT_FRAME_HDR_SIZE);
		if (rv == 0)
			rv = fileio_write_all(db_fd, page, WALFMT_PAGE_SIZE,
					      (uint64_t)(pgno - 1) *
						  WALFMT_PAGE_SIZE);
		if (rv != 0)
			goto out;
	}
	if (ftruncate(db_fd, (off_t)db_size * WALFMT_PAGE_SIZE) != 0 ||
	    fsync(db_fd) != 0)
		rv = -errno;
out:
	free(page);
	free(last);
	return rv;
}
