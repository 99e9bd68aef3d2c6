/* Capture of SQL commits: every connection to the live database goes
 * through the observer VFS, whose commit hook writes the transaction to the
 * current generation's log before its commit frame reaches the live WAL;
 * the answer that reports it waits until the log is durable
 * (store_durable.c, group commit). */
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
#include "wal/wal_observer.h"

static int append_pages(struct generation *g, const struct wal_page *pages,
			size_t n, uint32_t db_size)
{
	struct frame_log_entry *e = calloc(n, sizeof *e);
	size_t i;
	int rv;

	if (e == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		e[i].pgno = pages[i].pgno;
		e[i].page = pages[i].data;
	}
	e[n - 1].db_size = db_size;
	rv = frame_log_write(g->log, e, n); /* synced by store_make_durable */
	free(e);
	return rv;
}

/* Runs in the committing connection's thread, with the live WAL's write lock
 * held: commits (and generation changes, which also take that lock) are
 * serialised, so the current generation cannot change under us. */
static int on_commit(void *arg, void *ctx, const char *path,
		     const struct wal_page *pages, size_t n, uint32_t db_size)
{
	struct store *s = arg;
	struct generation *g;
	uint64_t sum;
	uint32_t head;
	int rv;

	(void)ctx;
	(void)path;
	pthread_mutex_lock(&s->mu);
	if (s->failed[0] != '\0') {
		pthread_mutex_unlock(&s->mu);
		sqlite3_log(SQLITE_IOERR_WRITE, "replite: %s", s->failed);
		return SQLITE_IOERR_WRITE;
	}
	g = store_current_locked(s);
	pthread_mutex_unlock(&s->mu);
	if (n == 0)
		return SQLITE_IOERR_WRITE;
	/* The checksum after it, known before the frames can be read. */
	head = frame_log_written_head(g->log);
	rv = store_sum_apply(&s->sum, pages, n, db_size, &sum);
	if (rv == 0) {
		pthread_mutex_lock(&s->mu);
		rv = store_sum_record_locked(&s->sum, head + (uint32_t)n, sum);
		pthread_mutex_unlock(&s->mu);
	}
	/* Its time before its frames: time_log.h. */
	if (rv == 0)
		rv = time_log_append(g->times, head + (uint32_t)n,
				     clock_unix_ms());
	if (rv == 0) {
		rv = append_pages(g, pages, n, db_size);
		/* A broken log may hold the frames after all: keep the
		 * time for start-up to judge. */
		if (rv != 0 && !frame_log_broken(g->log))
			time_log_cut_after(g->times, head);
	}
	if (rv == 0)
		store_check_sql_commit(s, pages, n, db_size);
	if (rv != 0) {
		store_sum_undo(&s->sum);
		pthread_mutex_lock(&s->mu);
		store_sum_forget_locked(&s->sum, head);
		pthread_mutex_unlock(&s->mu);
		store_log(
		    "cannot append to the frame log of generation %" PRIu32
		    ": %s; the transaction is rolled back",
		    g->number, strerror(-rv));
		return SQLITE_IOERR_WRITE;
	}
	return SQLITE_OK;
}

static void on_commit_end(void *arg, void *ctx, const char *path, int published)
{
	struct store *s = arg;

	(void)ctx;
	(void)path;
	if (!published) {
		/* The log holds a transaction the live database does not:
		 * start-up replays it, nothing else can. */
		store_mark_failed(
		    s, "a logged transaction failed to commit to the "
		       "live database (I/O error on the live WAL)");
	}
	atomic_fetch_add_explicit(&s->commits_sql, 1, memory_order_relaxed);
	store_notify(s);
}

static void on_write_unlock(void *arg, void *ctx)
{
	struct store *s = arg;

	(void)ctx;
	pthread_mutex_lock(&s->unlock_mu);
	s->unlock_seq++;
	pthread_cond_broadcast(&s->unlock_cond);
	pthread_mutex_unlock(&s->unlock_mu);
}

#define BUSY_TIMEOUT_MS 5000
/* Also wait this long at most per attempt: a lock held by another process
 * (e.g. the sqlite3 shell on live.db) is released without a wake-up. */
#define BUSY_POLL_MS 10

/* When the current wait for a lock began.  SQLite calls the busy handler
 * of a statement on the thread that steps it, from count 0 up, so the
 * start of a wait is per thread; it cannot live in the store. */
static _Thread_local int64_t busy_since_ms;

static int busy_wait(void *arg, int count)
{
	struct store *s = arg;
	int64_t now = clock_monotonic_ms(), until;
	struct timespec ts;
	uint64_t seq;

	if (count == 0)
		busy_since_ms = now;
	if (now - busy_since_ms >= BUSY_TIMEOUT_MS)
		return 0;
	until = clock_unix_ms() + BUSY_POLL_MS;
	ts.tv_sec = until / 1000;
	ts.tv_nsec = (until % 1000) * 1000000L;
	pthread_mutex_lock(&s->unlock_mu);
	/* A release between SQLite's failed attempt and here is missed, but
	 * costs one poll interval at most. */
	seq = s->unlock_seq;
	while (seq == s->unlock_seq &&
	       pthread_cond_timedwait(&s->unlock_cond, &s->unlock_mu, &ts) == 0)
		;
	pthread_mutex_unlock(&s->unlock_mu);
	return 1;
}

static int configure_conn(sqlite3 *db)
{
	return sqlite3_exec(db,
			    "PRAGMA journal_mode=WAL;"
			    "PRAGMA synchronous=NORMAL;",
			    NULL, NULL, NULL);
}

/* The storage relies on WAL mode, on normal locking, and on every write
 * going to live.db: clients may not change those, nor reach other files. */
static int authorize(void *arg, int action, const char *a, const char *b,
		     const char *db_name, const char *trigger)
{
	(void)arg;
	(void)db_name;
	(void)trigger;
	/* VACUUM attaches a temporary database, named ""; VACUUM INTO and
	 * ATTACH name a file. */
	if (action == SQLITE_ATTACH && (a == NULL || a[0] != '\0'))
		return SQLITE_DENY;
	if (action == SQLITE_PRAGMA && b != NULL &&
	    (sqlite3_stricmp(a, "journal_mode") == 0 ||
	     sqlite3_stricmp(a, "locking_mode") == 0))
		return SQLITE_DENY;
	return SQLITE_OK;
}

int store_open_conn(void *arg, sqlite3 **out)
{
	struct store *s = arg;
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(s->live_path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			     s->vfs->zName);
	if (rc == SQLITE_OK) {
		sqlite3_busy_handler(db, busy_wait, s);
		rc = configure_conn(db);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_set_authorizer(db, authorize, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return SQLITE_OK;
}

int store_capture_register(struct store *s, char *err, size_t n)
{
	struct wal_observer_hooks hooks = {.on_commit = on_commit,
					   .on_commit_end = on_commit_end,
					   .on_write_unlock = on_write_unlock,
					   .arg = s};
	char name[64];
	int rc;

	snprintf(name, sizeof name, "replite-primary-%p", (void *)s);
	rc = s->overlay != NULL
		 ? wal_observer_register_over(
		       name, &hooks, live_overlay_vfs(s->overlay), &s->vfs)
		 : wal_observer_register(name, &hooks, &s->vfs);
	if (rc != SQLITE_OK) {
		errors_set(err, n, "cannot register the capture VFS: %s",
			   sqlite3_errstr(rc));
		return -1;
	}
	return 0;
}
