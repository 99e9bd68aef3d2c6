/* The store object (store_internal.h lists its parts). */
#include "store_internal.h"

#include <assert.h>
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/dbsum.h"
#include "base/errors.h"
#include "base/fileio.h"
#include "proto/messages.h"
#include "util.h"
#include "wal/wal_observer.h"

void store_config_defaults(struct store_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->data_dir = "./replite-data";
	cfg->generation_frames = 10000;
	cfg->retention_ms = 7LL * 24 * 3600 * 1000;
	cfg->max_push_bytes = 64u << 20;
	cfg->push_expiry_ms = 60 * 1000;
}

void store_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("replite: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

struct generation *store_current_locked(struct store *s)
{
	assert(s->n_gens > 0);
	return s->gens[s->n_gens - 1];
}

struct generation *store_find_gen_locked(struct store *s, uint32_t number)
{
	size_t i;

	for (i = 0; i < s->n_gens; i++) {
		if (s->gens[i]->number == number)
			return s->gens[i];
	}
	return NULL;
}

void store_notify(struct store *s)
{
	struct generation *g;
	void (*fn)(void *);
	void *arg;
	uint32_t gen, head;

	pthread_mutex_lock(&s->mu);
	fn = s->listener;
	arg = s->listener_arg;
	g = store_current_locked(s);
	gen = g->number;
	head = frame_log_head(g->log);
	pthread_mutex_unlock(&s->mu);
	/* When the durable head got where it is, for lag (commit_times.h). */
	commit_times_note(s->times, gen, head, clock_unix_ms());
	if (fn != NULL)
		fn(arg);
}

void store_mark_failed(struct store *s, const char *why)
{
	pthread_mutex_lock(&s->mu);
	if (s->failed[0] == '\0') {
		snprintf(s->failed, sizeof s->failed, "%s", why);
	}
	pthread_mutex_unlock(&s->mu);
	store_log("writes disabled until restart: %s", why);
}

static int open_internal(struct store *s, char *err, size_t n)
{
	int rc;

	if (store_capture_register(s, err, n) != 0)
		return -1;
	rc = store_open_conn(s, &s->internal);
	if (rc != SQLITE_OK) {
		errors_set(err, n, "cannot open %s: %s", s->live_path,
			   sqlite3_errstr(rc));
		return -1;
	}
	sqlite3_busy_timeout(s->internal, 30000);
	/* The sync of the frame log is what makes commits durable. */
	sqlite3_exec(s->internal, "PRAGMA wal_autocheckpoint=1000", NULL, NULL,
		     NULL);
	return 0;
}

int store_open(const struct store_config *cfg, struct store **out, char *err,
	       size_t n)
{
	struct store *s = calloc(1, sizeof *s);
	int is_new = 0;

	if (s == NULL) {
		errors_set(err, n, "out of memory");
		return -1;
	}
	s->cfg = *cfg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->internal_mu, NULL);
	pthread_mutex_init(&s->unlock_mu, NULL);
	pthread_cond_init(&s->unlock_cond, NULL);
	pthread_mutex_init(&s->durable_mu, NULL);
	pthread_cond_init(&s->durable_cond, NULL);
	pthread_mutex_init(&s->leader_mu, NULL);
	s->times = commit_times_new();
	s->data_dir = strdup(cfg->data_dir);
	s->live_path = util_strdupf("%s/live.db", cfg->data_dir);
	if (s->times == NULL) {
		errors_set(err, n, "out of memory");
		goto err;
	}
	if (fileio_mkdir_p(cfg->data_dir) != 0) {
		errors_set(err, n, "cannot create data directory %s: %s",
			   cfg->data_dir, strerror(errno));
		goto err;
	}
	if (store_recover_id(s, &is_new, err, n) != 0)
		goto err;
	if (!is_new && cfg->import_path != NULL) {
		errors_set(err, n,
			   "%s already holds a database; --import only seeds a "
			   "new data directory",
			   cfg->data_dir);
		goto err;
	}
	if (is_new && store_gen_create_first(s, err, n) != 0) {
		char *id = util_strdupf("%s/database.json", cfg->data_dir);
		if (id != NULL)
			unlink(id); /* so that a retry starts afresh */
		free(id);
		goto err;
	}
	if (store_retention_load(s, err, n) != 0)
		goto err;
	if (store_gen_load(s, err, n) != 0)
		goto err;
	if (store_recover_live(s, err, n) != 0)
		goto err;
	if (open_internal(s, err, n) != 0)
		goto err;
	if (store_sum_init(s, err, n) != 0)
		goto err;
	if (store_check_init(s, err, n) != 0)
		goto err;
	/* What the log held before this start is taken as committed now:
	 * its times were not kept.  (No listener yet.) */
	store_notify(s);
	*out = s;
	return 0;
err:
	store_close(s);
	return -1;
}

