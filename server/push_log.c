#include "push_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/fileio.h"
#include "wal/walfmt.h"

#define HEADER_SIZE 64
#define MAGIC_V1 "RPL1" /* no frames, no flags */
#define MAGIC_V2 "RPL2"
#define FLAG_FRAMES 1u
#define FLAG_DROPPED 2u
/* A sanity bound on one entry's frames (a push is at most --max-body). */
#define MAX_FRAMES (1u << 20)

struct entry {
	struct push_log_record r;
	uint64_t off; /* of its header */
	uint32_t flags;
	int punched;
};

/* Appends, cancels and drops are serialised by the caller and do their I/O
 * outside mu; mu guards the entries, which lookups and releases read from
 * other threads. */
struct push_log {
	int fd;
	pthread_mutex_t mu;
	struct entry *e;
	size_t n;
	size_t cap;
	size_t
	    released;  /* entries before this one are punched or need not be */
	uint64_t size; /* where the next entry goes */
	_Atomic uint64_t synced;
	atomic_int broken;
};

static void put64(uint8_t *p, uint64_t v)
{
	walfmt_put32(p, (uint32_t)(v >> 32));
	walfmt_put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)walfmt_get32(p) << 32 | walfmt_get32(p + 4);
}

static uint32_t n_frames(const struct push_log_record *r)
{
	return r->last - r->first + 1;
}

/* Bytes of the entry: its header and, when kept, its frames. */
static uint64_t entry_size(const struct push_log_record *r, uint32_t flags)
{
	return HEADER_SIZE + ((flags & FLAG_FRAMES)
				  ? (uint64_t)n_frames(r) * WALFMT_FRAME_SIZE
				  : 0);
}

static void encode(const struct push_log_record *r, uint32_t flags,
		   uint8_t out[HEADER_SIZE])
{
	memset(out, 0, HEADER_SIZE);
	memcpy(out, MAGIC_V2, 4);
	memcpy(out + 4, r->id, PUSH_LOG_ID_SIZE);
	walfmt_put32(out + 20, r->first);
	walfmt_put32(out + 24, r->last);
	walfmt_put32(out + 28, flags);
	put64(out + 32, r->digest);
	put64(out + 40, (uint64_t)r->unix_ms);
	put64(out + 56, XXH3_64bits(out, 56));
}

/* 0 when in holds a valid header. */
static int decode(const uint8_t in[HEADER_SIZE], struct push_log_record *r,
		  uint32_t *flags)
{
	int v1 = memcmp(in, MAGIC_V1, 4) == 0;

	if ((!v1 && memcmp(in, MAGIC_V2, 4) != 0) ||
	    get64(in + 56) != XXH3_64bits(in, 56))
		return -1;
	memcpy(r->id, in + 4, PUSH_LOG_ID_SIZE);
	r->first = walfmt_get32(in + 20);
	r->last = walfmt_get32(in + 24);
	r->digest = get64(in + 32);
	r->unix_ms = (int64_t)get64(in + 40);
	*flags = v1 ? 0 : walfmt_get32(in + 28);
	return r->first >= 1 && r->last >= r->first &&
		       r->last - r->first < MAX_FRAMES &&
		       (*flags & ~(FLAG_FRAMES | FLAG_DROPPED)) == 0
		   ? 0
		   : -1;
}

static int add_locked(struct push_log *pl, const struct push_log_record *r,
		      uint64_t off, uint32_t flags)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 64;
		struct entry *grown = realloc(pl->e, cap * sizeof *grown);
		if (grown == NULL)
			return -ENOMEM;
		pl->e = grown;
		pl->cap = cap;
	}
	pl->e[pl->n].r = *r;
	pl->e[pl->n].off = off;
	pl->e[pl->n].flags = flags;
	pl->e[pl->n].punched = 0;
	pl->n++;
	return 0;
}

/* Load the entries; the first invalid or incomplete one and everything
 * after it (a torn append) are cut off, durably. */
