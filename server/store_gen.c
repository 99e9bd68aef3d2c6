/* Generations: the first one (empty or imported), loading them at start,
 * rollover to the next one, and retention of ended ones. */
#include "store_internal.h"

#include <assert.h>
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
#include "base/errors.h"
#include "base/fileio.h"
#include "util.h"

int store_exec_check(sqlite3 *db, const char *sql, const char *what, char *err,
		     size_t n)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		errors_set(err, n, "%s: %s", what,
			   msg ? msg : sqlite3_errstr(rc));
	}
	sqlite3_free(msg);
	return rc;
}

static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Turn the file at path (a private copy) into a base image: page size
 * 4096 (converted by VACUUM when it differs), WAL mode recorded in the
 * header, fully checkpointed so the file alone is the database. */
static int prepare_base(const char *path, const char *origin, char *err,
			size_t n)
{
	sqlite3 *db = NULL;
	int64_t page_size = 0;
	char *msg = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		errors_set(err, n, "%s: cannot open: %s", origin,
			   sqlite3_errstr(rc));
		goto out;
	}
	rc = sqlite3_exec(db, "PRAGMA quick_check", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		errors_set(err, n, "%s is not a valid SQLite database: %s",
			   origin, msg ? msg : sqlite3_errmsg(db));
		goto out;
	}
	rc = query_int(db, "PRAGMA page_size", &page_size);
	if (rc != SQLITE_OK) {
		errors_set(err, n, "%s: %s", origin, sqlite3_errmsg(db));
		goto out;
	}
	if (page_size != WALFMT_PAGE_SIZE) {
		/* Replicas (ours and libSQL's) exchange 4096-byte pages. */
		rc = store_exec_check(db,
				      "PRAGMA journal_mode=DELETE;"
				      "PRAGMA page_size=4096; VACUUM;",
				      "converting the page size to 4096", err,
				      n);
		if (rc != SQLITE_OK)
			goto out;
		rc = query_int(db, "PRAGMA page_size", &page_size);
		if (rc != SQLITE_OK || page_size != WALFMT_PAGE_SIZE) {
			errors_set(err, n,
				   "%s: could not convert page size to 4096",
				   origin);
			rc = SQLITE_ERROR;
			goto out;
		}
	}
	/* A fresh connection: switching to WAL on the one that just ran
	 * quick_check fails with "database table is locked". */
	rc = sqlite3_close(db);
	db = NULL;
	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = store_exec_check(db,
				      "PRAGMA journal_mode=WAL;"
				      "PRAGMA wal_checkpoint(TRUNCATE);",
				      "switching to WAL mode", err, n);
	else
		errors_set(err, n, "%s: %s", origin, sqlite3_errstr(rc));
out:
	sqlite3_free(msg);
	if (sqlite3_close(db) != SQLITE_OK && rc == SQLITE_OK)
		rc = SQLITE_ERROR;
	return rc;
}

static int create_empty_db(const char *path, char *err, size_t n)
{
	sqlite3 *db = NULL;
	int rc;

	unlink(path);
	rc = sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK) {
		/* A schema change makes SQLite write page 1, so the base
		 * is a real database file and not an empty one. */
		rc = store_exec_check(db,
				      "PRAGMA page_size=4096;"
				      "PRAGMA journal_mode=WAL;"
				      "CREATE TABLE replite_init(x);"
				      "DROP TABLE replite_init;"
				      "PRAGMA wal_checkpoint(TRUNCATE);",
				      "creating an empty database", err, n);
	} else {
		errors_set(err, n, "cannot create %s: %s", path,
			   sqlite3_errstr(rc));
	}
	sqlite3_close(db);
	return rc;
}