void store_close(struct store *s)
{
	size_t i;

	if (s == NULL)
		return;
	/* Before the last connection closes, which checkpoints the live WAL
	 * into live.db and deletes it: after that, start-up takes the stop
	 * for a clean one and trusts live.db (store_recover.c). */
	if (s->n_gens > 0) {
		char err[512];
		if (store_make_durable(s, err, sizeof err) != 0) {
			/* The log broke: live.db may hold commits it lost.
			 * Without live.db, start-up rebuilds it from what the
			 * log holds (the checkpoint of the closes below goes
			 * to the unlinked file). */
			store_log("at close: %s; live.db is removed, and "
				  "start-up rebuilds it from the log",
				  err);
			if (unlink(s->live_path) == 0)
				fileio_fsync_dir(s->data_dir);
		} else {
			store_sync_log(s);
		}
	}
	store_zstd_stop(s);
	store_check_close(s);
	if (s->internal != NULL)
		sqlite3_close(s->internal);
	if (s->vfs != NULL)
		wal_observer_unregister(s->vfs);
	live_overlay_free(s->overlay);
	for (i = 0; i < s->n_gens; i++)
		store_gen_free(s->gens[i]);
	free(s->gens);
	while (s->pending != NULL) {
		struct pending_push *p = s->pending;
		s->pending = p->next_push;
		store_push_free_pending(p);
	}
	store_sum_free(&s->sum);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->internal_mu);
	pthread_mutex_destroy(&s->unlock_mu);
	pthread_cond_destroy(&s->unlock_cond);
	pthread_mutex_destroy(&s->durable_mu);
	pthread_cond_destroy(&s->durable_cond);
	pthread_mutex_destroy(&s->leader_mu);
	commit_times_free(s->times);
	free(s->data_dir);
	free(s->live_path);
	free(s->database_id);
	free(s);
}

const char *store_database_id(struct store *s)
{
	return s->database_id;
}

uint32_t store_generation(struct store *s)
{
	uint32_t g;

	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s)->number;
	pthread_mutex_unlock(&s->mu);
	return g;
}

uint32_t store_head(struct store *s)
{
	struct generation *g;

	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s);
	pthread_mutex_unlock(&s->mu);
	return frame_log_head(g->log);
}

void store_set_listener(struct store *s, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&s->mu);
	s->listener = fn;
	s->listener_arg = arg;
	pthread_mutex_unlock(&s->mu);
}

int store_checksum_at(struct store *s, uint32_t gen, uint32_t frame,
		      uint64_t *out)
{
	struct generation *g;
	int rv = -1;

	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s);
	if (g->number == gen && frame <= frame_log_head(g->log))
		rv = store_sum_at_locked(&s->sum, frame, out);
	pthread_mutex_unlock(&s->mu);
	return rv;
}

json_t *store_info(struct store *s)
{
	struct messages_info info = {.has_max_frame_no = 1};
	struct generation *g;
	char err[512];

	/* A writer asks for the head before it pushes: a commit written but
	 * not yet durable would make its push a conflict. */
	if (store_make_durable(s, err, sizeof err) != 0)
		(void)err; /* the head stays where it is durable */
	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s);
	info.oldest_generation = s->gens[0]->number;
	info.current_generation = g->number;
	info.database_id = s->database_id;
	info.max_frame_no = frame_log_head(g->log);
	info.has_checksum = store_sum_at_locked(&s->sum, info.max_frame_no,
						&info.checksum) == 0;
	pthread_mutex_unlock(&s->mu);
	return messages_encode_info(&info);
}

json_t *store_info_at(struct store *s, const struct store_point *at)
{
	struct messages_info info = {.has_max_frame_no = 1, .has_as_of = 1};
	struct generation *g;

	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s);
	info.oldest_generation = s->gens[0]->number;
	info.current_generation = at->generation;
	info.database_id = s->database_id;
	info.max_frame_no = at->frame;
	/* The replica checks the state it builds against it; the primary
	 * keeps checksums for its current generation only. */
	info.has_checksum =
	    g->number == at->generation &&
	    at->frame <= frame_log_head(g->log) &&
	    store_sum_at_locked(&s->sum, at->frame, &info.checksum) == 0;
	info.as_of_unix_ms = at->unix_ms;
	pthread_mutex_unlock(&s->mu);
	return messages_encode_info(&info);
}

/* ---------------------------------------------------------------------- */
/* pull and export */

