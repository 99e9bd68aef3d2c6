#include "push_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/fileio.h"
#include "wal/walfmt.h"

#define RECORD_SIZE 64
#define RECORD_MAGIC "RPL1"

struct push_log {
	int fd;
	pthread_mutex_t mu; /* guards records, n, cap */
	struct push_log_record *records;
	size_t n;
	size_t cap;
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

static void encode(const struct push_log_record *r, uint8_t out[RECORD_SIZE])
{
	memset(out, 0, RECORD_SIZE);
	memcpy(out, RECORD_MAGIC, 4);
	memcpy(out + 4, r->id, PUSH_LOG_ID_SIZE);
	walfmt_put32(out + 20, r->first);
	walfmt_put32(out + 24, r->last);
	put64(out + 32, r->digest);
	put64(out + 56, XXH3_64bits(out, 56));
}

/* 0 when in holds a valid record. */
static int decode(const uint8_t in[RECORD_SIZE], struct push_log_record *r)
{
	if (memcmp(in, RECORD_MAGIC, 4) != 0 ||
	    get64(in + 56) != XXH3_64bits(in, 56))
		return -1;
	memcpy(r->id, in + 4, PUSH_LOG_ID_SIZE);
	r->first = walfmt_get32(in + 20);
	r->last = walfmt_get32(in + 24);
	r->digest = get64(in + 32);
	return r->first >= 1 && r->last >= r->first ? 0 : -1;
}

static int add_locked(struct push_log *pl, const struct push_log_record *r)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 64;
		struct push_log_record *grown =
		    realloc(pl->records, cap * sizeof *grown);
		if (grown == NULL)
			return -ENOMEM;
		pl->records = grown;
		pl->cap = cap;
	}
	pl->records[pl->n++] = *r;
	return 0;
}

/* Load the records; the first invalid one and everything after it (a torn
 * append) are cut off, durably. */
static int load(struct push_log *pl, const char *path, char *err,
		size_t err_len)
{
	uint8_t buf[RECORD_SIZE];
	struct push_log_record r;
	struct stat st;
	off_t off;
	int rv;

	if (fstat(pl->fd, &st) != 0) {
		snprintf(err, err_len, "cannot stat %s: %s", path,
			 strerror(errno));
		return -1;
	}
	for (off = 0; off + RECORD_SIZE <= st.st_size; off += RECORD_SIZE) {
		rv = fileio_read_all(pl->fd, buf, sizeof buf, (uint64_t)off);
		if (rv != 0) {
			snprintf(err, err_len, "cannot read %s: %s", path,
				 strerror(-rv));
			return -1;
		}
		if (decode(buf, &r) != 0)
			break;
		if (add_locked(pl, &r) != 0) {
			snprintf(err, err_len, "out of memory");
			return -1;
		}
	}
	if (off != st.st_size &&
	    (ftruncate(pl->fd, off) != 0 || fdatasync(pl->fd) != 0)) {
		snprintf(err, err_len, "cannot truncate %s: %s", path,
			 strerror(errno));
		return -1;
	}
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
	free(pl->records);
	free(pl);
}

int push_log_append(struct push_log *pl, const struct push_log_record *r)
{
	uint8_t buf[RECORD_SIZE];
	int rv;

	encode(r, buf);
	pthread_mutex_lock(&pl->mu);
	rv = fileio_write_all(pl->fd, buf, sizeof buf,
			      (uint64_t)pl->n * RECORD_SIZE);
	if (rv == 0 && fdatasync(pl->fd) != 0)
		rv = -errno;
	if (rv == 0)
		rv = add_locked(pl, r);
	pthread_mutex_unlock(&pl->mu);
	return rv;
}

int push_log_find(struct push_log *pl, const uint8_t id[PUSH_LOG_ID_SIZE],
		  struct push_log_record *out)
{
	size_t i;
	int found = 0;

	pthread_mutex_lock(&pl->mu);
	for (i = pl->n; i > 0 && !found; i--) {
		if (memcmp(pl->records[i - 1].id, id, PUSH_LOG_ID_SIZE) == 0) {
			*out = pl->records[i - 1];
			found = 1;
		}
	}
	pthread_mutex_unlock(&pl->mu);
	return found;
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