int store_gen_create_first(struct store *s, char *err, size_t n)
{
	char *tmp = util_strdupf("%s/gen-00000001.tmp", s->data_dir);
	char *final = util_strdupf("%s/gen-00000001", s->data_dir);
	char *base = util_strdupf("%s/base.db", tmp);
	char *log_path = util_strdupf("%s/frames.log", tmp);
	struct frame_log *log = NULL;
	int rv = -1;

	if (!tmp || !final || !base || !log_path) {
		errors_set(err, n, "out of memory");
		goto out;
	}
	if (fileio_mkdir_p(tmp) != 0) {
		errors_set(err, n, "cannot create %s: %s", tmp,
			   strerror(errno));
		goto out;
	}
	if (s->cfg.import_path != NULL) {
		int e = fileio_copy_file(s->cfg.import_path, base);
		if (e != 0) {
			errors_set(err, n, "cannot import %s: %s",
				   s->cfg.import_path, strerror(-e));
			goto out;
		}
		if (prepare_base(base, s->cfg.import_path, err, n) != SQLITE_OK)
			goto out;
	} else if (create_empty_db(base, err, n) != SQLITE_OK) {
		goto out;
	}
	if (frame_log_open(log_path, 1, &log, err, n) != 0)
		goto out;
	frame_log_close(log);
	/* The base's state begins now: the creation, or the import. */
	if (store_gen_times_start(tmp, clock_unix_ms(), err, n) != 0)
		goto out;
	if (rename(tmp, final) != 0 || fileio_fsync_dir(s->data_dir) != 0) {
		errors_set(err, n, "cannot create %s: %s", final,
			   strerror(errno));
		goto out;
	}
	rv = 0;
out:
	/* A failed import or creation leaves no gen-*.tmp behind. */
	if (rv != 0 && tmp != NULL)
		fileio_remove_tree(tmp);
	free(tmp);
	free(final);
	free(base);
	free(log_path);
	return rv;
}

static int cmp_gen(const void *a, const void *b)
{
	const struct generation *x = *(struct generation *const *)a;
	const struct generation *y = *(struct generation *const *)b;

	return x->number < y->number ? -1 : x->number > y->number;
}

static int open_times(struct generation *g)
{
	char err[512], *path = util_strdupf("%s/times.log", g->dir);
	int created, rv;

	if (path == NULL)
		return -1;
	rv = time_log_open(path, &g->times, &created, err, sizeof err);
	if (rv != 0)
		store_log("%s", err);
	free(path);
	return rv;
}

int store_gen_add(struct store *s, uint32_t number, struct frame_log *log)
{
	char err[512], *pushes;
	struct generation *g = calloc(1, sizeof *g);
	struct generation **gens =
	    realloc(s->gens, (s->n_gens + 1) * sizeof *gens);

	if (g == NULL || gens == NULL) {
		free(g);
		if (gens != NULL)
			s->gens = gens;
		return -ENOMEM;
	}
	s->gens = gens;
	g->number = number;
	g->dir = util_strdupf("%s/" GEN_DIR_FMT, s->data_dir, number);
	pushes = util_strdupf("%s/pushes.log", g->dir);
	if (g->dir == NULL || pushes == NULL ||
	    push_log_open(pushes, &g->pushes, err, sizeof err) != 0) {
		if (g->dir != NULL && pushes != NULL)
			store_log("%s", err);
		free(pushes);
		free(g->dir);
		free(g);
		return -EIO;
	}
	free(pushes);
	if (open_times(g) != 0) {
		push_log_close(g->pushes);
		free(g->dir);
		free(g);
		return -EIO;
	}
	g->log = log;
	frame_log_set_sync_histogram(log, &s->fsync);
	s->gens[s->n_gens++] = g;
	return 0;
}

void store_gen_free(struct generation *g)
{
	if (g->log != NULL)
		frame_log_close(g->log);
	push_log_close(g->pushes);
	time_log_close(g->times);
	free(g->dir);
	free(g);
}

void store_remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char *p;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		p = util_strdupf("%s/%s", dir, e->d_name);
		if (p != NULL)
			unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