enum store_pull store_pull(struct store *s, uint32_t gen, uint32_t start,
			   uint32_t end, struct store_frames *out)
{
	struct frames_chain chain;
	struct generation *g;
	enum store_pull res;
	uint32_t head;

	if (start == 0 || end <= start)
		return STORE_PULL_BAD_RANGE;
	pthread_mutex_lock(&s->mu);
	g = store_find_gen_locked(s, gen);
	if (g == NULL) {
		res = STORE_PULL_UNKNOWN_GEN;
		goto out;
	}
	head = frame_log_head(g->log);
	if (start > head) {
		res = g->ended_ms ? STORE_PULL_NEXT_GEN : STORE_PULL_CAUGHT_UP;
		goto out;
	}
	if (end > head + 1)
		end = head + 1;
	/* dup under mu: retention may close the log once we unlock. */
	out->fd = dup(frame_log_fd(g->log));
	if (out->fd < 0) {
		res = STORE_PULL_UNKNOWN_GEN;
		goto out;
	}
	out->offset = frame_log_offset(start);
	out->len = (uint64_t)(end - start) * WALFMT_FRAME_SIZE;
	out->end = end;
	if (frame_log_chain(g->log, start, &chain.big_endian, chain.salt,
			    chain.cksum) != 0) {
		close(out->fd);
		res = STORE_PULL_UNKNOWN_GEN;
		goto out;
	}
	frames_chain_format(&chain, out->chain);
	out->has_checksum = 0;
	if (g == store_current_locked(s)) {
		uint32_t f;
		for (f = end - 1; f >= start && !out->has_checksum; f--) {
			if (store_sum_at_locked(&s->sum, f, &out->checksum) ==
			    0) {
				out->checksum_frame = f;
				out->has_checksum = 1;
			}
		}
	}
	res = STORE_PULL_FRAMES;
out:
	pthread_mutex_unlock(&s->mu);
	return res;
}

/* The checksum of a whole database file, read through fd. */
static int file_checksum(int fd, uint64_t size, uint64_t *out)
{
	const size_t chunk = 256 * WALFMT_PAGE_SIZE;
	uint8_t *buf = malloc(chunk);
	uint64_t off, sum = 0;
	int rv = 0;

	if (buf == NULL)
		return -ENOMEM;
	for (off = 0; off + WALFMT_PAGE_SIZE <= size && rv == 0; off += chunk) {
		size_t n = size - off < chunk ? (size_t)(size - off) : chunk;
		size_t i;

		n -= n % WALFMT_PAGE_SIZE;
		rv = fileio_read_all(fd, buf, n, off);
		for (i = 0; rv == 0 && i < n; i += WALFMT_PAGE_SIZE)
			sum ^= dbsum_page(
			    (uint32_t)((off + i) / WALFMT_PAGE_SIZE + 1),
			    buf + i, WALFMT_PAGE_SIZE);
	}
	free(buf);
	*out = sum;
	return rv;
}

int store_export(struct store *s, uint32_t gen, int *fd, uint64_t *size,
		 uint64_t *checksum)
{
	struct generation *g;
	char *path = NULL;
	int have_sum = 0, rv = -1;

	pthread_mutex_lock(&s->mu);
	g = store_find_gen_locked(s, gen);
	if (g != NULL) {
		path = util_strdupf("%s/base.db", g->dir);
		have_sum = g->have_base_sum;
		*checksum = g->base_sum;
	}
	if (path != NULL)
		rv = util_open_sized(path, fd, size);
	pthread_mutex_unlock(&s->mu);
	free(path);
	if (rv != 0 || have_sum)
		return rv;
	/* Once per generation, outside the lock: base.db never changes. */
	if (file_checksum(*fd, *size, checksum) != 0) {
		close(*fd);
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	g = store_find_gen_locked(s, gen);
	if (g != NULL) {
		g->base_sum = *checksum;
		g->have_base_sum = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void store_maintain(struct store *s)
{
	char err[512];

	/* Every commit's answer makes it durable; this covers a commit whose
	 * answer never came (a connection that died meanwhile), so that
	 * replicas get it anyway. */
	if (store_make_durable(s, err, sizeof err) != 0)
		(void)err; /* store_mark_failed logged it */
	/* Pushed frames are durable through the push log: sync them into
	 * the frame log too, so that the push log's copies can go. */
	store_sync_log(s);
	store_push_expire(s);
	store_gen_rollover(s);
	store_gen_drop_expired(s);
	store_zstd_prepare(s);
	/* Injected frames never trigger SQLite's auto-checkpoint. */
	pthread_mutex_lock(&s->internal_mu);
	sqlite3_wal_checkpoint_v2(s->internal, "main",
				  SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	pthread_mutex_unlock(&s->internal_mu);
}
