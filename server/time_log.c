#include "time_log.h"

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

struct record {
	uint32_t frame;
	int64_t ms;
};

/* The appender writes outside mu (one at a time, the caller serialises);
 * mu guards the records, which lookups read from other threads. */
struct time_log {
	int fd;
	pthread_mutex_t mu;
	struct record *r;
	size_t n, cap;
	size_t synced; /* records an fdatasync covered */
};

static void encode(uint32_t frame, int64_t ms, uint8_t out[16])
{
	walfmt_put32(out, frame);
	walfmt_put32(out + 4, (uint32_t)((uint64_t)ms >> 32));
	walfmt_put32(out + 8, (uint32_t)(uint64_t)ms);
	walfmt_put32(out + 12, (uint32_t)XXH3_64bits(out, 12));
}

/* 0 when in is a valid record that may follow prev (NULL: the first). */
static int decode(const uint8_t in[16], const struct record *prev,
		  struct record *out)
{
	if (walfmt_get32(in + 12) != (uint32_t)XXH3_64bits(in, 12))
		return -1;
	out->frame = walfmt_get32(in);
	out->ms = (int64_t)((uint64_t)walfmt_get32(in + 4) << 32 |
			    walfmt_get32(in + 8));
	if (prev == NULL)
		return 0;
	return out->frame > prev->frame && out->ms >= prev->ms ? 0 : -1;
}

static int add_locked(struct time_log *t, uint32_t frame, int64_t ms)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct record *r = realloc(t->r, cap * sizeof *r);
		if (r == NULL)
			return -ENOMEM;
		t->r = r;
		t->cap = cap;
	}
	t->r[t->n].frame = frame;
	t->r[t->n].ms = ms;
	t->n++;
	return 0;
}

static int load(struct time_log *t, const char *path, char *err, size_t err_len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t i, len;
	int rv = -1;

	if (fstat(t->fd, &st) != 0) {
		snprintf(err, err_len, "cannot stat %s: %s", path,
			 strerror(errno));
		return -1;
	}
	len = (size_t)st.st_size;
	buf = malloc(len ? len : 1);
	if (buf == NULL || fileio_read_all(t->fd, buf, len, 0) != 0) {
		snprintf(err, err_len, "cannot read %s", path);
		goto out;
	}
	for (i = 0; i + TIME_LOG_RECORD_SIZE <= len;
	     i += TIME_LOG_RECORD_SIZE) {
		struct record r;
		if (decode(buf + i, t->n ? &t->r[t->n - 1] : NULL, &r) != 0)
			break;
		if (add_locked(t, r.frame, r.ms) != 0) {
			snprintf(err, err_len, "out of memory");
			goto out;
		}
	}
	/* A torn or damaged tail: cut it off before anything follows it. */
	if (i != len &&
	    (ftruncate(t->fd, (off_t)i) != 0 || fdatasync(t->fd) != 0)) {
		snprintf(err, err_len, "cannot cut the torn end of %s: %s",
			 path, strerror(errno));
		goto out;
	}
	t->synced = t->n;
	rv = 0;
out:
	free(buf);
	return rv;
}