static int64_t file_mtime_ms(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return clock_unix_ms();
	return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* Start-up: copy into g's frame log every push entry that continues right
 * after its head (push_log.h: a pushed transaction is durable through its
 * entry, and the frame log may have lost its unsynced frames); mark dropped
 * every entry past the head that cannot be copied (torn, or written by an
 * older version before its frames: never answered as committed), so that no
 * record names frames the log does not hold.  Returns 0, or -1 with err. */
static int replay_pushes(struct generation *g, char *err, size_t n)
{
	size_t i, count = push_log_count(g->pushes);
	uint32_t head = frame_log_head(g->log), replayed = 0;
	uint8_t *buf = NULL;
	int rv = 0;

	for (i = 0; i < count && rv == 0; i++) {
		struct push_log_record r;
		struct frame_log_entry *e = NULL;
		size_t k, frames;
		int has_frames, dropped, ok = 0;

		push_log_entry(g->pushes, i, &r, &has_frames, &dropped);
		if (dropped || r.last <= head)
			continue;
		frames = (size_t)(r.last - r.first) + 1;
		if (r.first == head + 1 && has_frames) {
			buf = realloc(buf, frames * WALFMT_FRAME_SIZE);
			e = calloc(frames, sizeof *e);
			ok = buf != NULL && e != NULL &&
			     push_log_read_frames(g->pushes, i, buf) == 0 &&
			     push_log_digest(buf, frames, WALFMT_PAGE_SIZE) ==
				 r.digest;
			for (k = 0; ok && k < frames; k++) {
				const uint8_t *f = buf + k * WALFMT_FRAME_SIZE;
				e[k].pgno = walfmt_get32(f);
				e[k].db_size = walfmt_get32(f + 4);
				e[k].page = f + WALFMT_FRAME_HDR_SIZE;
			}
			ok = ok && e[frames - 1].db_size != 0 &&
			     frame_log_write(g->log, e, frames) == 0;
		}
		free(e);
		if (ok &&
		    time_log_append(g->times, r.last,
				    r.unix_ms != 0 ? r.unix_ms
						   : clock_unix_ms()) != 0) {
			errors_set(err, n, "cannot write the time log of %s",
				   g->dir);
			rv = -1;
			break;
		}
		if (ok) {
			head = r.last;
			replayed += (uint32_t)frames;
		} else if ((rv = push_log_drop(g->pushes, i)) != 0) {
			errors_set(err, n,
				   "cannot drop push record %zu of %s: %s", i,
				   g->dir, strerror(-rv));
			rv = -1;
		}
	}
	free(buf);
	if (rv == 0 && replayed > 0) {
		if (store_gen_sync(g) != 0) {
			errors_set(err, n, "cannot sync the frame log of %s",
				   g->dir);
			return -1;
		}
		store_log("generation %" PRIu32 ": %" PRIu32
			  " pushed frames copied back from its push log",
			  g->number, replayed);
	}
	return rv;
}

/* Scan gen-* directories; leftovers of an interrupted rollover (*.tmp) are
 * removed.  Every generation's log is opened, which drops torn tails. */
int store_gen_load(struct store *s, char *err, size_t n)
{
	DIR *d = opendir(s->data_dir);
	struct dirent *e;
	size_t i;
	int rv = 0;

	if (d == NULL) {
		errors_set(err, n, "cannot read %s: %s", s->data_dir,
			   strerror(errno));
		return -1;
	}
	while (rv == 0 && (e = readdir(d)) != NULL) {
		uint32_t number;
		char tail[8];
		char *path;
		struct frame_log *log = NULL;

		if (sscanf(e->d_name, "gen-%" SCNu32 "%7s", &number, tail) ==
		    2) {
			char *tmp =
			    util_strdupf("%s/%s", s->data_dir, e->d_name);
			if (tmp != NULL && strcmp(tail, ".tmp") == 0)
				store_remove_tree(tmp);
			free(tmp);
			continue;
		}
		if (sscanf(e->d_name, "gen-%" SCNu32, &number) != 1 ||
		    number == 0)
			continue;
		path = util_strdupf("%s/%s/frames.log", s->data_dir, e->d_name);
		if (path == NULL || frame_log_open(path, 0, &log, err, n) != 0)
			rv = -1;
		else if (store_gen_add(s, number, log) != 0) {
			frame_log_close(log);
			errors_set(err, n, "cannot load generation %" PRIu32,
				   number);
			rv = -1;
		} else {
			struct generation *g = s->gens[s->n_gens - 1];
			rv = store_gen_times_cut(g, err, n);
			if (rv == 0)
				rv = replay_pushes(g, err, n);
			if (rv == 0)
				rv = store_gen_times_fill(g, err, n);
		}
		free(path);
	}
	closedir(d);
	if (rv != 0)
		return rv;
	if (s->n_gens == 0) {
		errors_set(err, n, "%s has database.json but no generation",
			   s->data_dir);
		return -1;
	}
	qsort(s->gens, s->n_gens, sizeof *s->gens, cmp_gen);
	for (i = 0; i + 1 < s->n_gens; i++) {
		char *next_base =
		    util_strdupf("%s/base.db", s->gens[i + 1]->dir);
		s->gens[i]->ended_ms = file_mtime_ms(next_base);
		free(next_base);
		/* Every frame of a log was durable before a rollover read it
		 * into the next base, so the log's head is where it ended. */
		if (s->gens[i]->number + 1 == s->gens[i + 1]->number)
			s->gens[i + 1]->prev_end =
			    frame_log_head(s->gens[i]->log);
	}
	return 0;
}

/* Build generation G+1: its base is base(G) with all frames of G replayed
 * (pages, not SQL), written to a temporary directory and renamed into place
 * so that a crash leaves either no new generation or a complete one. */
static int build_next_generation(struct store *s, struct generation *cur,
				 struct frame_log **log_out)
{
	uint32_t next = cur->number + 1;
	char *tmp = util_strdupf("%s/" GEN_DIR_FMT ".tmp", s->data_dir, next);
	char *final = util_strdupf("%s/" GEN_DIR_FMT, s->data_dir, next);
	char *src = util_strdupf("%s/base.db", cur->dir);
	char *base = util_strdupf("%s/base.db", tmp);
	char *log_path = util_strdupf("%s/frames.log", tmp);
	char err[256];
	int fd = -1, rv = -1;

	if (!tmp || !final || !src || !base || !log_path)
		goto out;
	/* Group commit: what the next base holds must be durable here. */
	if (store_gen_sync(cur) != 0)
		goto out;
	store_remove_tree(tmp);
	if (fileio_mkdir_p(tmp) != 0 || fileio_copy_file(src, base) != 0)
		goto out;
	fd = open(base, O_RDWR | O_CLOEXEC);
	if (fd < 0 ||
	    frame_log_replay(cur->log, frame_log_head(cur->log), fd) != 0)
		goto out;
	if (frame_log_open(log_path, 1, log_out, err, sizeof err) != 0) {
		store_log("rollover: %s", err);
		goto out;
	}
	/* The new base's state began with G's last commit. */
	if (store_gen_times_start(tmp, time_log_last_ms(cur->times), err,
				  sizeof err) != 0) {
		store_log("rollover: %s", err);
		frame_log_close(*log_out);
		goto out;
	}
	if (rename(tmp, final) != 0 || fileio_fsync_dir(s->data_dir) != 0) {
		frame_log_close(*log_out);
		goto out;
	}
	rv = 0;
out:
	if (rv != 0) {
		store_log("rollover to generation %" PRIu32 " failed: %s", next,
			  strerror(errno));
		if (tmp != NULL)
			store_remove_tree(tmp);
	}
	if (fd >= 0)
		close(fd);
	free(tmp);
	free(final);
	free(src);
	free(base);
	free(log_path);
	return rv;
}

void store_gen_rollover(struct store *s)
{
	struct generation *cur;
	struct generation *next = NULL;
	struct frame_log *log = NULL;
	int rolled = 0;

	pthread_mutex_lock(&s->mu);
	cur = store_current_locked(s);
	pthread_mutex_unlock(&s->mu);
	if (frame_log_written_head(cur->log) < s->cfg.generation_frames)
		return;
	pthread_mutex_lock(&s->internal_mu);
	if (sqlite3_exec(s->internal, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		goto out;
	if (build_next_generation(s, cur, &log) == 0) {
		pthread_mutex_lock(&s->mu);
		if (store_gen_add(s, cur->number + 1, log) == 0) {
			cur->ended_ms = clock_unix_ms();
			store_sum_new_generation_locked(&s->sum);
			next = store_current_locked(s);
			next->prev_end = frame_log_head(cur->log);
			rolled = 1;
		} else {
			frame_log_close(log);
		}
		pthread_mutex_unlock(&s->mu);
	}
	/* The new base holds the head state, whose terms are known: kept
	 * for the next start (and forks), still under the write lock, so no
	 * commit changes them meanwhile. */
	if (rolled)
		store_terms_write(next->dir, s->sum.terms, s->sum.n_pages,
				  (uint64_t)s->sum.n_pages * WALFMT_PAGE_SIZE);
	sqlite3_exec(s->internal, "COMMIT", NULL, NULL, NULL);
out:
	pthread_mutex_unlock(&s->internal_mu);
	if (rolled) {
		/* The rollover synced the ended log: its pushes' frames are
		 * no longer needed in the push log. */
		push_log_release(cur->pushes, frame_log_synced_head(cur->log));
		store_log("generation %" PRIu32 " ended at frame %" PRIu32
			  "; now generation %" PRIu32,
			  cur->number, frame_log_head(cur->log),
			  cur->number + 1);
		store_notify(s);
	}
}

void store_gen_drop_expired(struct store *s)
{
	int64_t now = clock_unix_ms();

	/* Not while a group-commit leader may be syncing a log we free. */
	pthread_mutex_lock(&s->leader_mu);
	pthread_mutex_lock(&s->mu);
	while (s->n_gens > 1 && s->gens[0]->ended_ms != 0 &&
	       now - s->gens[0]->ended_ms > store_retention(s, NULL)) {
		struct generation *g = s->gens[0];
		memmove(s->gens, s->gens + 1,
			(s->n_gens - 1) * sizeof *s->gens);
		s->n_gens--;
		store_log("generation %" PRIu32 " is past retention; removed",
			  g->number);
		store_remove_tree(g->dir);
		store_gen_free(g);
	}
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_unlock(&s->leader_mu);
}