static int load(struct push_log *pl, const char *path, char *err,
		size_t err_len)
{
	uint8_t buf[HEADER_SIZE];
	struct push_log_record r;
	struct stat st;
	uint64_t off = 0, size;
	uint32_t flags;
	int rv;

	if (fstat(pl->fd, &st) != 0) {
		snprintf(err, err_len, "cannot stat %s: %s", path,
			 strerror(errno));
		return -1;
	}
	size = (uint64_t)st.st_size;
	while (off + HEADER_SIZE <= size) {
		rv = fileio_read_all(pl->fd, buf, sizeof buf, off);
		if (rv != 0) {
			snprintf(err, err_len, "cannot read %s: %s", path,
				 strerror(-rv));
			return -1;
		}
		if (decode(buf, &r, &flags) != 0 ||
		    off + entry_size(&r, flags) > size)
			break;
		if (add_locked(pl, &r, off, flags) != 0) {
			snprintf(err, err_len, "out of memory");
			return -1;
		}
		off += entry_size(&r, flags);
	}
	if (off != size &&
	    (ftruncate(pl->fd, (off_t)off) != 0 || fdatasync(pl->fd) != 0)) {
		snprintf(err, err_len, "cannot truncate %s: %s", path,
			 strerror(errno));
		return -1;
	}
	pl->size = off;
	atomic_store(&pl->synced, off);
	return 0;
}