int time_log_open(const char *path, struct time_log **out, int *created,
		  char *err, size_t err_len)
{
	struct time_log *t = calloc(1, sizeof *t);

	*out = NULL;
	if (t == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	pthread_mutex_init(&t->mu, NULL);
	*created = access(path, F_OK) != 0;
	t->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (t->fd < 0) {
		snprintf(err, err_len, "cannot open %s: %s", path,
			 strerror(errno));
		goto fail;
	}
	if (load(t, path, err, err_len) != 0)
		goto fail;
	*out = t;
	return 0;
fail:
	time_log_close(t);
	return -1;
}

void time_log_close(struct time_log *t)
{
	if (t == NULL)
		return;
	if (t->fd >= 0)
		close(t->fd);
	pthread_mutex_destroy(&t->mu);
	free(t->r);
	free(t);
}

int time_log_append(struct time_log *t, uint32_t frame, int64_t unix_ms)
{
	uint8_t rec[TIME_LOG_RECORD_SIZE];
	size_t n;
	int rv;

	pthread_mutex_lock(&t->mu);
	n = t->n;
	if (n > 0 && frame <= t->r[n - 1].frame) {
		/* Out of order: load would take it for the end of the file
		 * and drop every record after it, so it is never written. */
		pthread_mutex_unlock(&t->mu);
		return -EINVAL;
	}
	if (n > 0 && unix_ms < t->r[n - 1].ms)
		unix_ms = t->r[n - 1].ms;
	pthread_mutex_unlock(&t->mu);
	encode(frame, unix_ms, rec);
	rv = fileio_write_all(t->fd, rec, sizeof rec,
			      (uint64_t)n * TIME_LOG_RECORD_SIZE);
	if (rv != 0)
		return rv;
	pthread_mutex_lock(&t->mu);
	rv = add_locked(t, frame, unix_ms);
	pthread_mutex_unlock(&t->mu);
	return rv;
}

int time_log_sync(struct time_log *t)
{
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->n;
	pthread_mutex_unlock(&t->mu);
	if (n == t->synced)
		return 0;
	if (fdatasync(t->fd) != 0)
		return -errno;
	pthread_mutex_lock(&t->mu);
	if (n > t->synced)
		t->synced = n;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

int time_log_cut_after(struct time_log *t, uint32_t frame)
{
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->n;
	while (n > 0 && t->r[n - 1].frame > frame)
		n--;
	pthread_mutex_unlock(&t->mu);
	if (n == t->n)
		return 0;
	if (ftruncate(t->fd, (off_t)(n * TIME_LOG_RECORD_SIZE)) != 0 ||
	    fdatasync(t->fd) != 0)
		return -errno;
	pthread_mutex_lock(&t->mu);
	t->n = n;
	if (t->synced > n)
		t->synced = n;
	pthread_mutex_unlock(&t->mu);
	return 0;
}

uint64_t time_log_synced_size(struct time_log *t)
{
	uint64_t n;

	pthread_mutex_lock(&t->mu);
	n = (uint64_t)t->synced * TIME_LOG_RECORD_SIZE;
	pthread_mutex_unlock(&t->mu);
	return n;
}

size_t time_log_count(struct time_log *t)
{
	size_t n;

	pthread_mutex_lock(&t->mu);
	n = t->n;
	pthread_mutex_unlock(&t->mu);
	return n;
}

uint32_t time_log_last_frame(struct time_log *t)
{
	uint32_t f;

	pthread_mutex_lock(&t->mu);
	f = t->n ? t->r[t->n - 1].frame : 0;
	pthread_mutex_unlock(&t->mu);
	return f;
}

int64_t time_log_last_ms(struct time_log *t)
{
	int64_t ms;

	pthread_mutex_lock(&t->mu);
	ms = t->n ? t->r[t->n - 1].ms : 0;
	pthread_mutex_unlock(&t->mu);
	return ms;
}

int64_t time_log_first_ms(struct time_log *t)
{
	int64_t ms;

	pthread_mutex_lock(&t->mu);
	ms = t->n ? t->r[0].ms : 0;
	pthread_mutex_unlock(&t->mu);
	return ms;
}

int time_log_find(struct time_log *t, int64_t unix_ms, uint32_t upto,
		  uint32_t *frame, int64_t *at_ms)
{
	size_t lo = 0, hi;
	int found = 0;

	pthread_mutex_lock(&t->mu);
	/* Binary search for the first record after unix_ms; the one before
	 * it is the answer, unless its frame is past upto (then walk
	 * back). */
	hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->r[mid].ms <= unix_ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo > 0 && t->r[lo - 1].frame > upto)
		lo--;
	if (lo > 0) {
		*frame = t->r[lo - 1].frame;
		*at_ms = t->r[lo - 1].ms;
		found = 1;
	}
	pthread_mutex_unlock(&t->mu);
	return found;
}

int time_log_time_of(struct time_log *t, uint32_t frame, int64_t *at_ms)
{
	size_t lo = 0, hi;
	int found = 0;

	pthread_mutex_lock(&t->mu);
	hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->r[mid].frame < frame)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < t->n && t->r[lo].frame == frame) {
		*at_ms = t->r[lo].ms;
		found = 1;
	}
	pthread_mutex_unlock(&t->mu);
	return found;
}

long time_log_snapshot(struct time_log *t, uint32_t upto,
		       struct time_log_record **out)
{
	size_t i, n = 0;

	pthread_mutex_lock(&t->mu);
	while (n < t->n && t->r[n].frame <= upto)
		n++;
	*out = malloc((n ? n : 1) * sizeof **out);
	if (*out != NULL)
		for (i = 0; i < n; i++) {
			(*out)[i].frame = t->r[i].frame;
			(*out)[i].unix_ms = t->r[i].ms;
		}
	pthread_mutex_unlock(&t->mu);
	return *out != NULL ? (long)n : -1;
}
