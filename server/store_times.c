/* Commit times (time_log.h): each generation's times.log kept in step with
 * its frame log at start-up, and the states that point-in-time restore
 * resolves a time or a frame to. */
#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/errors.h"
#include "base/fileio.h"
#include "util.h"

int store_gen_times_write(const char *dir,
			  const struct time_log_record *records, size_t count,
			  char *err, size_t n)
{
	char *path = util_strdupf("%s/times.log", dir);
	struct time_log *t = NULL;
	int created, e = 0, rv = -1;
	size_t i;

	if (path == NULL) {
		errors_set(err, n, "out of memory");
		return -1;
	}
	if (time_log_open(path, &t, &created, err, n) != 0)
		goto out;
	if (time_log_count(t) > 0) {
		errors_set(err, n, "%s already holds times", path);
		goto out;
	}
	for (i = 0; i < count && e == 0; i++)
		e = time_log_append(t, records[i].frame, records[i].unix_ms);
	if (e == 0)
		e = time_log_sync(t);
	if (e != 0) {
		errors_set(err, n, "cannot write %s: %s", path, strerror(-e));
		goto out;
	}
	rv = 0;
out:
	time_log_close(t);
	free(path);
	return rv;
}

int store_gen_times_start(const char *dir, int64_t unix_ms, char *err, size_t n)
{
	struct time_log_record base = {.frame = 0, .unix_ms = unix_ms};

	return store_gen_times_write(dir, &base, 1, err, n);
}

int store_gen_times_cut(struct generation *g, char *err, size_t n)
{
	int e = time_log_cut_after(g->times, frame_log_head(g->log));

	if (e != 0)
		errors_set(err, n, "cannot cut the time log of %s: %s", g->dir,
			   strerror(-e));
	return e != 0 ? -1 : 0;
}

int store_gen_times_fill(struct generation *g, char *err, size_t n)
{
	uint32_t head = frame_log_head(g->log), f, dated = 0;
	int64_t now = clock_unix_ms();
	int fd = frame_log_fd(g->log), e = 0;

	/* A generation older than commit times: its base from now on. */
	if (time_log_count(g->times) == 0)
		e = time_log_append(g->times, 0, now);
	for (f = time_log_last_frame(g->times) + 1; e == 0 && f <= head; f++) {
		uint8_t hdr[WALFMT_FRAME_HDR_SIZE];
		struct walfmt_frame_header h;
		e = fileio_read_all(fd, hdr, sizeof hdr, frame_log_offset(f));
		if (e != 0)
			break;
		walfmt_frame_header_decode(hdr, &h);
		if (h.db_size != 0) {
			e = time_log_append(g->times, f, now);
			dated++;
		}
	}
	if (e == 0)
		e = time_log_sync(g->times);
	if (e != 0) {
		errors_set(err, n, "cannot write the time log of %s: %s",
			   g->dir, strerror(-e));
		return -1;
	}
	if (dated > 0)
		store_log("generation %" PRIu32 ": %" PRIu32
			  " commits had no recorded time; dated at this "
			  "start-up, when they became visible",
			  g->number, dated);
	return 0;
}

int64_t store_restorable_since(struct store *s)
{
	int64_t ms;

	pthread_mutex_lock(&s->mu);
	ms = time_log_first_ms(s->gens[0]->times);
	pthread_mutex_unlock(&s->mu);
	return ms;
}

int store_locate_time(struct store *s, int64_t unix_ms, struct store_point *out,
		      char *err, size_t n)
{
	int64_t now = clock_unix_ms(), oldest;
	char a[40], b[40];
	size_t i;

	if (unix_ms > now) {
		clock_format_rfc3339(unix_ms, a, sizeof a);
		clock_format_rfc3339(now, b, sizeof b);
		errors_set(err, n,
			   "%s is in the future: the primary's clock says %s",
			   a, b);
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	for (i = s->n_gens; i-- > 0;) {
		struct generation *g = s->gens[i];
		if (time_log_find(g->times, unix_ms, frame_log_head(g->log),
				  &out->frame, &out->unix_ms)) {
			out->generation = g->number;
			pthread_mutex_unlock(&s->mu);
			return 0;
		}
	}
	oldest = time_log_first_ms(s->gens[0]->times);
	pthread_mutex_unlock(&s->mu);
	clock_format_rfc3339(unix_ms, a, sizeof a);
	clock_format_rfc3339(oldest, b, sizeof b);
	errors_set(err, n,
		   "%s is outside retention: the oldest state this database "
		   "keeps is from %s",
		   a, b);
	return -1;
}

int store_locate_frame(struct store *s, uint32_t gen, uint32_t frame,
		       struct store_point *out, char *err, size_t n)
{
	struct generation *g;
	uint32_t head = 0;
	int found = 0;

	pthread_mutex_lock(&s->mu);
	g = store_find_gen_locked(s, gen);
	if (g != NULL) {
		head = frame_log_head(g->log);
		found = frame <= head &&
			time_log_time_of(g->times, frame, &out->unix_ms);
	}
	pthread_mutex_unlock(&s->mu);
	if (g == NULL) {
		errors_set(err, n,
			   "generation %" PRIu32 " is not retained (outside "
			   "retention, or never existed)",
			   gen);
		return -1;
	}
	if (!found) {
		errors_set(err, n,
			   "frame %" PRIu32 " of generation %" PRIu32
			   " is not a commit (the generation's durable head "
			   "is frame %" PRIu32 ")",
			   frame, gen, head);
		return -1;
	}
	out->generation = gen;
	out->frame = frame;
	return 0;
}