int push_log_open(const char *path, struct push_log **out, char *err,
		  size_t err_len)
{
	struct push_log *pl = calloc(1, sizeof *pl);

	if (pl == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	pthread_mutex_init(&pl->mu, NULL);
	pl->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (pl->fd < 0) {
		snprintf(err, err_len, "cannot open %s: %s", path,
			 strerror(errno));
		push_log_close(pl);
		return -1;
	}
	if (load(pl, path, err, err_len) != 0) {
		push_log_close(pl);
		return -1;
	}
	*out = pl;
	return 0;
}

void push_log_close(struct push_log *pl)
{
	if (pl == NULL)
		return;
	if (pl->fd >= 0)
		close(pl->fd);
	pthread_mutex_destroy(&pl->mu);
	free(pl->e);
	free(pl);
}

int push_log_broken(struct push_log *pl)
{
	return atomic_load(&pl->broken);
}

/* Cut the file back to size, durably; if that fails its content is unknown
 * and the log takes no more appends. */
static int cut_back(struct push_log *pl, uint64_t size)
{
	if (ftruncate(pl->fd, (off_t)size) != 0 || fdatasync(pl->fd) != 0) {
		atomic_store(&pl->broken, 1);
		return -errno;
	}
	atomic_store(&pl->synced, size);
	return 0;
}

static int append(struct push_log *pl, const struct push_log_record *r,
		  const uint8_t *frames)
{
	uint32_t flags = frames != NULL ? FLAG_FRAMES : 0;
	uint8_t buf[HEADER_SIZE];
	uint64_t off = pl->size;
	int rv;

	if (atomic_load(&pl->broken))
		return -EIO;
	if (r->first < 1 || r->last < r->first ||
	    r->last - r->first >= MAX_FRAMES)
		return -EINVAL;
	encode(r, flags, buf);
	rv = fileio_write_all(pl->fd, buf, sizeof buf, off);
	if (rv == 0 && frames != NULL)
		rv = fileio_write_all(pl->fd, frames,
				      (size_t)n_frames(r) * WALFMT_FRAME_SIZE,
				      off + HEADER_SIZE);
	if (rv == 0 && fdatasync(pl->fd) != 0)
		rv = -errno;
	if (rv == 0) {
		pthread_mutex_lock(&pl->mu);
		rv = add_locked(pl, r, off, flags);
		pthread_mutex_unlock(&pl->mu);
	}
	if (rv != 0) {
		/* The caller answers the push as failed: it must not come
		 * back at the next start. */
		cut_back(pl, off);
		return rv;
	}
	pl->size = off + entry_size(r, flags);
	atomic_store(&pl->synced, pl->size);
	return 0;
}

int push_log_append_frames(struct push_log *pl, const struct push_log_record *r,
			   const uint8_t *frames)
{
	return append(pl, r, frames);
}

int push_log_append(struct push_log *pl, const struct push_log_record *r)
{
	return append(pl, r, NULL);
}

int push_log_cancel_last(struct push_log *pl)
{
	uint64_t off;
	int rv;

	if (pl->n == 0)
		return -EINVAL;
	off = pl->e[pl->n - 1].off;
	rv = cut_back(pl, off);
	if (rv != 0)
		return rv;
	pthread_mutex_lock(&pl->mu);
	pl->n--;
	if (pl->released > pl->n)
		pl->released = pl->n;
	pthread_mutex_unlock(&pl->mu);
	pl->size = off;
	return 0;
}

int push_log_find(struct push_log *pl, const uint8_t id[PUSH_LOG_ID_SIZE],
		  struct push_log_record *out)
{
	size_t i;
	int found = 0;

	pthread_mutex_lock(&pl->mu);
	for (i = pl->n; i > 0 && !found; i--) {
		const struct entry *e = &pl->e[i - 1];
		if (!(e->flags & FLAG_DROPPED) &&
		    memcmp(e->r.id, id, PUSH_LOG_ID_SIZE) == 0) {
			*out = e->r;
			found = 1;
		}
	}
	pthread_mutex_unlock(&pl->mu);
	return found;
}

size_t push_log_count(struct push_log *pl)
{
	return pl->n;
}

void push_log_entry(struct push_log *pl, size_t i, struct push_log_record *r,
		    int *has_frames, int *dropped)
{
	pthread_mutex_lock(&pl->mu);
	*r = pl->e[i].r;
	*has_frames = (pl->e[i].flags & FLAG_FRAMES) && !pl->e[i].punched;
	*dropped = (pl->e[i].flags & FLAG_DROPPED) != 0;
	pthread_mutex_unlock(&pl->mu);
}

int push_log_read_frames(struct push_log *pl, size_t i, uint8_t *buf)
{
	struct entry e;

	pthread_mutex_lock(&pl->mu);
	e = pl->e[i];
	pthread_mutex_unlock(&pl->mu);
	if (!(e.flags & FLAG_FRAMES) || e.punched)
		return -ENOENT;
	return fileio_read_all(pl->fd, buf,
			       (size_t)n_frames(&e.r) * WALFMT_FRAME_SIZE,
			       e.off + HEADER_SIZE);
}

int push_log_drop(struct push_log *pl, size_t i)
{
	uint8_t buf[HEADER_SIZE];
	struct entry e;
	int rv;

	pthread_mutex_lock(&pl->mu);
	e = pl->e[i];
	pthread_mutex_unlock(&pl->mu);
	/* Same size as before (an RPL1 entry has no frames either). */
	encode(&e.r, e.flags | FLAG_DROPPED, buf);
	rv = fileio_write_all(pl->fd, buf, sizeof buf, e.off);
	if (rv == 0 && fdatasync(pl->fd) != 0)
		rv = -errno;
	if (rv != 0)
		return rv;
	pthread_mutex_lock(&pl->mu);
	pl->e[i].flags |= FLAG_DROPPED;
	pthread_mutex_unlock(&pl->mu);
	return 0;
}

void push_log_release(struct push_log *pl, uint32_t upto)
{
	pthread_mutex_lock(&pl->mu);
	while (pl->released < pl->n && pl->e[pl->released].r.last <= upto) {
		struct entry *e = &pl->e[pl->released++];
		if (!(e->flags & FLAG_FRAMES) || e->punched)
			continue;
		/* Best effort: without hole punching the file only keeps
		 * its size. */
		(void)fallocate(pl->fd,
				FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)(e->off + HEADER_SIZE),
				(off_t)n_frames(&e->r) * WALFMT_FRAME_SIZE);
		e->punched = 1;
	}
	pthread_mutex_unlock(&pl->mu);
}

uint64_t push_log_synced_size(struct push_log *pl)
{
	return atomic_load(&pl->synced);
}

uint64_t push_log_digest(const uint8_t *frames, size_t n, uint32_t page_size)
{
	const size_t frame_size = WALFMT_FRAME_HDR_SIZE + (size_t)page_size;
	XXH3_state_t *st = XXH3_createState();
	uint64_t digest;
	size_t i;

	if (st == NULL)
		return 0;
	XXH3_64bits_reset(st);
	for (i = 0; i < n; i++) {
		const uint8_t *f = frames + i * frame_size;
		XXH3_64bits_update(st, f, 8); /* page number, commit size */
		XXH3_64bits_update(st, f + WALFMT_FRAME_HDR_SIZE, page_size);
	}
	digest = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return digest;
}
