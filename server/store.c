#include "store.h"

#include <assert.h>
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "frame_log.h"
#include "sync/walfmt.h"
#include "vfs/wal_inject.h"
#include "vfs/wal_observer.h"

#define GEN_DIR_FMT "gen-%08" PRIu32
#define PENDING_BYTE_PAGE (0x40000000u / WALFMT_PAGE_SIZE + 1)

struct generation {
	uint32_t number;
	char *dir;
	struct frame_log *log;
	int64_t ended_ms; /* 0 while current */
};

/* Frames of a multi-request push that are not yet followed by a commit. */
struct pending_push {
	char *baton;
	uint32_t gen;
	uint32_t first; /* frame number of frames[0] */
	uint32_t next;  /* frame number the next request must start at */
	int strict;     /* no acknowledgment of an identical re-push */
	uint8_t *frames;
	size_t len;
	int64_t used_ms;
	struct pending_push *next_push;
};

struct store {
	struct store_config cfg;
	char *data_dir;
	char *live_path;
	char *database_id;
	sqlite3_vfs *vfs;

	/* mu guards gens, pending, failed and the listener. */
	pthread_mutex_t mu;
	struct generation **gens; /* ascending; the last one is current */
	size_t n_gens;
	struct pending_push *pending;
	char failed[512]; /* non-empty: writes are refused until restart */
	void (*listener)(void *arg);
	void *listener_arg;

	/* Writers waiting for the WAL write lock sleep on unlock_cond and
	 * are woken when it is released (unlock_seq advances), instead of
	 * SQLite's default busy handler sleeping up to 100 ms at a time,
	 * which starves the unlucky ones under contention. */
	pthread_mutex_t unlock_mu;
	pthread_cond_t unlock_cond;
	uint64_t unlock_seq;

	/* The internal connection, used for pushes and maintenance; its
	 * BEGIN IMMEDIATE is how they exclude SQL writers. */
	pthread_mutex_t internal_mu;
	sqlite3 *internal;
};

void store_config_defaults(struct store_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->data_dir = "./replite-data";
	cfg->generation_frames = 10000;
	cfg->retention_ms = 7LL * 24 * 3600 * 1000;
	cfg->max_push_bytes = 64u << 20;
	cfg->push_expiry_ms = 60 * 1000;
}

static void set_err(char *err, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

static void store_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void store_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("replite: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static struct generation *current_locked(struct store *s)
{
	assert(s->n_gens > 0);
	return s->gens[s->n_gens - 1];
}

static struct generation *find_gen_locked(struct store *s, uint32_t number)
{
	size_t i;

	for (i = 0; i < s->n_gens; i++) {
		if (s->gens[i]->number == number)
			return s->gens[i];
	}
	return NULL;
}

static void notify(struct store *s)
{
	void (*fn)(void *);
	void *arg;

	pthread_mutex_lock(&s->mu);
	fn = s->listener;
	arg = s->listener_arg;
	pthread_mutex_unlock(&s->mu);
	if (fn != NULL)
		fn(arg);
}

static void mark_failed(struct store *s, const char *why)
{
	pthread_mutex_lock(&s->mu);
	if (s->failed[0] == '\0') {
		snprintf(s->failed, sizeof s->failed, "%s", why);
	}
	pthread_mutex_unlock(&s->mu);
	store_log("writes disabled until restart: %s", why);
}

/* ---------------------------------------------------------------------- */
/* capture of SQL transactions (observer hooks) */

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
	rv = frame_log_append(g->log, e, n);
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
	int rv;

	(void)ctx;
	(void)path;
	pthread_mutex_lock(&s->mu);
	if (s->failed[0] != '\0') {
		pthread_mutex_unlock(&s->mu);
		sqlite3_log(SQLITE_IOERR_WRITE, "replite: %s", s->failed);
		return SQLITE_IOERR_WRITE;
	}
	g = current_locked(s);
	pthread_mutex_unlock(&s->mu);
	if (n == 0)
		return SQLITE_IOERR_WRITE;
	rv = append_pages(g, pages, n, db_size);
	if (rv != 0) {
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
		mark_failed(s, "a logged transaction failed to commit to the "
			       "live database (I/O error on the live WAL)");
	}
	notify(s);
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

/* ---------------------------------------------------------------------- */
/* connections */

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
	int64_t now = util_monotonic_ms(), until;
	struct timespec ts;
	uint64_t seq;

	if (count == 0)
		busy_since_ms = now;
	if (now - busy_since_ms >= BUSY_TIMEOUT_MS)
		return 0;
	until = util_now_ms() + BUSY_POLL_MS;
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

/* ---------------------------------------------------------------------- */
/* start-up: database id, import, generations, live catch-up */

static char *new_database_id(void)
{
	uint8_t b[16];

	if (RAND_bytes(b, sizeof b) != 1)
		return NULL;
	b[6] = (b[6] & 0x0f) | 0x40; /* UUID version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;
	return util_strdupf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
			    "%02x%02x%02x%02x%02x%02x",
			    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
			    b[8], b[9], b[10], b[11], b[12], b[13], b[14],
			    b[15]);
}

static int exec_check(sqlite3 *db, const char *sql, const char *what, char *err,
		      size_t n)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		set_err(err, n, "%s: %s", what, msg ? msg : sqlite3_errstr(rc));
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
		set_err(err, n, "%s: cannot open: %s", origin,
			sqlite3_errstr(rc));
		goto out;
	}
	rc = sqlite3_exec(db, "PRAGMA quick_check", NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		set_err(err, n, "%s is not a valid SQLite database: %s", origin,
			msg ? msg : sqlite3_errmsg(db));
		goto out;
	}
	rc = query_int(db, "PRAGMA page_size", &page_size);
	if (rc != SQLITE_OK) {
		set_err(err, n, "%s: %s", origin, sqlite3_errmsg(db));
		goto out;
	}
	if (page_size != WALFMT_PAGE_SIZE) {
		/* Replicas (ours and libSQL's) exchange 4096-byte pages. */
		rc = exec_check(db,
				"PRAGMA journal_mode=DELETE;"
				"PRAGMA page_size=4096; VACUUM;",
				"converting the page size to 4096", err, n);
		if (rc != SQLITE_OK)
			goto out;
		rc = query_int(db, "PRAGMA page_size", &page_size);
		if (rc != SQLITE_OK || page_size != WALFMT_PAGE_SIZE) {
			set_err(err, n,
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
		rc = exec_check(db,
				"PRAGMA journal_mode=WAL;"
				"PRAGMA wal_checkpoint(TRUNCATE);",
				"switching to WAL mode", err, n);
	else
		set_err(err, n, "%s: %s", origin, sqlite3_errstr(rc));
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
		rc = exec_check(db,
				"PRAGMA page_size=4096;"
				"PRAGMA journal_mode=WAL;"
				"CREATE TABLE replite_init(x);"
				"DROP TABLE replite_init;"
				"PRAGMA wal_checkpoint(TRUNCATE);",
				"creating an empty database", err, n);
	} else {
		set_err(err, n, "cannot create %s: %s", path,
			sqlite3_errstr(rc));
	}
	sqlite3_close(db);
	return rc;
}

static int create_first_generation(struct store *s, char *err, size_t n)
{
	char *tmp = util_strdupf("%s/gen-00000001.tmp", s->data_dir);
	char *final = util_strdupf("%s/gen-00000001", s->data_dir);
	char *base = util_strdupf("%s/base.db", tmp);
	char *log_path = util_strdupf("%s/frames.log", tmp);
	struct frame_log *log = NULL;
	int rv = -1;

	if (!tmp || !final || !base || !log_path) {
		set_err(err, n, "out of memory");
		goto out;
	}
	if (util_mkdir_p(tmp) != 0) {
		set_err(err, n, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (s->cfg.import_path != NULL) {
		int e = util_copy_file(s->cfg.import_path, base);
		if (e != 0) {
			set_err(err, n, "cannot import %s: %s",
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
	if (rename(tmp, final) != 0 || util_fsync_dir(s->data_dir) != 0) {
		set_err(err, n, "cannot create %s: %s", final, strerror(errno));
		goto out;
	}
	rv = 0;
out:
	free(tmp);
	free(final);
	free(base);
	free(log_path);
	return rv;
}

static int load_or_create_id(struct store *s, int *is_new, char *err, size_t n)
{
	char *path = util_strdupf("%s/database.json", s->data_dir);
	char *text = NULL;
	size_t len;
	json_t *j = NULL;
	json_error_t jerr;
	int rv = -1, e;

	*is_new = 0;
	e = util_read_file(path, &text, &len);
	if (e == -ENOENT) {
		char *body;
		*is_new = 1;
		s->database_id = new_database_id();
		body =
		    util_strdupf("{\"format\": 1, \"database_id\": \"%s\"}\n",
				 s->database_id);
		e = body ? util_write_file_atomic(path, body, strlen(body))
			 : -ENOMEM;
		free(body);
		if (e != 0) {
			set_err(err, n, "cannot write %s: %s", path,
				strerror(-e));
			goto out;
		}
		rv = 0;
		goto out;
	}
	if (e != 0) {
		set_err(err, n, "cannot read %s: %s", path, strerror(-e));
		goto out;
	}
	j = json_loads(text, 0, &jerr);
	if (j == NULL || !json_is_string(json_object_get(j, "database_id"))) {
		set_err(err, n,
			"%s is corrupt: expected {\"database_id\": ...}", path);
		goto out;
	}
	s->database_id =
	    strdup(json_string_value(json_object_get(j, "database_id")));
	rv = 0;
out:
	json_decref(j);
	free(text);
	free(path);
	return rv;
}

static int cmp_gen(const void *a, const void *b)
{
	const struct generation *x = *(struct generation *const *)a;
	const struct generation *y = *(struct generation *const *)b;

	return x->number < y->number ? -1 : x->number > y->number;
}

static int add_gen(struct store *s, uint32_t number, struct frame_log *log)
{
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
	g->log = log;
	s->gens[s->n_gens++] = g;
	return 0;
}

static void free_gen(struct generation *g)
{
	if (g->log != NULL)
		frame_log_close(g->log);
	free(g->dir);
	free(g);
}

static void remove_tree(const char *dir)
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
		return util_now_ms();
	return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* Scan gen-* directories; leftovers of an interrupted rollover (*.tmp) are
 * removed.  Every generation's log is opened, which drops torn tails. */
static int load_generations(struct store *s, char *err, size_t n)
{
	DIR *d = opendir(s->data_dir);
	struct dirent *e;
	size_t i;
	int rv = 0;

	if (d == NULL) {
		set_err(err, n, "cannot read %s: %s", s->data_dir,
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
				remove_tree(tmp);
			free(tmp);
			continue;
		}
		if (sscanf(e->d_name, "gen-%" SCNu32, &number) != 1 ||
		    number == 0)
			continue;
		path = util_strdupf("%s/%s/frames.log", s->data_dir, e->d_name);
		if (path == NULL || frame_log_open(path, 0, &log, err, n) != 0)
			rv = -1;
		else if (add_gen(s, number, log) != 0)
			rv = -1;
		free(path);
	}
	closedir(d);
	if (rv != 0)
		return rv;
	if (s->n_gens == 0) {
		set_err(err, n, "%s has database.json but no generation",
			s->data_dir);
		return -1;
	}
	qsort(s->gens, s->n_gens, sizeof *s->gens, cmp_gen);
	for (i = 0; i + 1 < s->n_gens; i++) {
		char *next_base =
		    util_strdupf("%s/base.db", s->gens[i + 1]->dir);
		s->gens[i]->ended_ms = file_mtime_ms(next_base);
		free(next_base);
	}
	return 0;
}

/* Bring the live database up to the head of the log.  Every transaction is
 * in the log before it is in the live database, so the live file holds the
 * state of some frame M <= head of the current generation, and the state at
 * the generation's start is its base.  Replaying all of the generation's
 * frames onto it therefore yields exactly the head state: pages changed in
 * the generation get their latest image, the others are already equal. */
static int live_catch_up(struct store *s, char *err, size_t n)
{
	struct generation *g = current_locked(s);
	char *base = util_strdupf("%s/base.db", g->dir);
	sqlite3 *db = NULL;
	int fd = -1, rv = -1, rc, e;

	if (access(s->live_path, F_OK) != 0) {
		char *wal = util_strdupf("%s-wal", s->live_path);
		char *shm = util_strdupf("%s-shm", s->live_path);
		if (wal)
			unlink(wal);
		if (shm)
			unlink(shm);
		free(wal);
		free(shm);
		e = util_copy_file(base, s->live_path);
		if (e != 0) {
			set_err(err, n, "cannot create %s from %s: %s",
				s->live_path, base, strerror(-e));
			goto out;
		}
	}
	rc = sqlite3_open_v2(s->live_path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = exec_check(db, "PRAGMA wal_checkpoint(TRUNCATE)",
				"checkpointing the live database", err, n);
	else
		set_err(err, n, "cannot open %s: %s", s->live_path,
			sqlite3_errstr(rc));
	if (sqlite3_close(db) != SQLITE_OK || rc != SQLITE_OK)
		goto out;
	if (frame_log_head(g->log) > 0) {
		fd = open(s->live_path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			set_err(err, n, "cannot open %s: %s", s->live_path,
				strerror(errno));
			goto out;
		}
		e = frame_log_replay(g->log, frame_log_head(g->log), fd);
		if (e != 0) {
			set_err(err, n,
				"cannot replay the frame log onto %s: %s",
				s->live_path, strerror(-e));
			goto out;
		}
	}
	rv = 0;
out:
	if (fd >= 0)
		close(fd);
	free(base);
	return rv;
}

static int open_internal(struct store *s, char *err, size_t n)
{
	struct wal_observer_hooks hooks = {.on_commit = on_commit,
					   .on_commit_end = on_commit_end,
					   .on_write_unlock = on_write_unlock,
					   .arg = s};
	char name[64];
	int rc;

	snprintf(name, sizeof name, "replite-primary-%p", (void *)s);
	rc = wal_observer_register(name, &hooks, &s->vfs);
	if (rc != SQLITE_OK) {
		set_err(err, n, "cannot register the capture VFS: %s",
			sqlite3_errstr(rc));
		return -1;
	}
	rc = store_open_conn(s, &s->internal);
	if (rc != SQLITE_OK) {
		set_err(err, n, "cannot open %s: %s", s->live_path,
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
		set_err(err, n, "out of memory");
		return -1;
	}
	s->cfg = *cfg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->internal_mu, NULL);
	pthread_mutex_init(&s->unlock_mu, NULL);
	pthread_cond_init(&s->unlock_cond, NULL);
	s->data_dir = strdup(cfg->data_dir);
	s->live_path = util_strdupf("%s/live.db", cfg->data_dir);
	if (util_mkdir_p(cfg->data_dir) != 0) {
		set_err(err, n, "cannot create data directory %s: %s",
			cfg->data_dir, strerror(errno));
		goto err;
	}
	if (load_or_create_id(s, &is_new, err, n) != 0)
		goto err;
	if (!is_new && cfg->import_path != NULL) {
		set_err(err, n,
			"%s already holds a database; --import only seeds a "
			"new data directory",
			cfg->data_dir);
		goto err;
	}
	if (is_new && create_first_generation(s, err, n) != 0) {
		char *id = util_strdupf("%s/database.json", cfg->data_dir);
		if (id != NULL)
			unlink(id); /* so that a retry starts afresh */
		free(id);
		goto err;
	}
	if (load_generations(s, err, n) != 0)
		goto err;
	if (live_catch_up(s, err, n) != 0)
		goto err;
	if (open_internal(s, err, n) != 0)
		goto err;
	*out = s;
	return 0;
err:
	store_close(s);
	return -1;
}

static void free_pending(struct pending_push *p)
{
	free(p->baton);
	free(p->frames);
	free(p);
}

void store_close(struct store *s)
{
	size_t i;

	if (s == NULL)
		return;
	if (s->internal != NULL)
		sqlite3_close(s->internal);
	if (s->vfs != NULL)
		wal_observer_unregister(s->vfs);
	for (i = 0; i < s->n_gens; i++)
		free_gen(s->gens[i]);
	free(s->gens);
	while (s->pending != NULL) {
		struct pending_push *p = s->pending;
		s->pending = p->next_push;
		free_pending(p);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->internal_mu);
	pthread_mutex_destroy(&s->unlock_mu);
	pthread_cond_destroy(&s->unlock_cond);
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
	g = current_locked(s)->number;
	pthread_mutex_unlock(&s->mu);
	return g;
}

uint32_t store_head(struct store *s)
{
	struct generation *g;

	pthread_mutex_lock(&s->mu);
	g = current_locked(s);
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

json_t *store_info(struct store *s)
{
	struct generation *g;
	uint32_t oldest;

	pthread_mutex_lock(&s->mu);
	g = current_locked(s);
	oldest = s->gens[0]->number;
	pthread_mutex_unlock(&s->mu);
	return json_pack("{s:I, s:s, s:I, s:I}", "current_generation",
			 (json_int_t)g->number, "database_id", s->database_id,
			 "max_frame_no", (json_int_t)frame_log_head(g->log),
			 "oldest_generation", (json_int_t)oldest);
}

/* ---------------------------------------------------------------------- */
/* pull and export */

enum store_pull store_pull(struct store *s, uint32_t gen, uint32_t start,
			   uint32_t end, struct store_frames *out)
{
	struct generation *g;
	enum store_pull res;
	uint32_t head;

	if (start == 0 || end <= start)
		return STORE_PULL_BAD_RANGE;
	pthread_mutex_lock(&s->mu);
	g = find_gen_locked(s, gen);
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
	res = STORE_PULL_FRAMES;
out:
	pthread_mutex_unlock(&s->mu);
	return res;
}

int store_export(struct store *s, uint32_t gen, int *fd, uint64_t *size)
{
	struct generation *g;
	struct stat st;
	char *path = NULL;
	int rv = -1;

	pthread_mutex_lock(&s->mu);
	g = find_gen_locked(s, gen);
	if (g != NULL)
		path = util_strdupf("%s/base.db", g->dir);
	if (path != NULL) {
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd >= 0 && fstat(*fd, &st) == 0) {
			*size = (uint64_t)st.st_size;
			rv = 0;
		} else if (*fd >= 0) {
			close(*fd);
		}
	}
	pthread_mutex_unlock(&s->mu);
	free(path);
	return rv;
}

/* ---------------------------------------------------------------------- */
/* push */

static void push_reply(struct http_reply *r, const char *status, uint32_t gen,
		       uint32_t max_frame_no, const char *baton)
{
	http_reply_json(r, 200,
			json_pack("{s:s, s:I, s:I, s:o}", "status", status,
				  "generation", (json_int_t)gen, "max_frame_no",
				  (json_int_t)max_frame_no, "baton",
				  baton ? json_string(baton) : json_null()));
}

/* Structural checks of pushed frames: the page numbers, the commit sizes and
 * the database header, so that a bad client cannot corrupt the primary. */
/* What makes a pushed page 1 unusable as the live database's header, or
 * NULL.  SQLite accepts some such headers at first and then fails every
 * later write (SQLITE_NOTADB, SQLITE_CORRUPT), even after a restart, so they
 * never reach the log. */
static const char *page1_problem(const uint8_t *page)
{
	if (memcmp(page, "SQLite format 3", 16) != 0)
		return "is not a SQLite database header";
	if (walfmt_db_page_size(page) != WALFMT_PAGE_SIZE)
		return "has a page size other than 4096";
	if (page[18] < 1 || page[18] > 2 || page[19] < 1 || page[19] > 2)
		return "has unknown file format versions (bytes 18-19)";
	if (page[20] != 0)
		return "reserves bytes at the end of each page (byte 20), "
		       "which the primary's database does not";
	if (page[21] != 64 || page[22] != 32 || page[23] != 32)
		return "has invalid payload fractions (bytes 21-23)";
	return NULL;
}

static int validate_frames(const uint8_t *body, size_t n_frames, char *why,
			   size_t n)
{
	size_t i;

	for (i = 0; i < n_frames; i++) {
		const uint8_t *f = body + i * WALFMT_FRAME_SIZE;
		uint32_t pgno = walfmt_get32(f);
		uint32_t db_size = walfmt_get32(f + 4);

		if (pgno == 0) {
			set_err(why, n, "frame %zu has page number 0", i);
			return -1;
		}
		if (pgno == PENDING_BYTE_PAGE) {
			set_err(why, n,
				"frame %zu writes the pending-byte page %u", i,
				pgno);
			return -1;
		}
		if (db_size != 0 && db_size >= PENDING_BYTE_PAGE * 64u) {
			set_err(why, n,
				"frame %zu has an implausible database "
				"size of %u pages",
				i, db_size);
			return -1;
		}
		if (pgno == 1) {
			const char *bad =
			    page1_problem(f + WALFMT_FRAME_HDR_SIZE);
			if (bad != NULL) {
				set_err(why, n, "frame %zu: page 1 %s", i, bad);
				return -1;
			}
		}
	}
	return 0;
}

static struct pending_push *find_pending_locked(struct store *s,
						const char *baton)
{
	struct pending_push *p;

	for (p = s->pending; p != NULL; p = p->next_push) {
		if (strcmp(p->baton, baton) == 0)
			return p;
	}
	return NULL;
}

static void unlink_pending_locked(struct store *s, struct pending_push *p)
{
	struct pending_push **pp = &s->pending;

	while (*pp != NULL && *pp != p)
		pp = &(*pp)->next_push;
	if (*pp == p)
		*pp = p->next_push;
}

/* Index (0-based) of the last commit frame in the buffer, or -1. */
static ssize_t last_commit(const uint8_t *frames, size_t n_frames)
{
	ssize_t i;

	for (i = (ssize_t)n_frames - 1; i >= 0; i--) {
		if (walfmt_get32(frames + (size_t)i * WALFMT_FRAME_SIZE + 4))
			return i;
	}
	return -1;
}

/* Frames pushed again after a lost reply: equal to what the log holds. */
static int same_as_logged(struct generation *g, uint32_t start,
			  const uint8_t *frames, size_t n_frames)
{
	uint8_t *buf = malloc(n_frames * WALFMT_FRAME_SIZE);
	size_t i;
	int same = 0;

	if (buf == NULL)
		return 0;
	if (frame_log_read(g->log, start, start + (uint32_t)n_frames, buf) != 0)
		goto out;
	for (i = 0; i < n_frames; i++) {
		const uint8_t *a = buf + i * WALFMT_FRAME_SIZE;
		const uint8_t *b = frames + i * WALFMT_FRAME_SIZE;
		if (memcmp(a, b, 8) != 0 ||
		    memcmp(a + WALFMT_FRAME_HDR_SIZE, b + WALFMT_FRAME_HDR_SIZE,
			   WALFMT_PAGE_SIZE) != 0)
			goto out;
	}
	same = 1;
out:
	free(buf);
	return same;
}

/* Append frames [first, first + n) to the log one for one and publish their
 * pages in the live database, as one atomic step under the write lock. */
static int apply_frames(struct store *s, uint32_t gen, uint32_t first,
			int strict, const uint8_t *frames, size_t n,
			uint32_t *head_out, char *why, size_t why_len)
{
	struct frame_log_entry *e = calloc(n, sizeof *e);
	struct wal_page *pages = calloc(n, sizeof *pages);
	struct wal_inject_opts opts = {wal_observer_unwrap, 0,
				       WALFMT_PAGE_SIZE};
	struct generation *g;
	char *msg = NULL;
	uint32_t head;
	size_t i;
	int rv = -1, rc;

	if (e == NULL || pages == NULL) {
		set_err(why, why_len, "out of memory");
		goto out_free;
	}
	pthread_mutex_lock(&s->internal_mu);
	rc = sqlite3_exec(s->internal, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		set_err(why, why_len, "cannot take the write lock: %s",
			sqlite3_errmsg(s->internal));
		goto out_unlock;
	}
	pthread_mutex_lock(&s->mu);
	g = current_locked(s);
	pthread_mutex_unlock(&s->mu);
	head = frame_log_head(g->log);
	*head_out = head;
	if (!strict && g->number == gen && first <= head &&
	    first + n - 1 > head &&
	    same_as_logged(g, first, frames, head - first + 1)) {
		/* A push again whose first part is logged already (the answer
		 * to it was lost with a restart), followed by frames that are
		 * not: the logged part ends at a commit frame, so the rest
		 * starts a transaction right after the head. */
		size_t skip = head - first + 1;
		frames += skip * WALFMT_FRAME_SIZE;
		n -= skip;
		first = head + 1;
	}
	if (g->number != gen || first != head + 1) {
		int same = !strict && g->number == gen && first <= head &&
			   first + n - 1 <= head &&
			   same_as_logged(g, first, frames, n);
		rv = same ? 0 : 1;
		if (same)
			*head_out = first + (uint32_t)n - 1;
		goto out_rollback;
	}
	for (i = 0; i < n; i++) {
		const uint8_t *f = frames + i * WALFMT_FRAME_SIZE;
		e[i].pgno = walfmt_get32(f);
		e[i].db_size = walfmt_get32(f + 4);
		e[i].page = f + WALFMT_FRAME_HDR_SIZE;
		pages[i].pgno = e[i].pgno;
		pages[i].data = e[i].page;
	}
	rc = frame_log_append(g->log, e, n);
	if (rc != 0) {
		set_err(why, why_len, "cannot append to the frame log: %s",
			strerror(-rc));
		goto out_rollback;
	}
	rc = wal_inject(s->internal, &opts, pages, n, e[n - 1].db_size, &msg);
	if (rc != SQLITE_OK) {
		set_err(why, why_len,
			"pushed frames are durable in the log but could not be "
			"applied to the live database: %s",
			msg ? msg : sqlite3_errstr(rc));
		mark_failed(s, why);
		sqlite3_free(msg);
		/* Durable and acknowledged: start-up will apply them. */
	}
	*head_out = frame_log_head(g->log);
	rv = 0;
out_rollback:
	/* Nothing is dirty: COMMIT writes no frame and releases the lock. */
	sqlite3_exec(s->internal, "COMMIT", NULL, NULL, NULL);
	if (sqlite3_get_autocommit(s->internal) == 0)
		sqlite3_exec(s->internal, "ROLLBACK", NULL, NULL, NULL);
out_unlock:
	pthread_mutex_unlock(&s->internal_mu);
out_free:
	free(e);
	free(pages);
	return rv;
}

static int pending_append(struct pending_push *p, const uint8_t *body,
			  size_t len)
{
	uint8_t *frames = realloc(p->frames, p->len + len);

	if (frames == NULL)
		return -ENOMEM;
	memcpy(frames + p->len, body, len);
	p->frames = frames;
	p->len += len;
	return 0;
}

void store_push(struct store *s, uint32_t gen, uint32_t start, uint32_t end,
		const char *baton, int strict, const uint8_t *body, size_t len,
		struct http_reply *reply)
{
	struct pending_push *p = NULL;
	size_t n_frames, keep;
	ssize_t commit;
	uint32_t head = 0;
	char why[512];
	int rv;

	if (start == 0 || end <= start) {
		http_reply_error(reply, 400, "INVALID_FRAME_RANGE",
				 "invalid frame range [%u, %u)", start, end);
		return;
	}
	n_frames = end - start;
	if (len != n_frames * WALFMT_FRAME_SIZE) {
		http_reply_error(reply, 400, "INVALID_FRAMES",
				 "body has %zu bytes; frames [%u, %u) need "
				 "%zu bytes (%d bytes per frame: 24-byte "
				 "header + 4096-byte page)",
				 len, start, end, n_frames * WALFMT_FRAME_SIZE,
				 WALFMT_FRAME_SIZE);
		return;
	}
	if (validate_frames(body, n_frames, why, sizeof why) != 0) {
		http_reply_error(reply, 400, "INVALID_FRAMES", "%s", why);
		return;
	}
	pthread_mutex_lock(&s->mu);
	if (s->failed[0] != '\0') {
		http_reply_error(reply, 503, "PRIMARY_FAILED", "%s", s->failed);
		goto out_unlock;
	}
	if (baton != NULL)
		p = find_pending_locked(s, baton);
	if (p == NULL) {
		/* A new push, or one whose baton is gone (expired, or lost
		 * with a restart: buffered frames are not durable).  If it
		 * starts past the head, the frames before it are not here:
		 * answer "ok" with the head.  The libSQL client takes a lower
		 * max_frame_no as InvalidPushFrameNoLow, moves its durable
		 * frame number back to it and pushes again from head + 1;
		 * "conflict" would leave it stuck. */
		struct generation *g = current_locked(s);
		uint32_t cur_head = frame_log_head(g->log);
		if (g->number == gen && start > cur_head + 1) {
			push_reply(reply, "ok", gen, cur_head, NULL);
			goto out_unlock;
		}
	}
	if (p != NULL) {
		if (p->gen != gen || p->next != start) {
			http_reply_error(reply, 400, "PUSH_OUT_OF_ORDER",
					 "push continues at frame %u of "
					 "generation %u, not %u of %u",
					 p->next, p->gen, start, gen);
			goto out_unlock;
		}
		unlink_pending_locked(s, p);
	} else {
		p = calloc(1, sizeof *p);
		if (p == NULL) {
			http_reply_error(reply, 500, "OUT_OF_MEMORY",
					 "out of memory");
			goto out_unlock;
		}
		p->gen = gen;
		p->first = start;
		p->strict = strict;
	}
	pthread_mutex_unlock(&s->mu);

	if (p->len + len > s->cfg.max_push_bytes) {
		http_reply_error(reply, 413, "PUSH_TOO_LARGE",
				 "a push may buffer at most %zu bytes of "
				 "frames before a commit frame",
				 s->cfg.max_push_bytes);
		free_pending(p);
		return;
	}
	if (pending_append(p, body, len) != 0) {
		http_reply_error(reply, 500, "OUT_OF_MEMORY", "out of memory");
		free_pending(p);
		return;
	}
	p->next = end;
	p->used_ms = util_monotonic_ms();
	commit = last_commit(p->frames, p->len / WALFMT_FRAME_SIZE);
	if (commit >= 0) {
		size_t n_apply = (size_t)commit + 1;
		rv = apply_frames(s, gen, p->first, p->strict, p->frames,
				  n_apply, &head, why, sizeof why);
		if (rv < 0) {
			http_reply_error(reply, 500, "PUSH_FAILED", "%s", why);
			free_pending(p);
			return;
		}
		if (rv > 0) {
			push_reply(reply, "conflict", store_generation(s), head,
				   NULL);
			free_pending(p);
			return;
		}
		keep = p->len - n_apply * WALFMT_FRAME_SIZE;
		memmove(p->frames, p->frames + n_apply * WALFMT_FRAME_SIZE,
			keep);
		p->len = keep;
		p->first += (uint32_t)n_apply;
		notify(s);
	}
	if (p->len == 0) {
		push_reply(reply, "ok", gen, end - 1, NULL);
		free_pending(p);
		return;
	}
	if (p->baton == NULL)
		p->baton = util_random_token(24);
	push_reply(reply, "ok", gen, end - 1, p->baton);
	pthread_mutex_lock(&s->mu);
	p->next_push = s->pending;
	s->pending = p;
out_unlock:
	pthread_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------------------------- */
/* maintenance */

static void expire_pushes(struct store *s)
{
	int64_t now = util_monotonic_ms();
	struct pending_push **pp;

	pthread_mutex_lock(&s->mu);
	pp = &s->pending;
	while (*pp != NULL) {
		struct pending_push *p = *pp;
		if (now - p->used_ms > s->cfg.push_expiry_ms) {
			*pp = p->next_push;
			free_pending(p);
		} else {
			pp = &p->next_push;
		}
	}
	pthread_mutex_unlock(&s->mu);
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
	remove_tree(tmp);
	if (util_mkdir_p(tmp) != 0 || util_copy_file(src, base) != 0)
		goto out;
	fd = open(base, O_RDWR | O_CLOEXEC);
	if (fd < 0 ||
	    frame_log_replay(cur->log, frame_log_head(cur->log), fd) != 0)
		goto out;
	if (frame_log_open(log_path, 1, log_out, err, sizeof err) != 0) {
		store_log("rollover: %s", err);
		goto out;
	}
	if (rename(tmp, final) != 0 || util_fsync_dir(s->data_dir) != 0) {
		frame_log_close(*log_out);
		goto out;
	}
	rv = 0;
out:
	if (rv != 0) {
		store_log("rollover to generation %" PRIu32 " failed: %s", next,
			  strerror(errno));
		if (tmp != NULL)
			remove_tree(tmp);
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

static void maybe_rollover(struct store *s)
{
	struct generation *cur;
	struct frame_log *log = NULL;
	int rolled = 0;

	pthread_mutex_lock(&s->mu);
	cur = current_locked(s);
	pthread_mutex_unlock(&s->mu);
	if (frame_log_head(cur->log) < s->cfg.generation_frames)
		return;
	pthread_mutex_lock(&s->internal_mu);
	if (sqlite3_exec(s->internal, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		goto out;
	if (build_next_generation(s, cur, &log) == 0) {
		pthread_mutex_lock(&s->mu);
		if (add_gen(s, cur->number + 1, log) == 0) {
			cur->ended_ms = util_now_ms();
			rolled = 1;
		}
		pthread_mutex_unlock(&s->mu);
	}
	sqlite3_exec(s->internal, "COMMIT", NULL, NULL, NULL);
out:
	pthread_mutex_unlock(&s->internal_mu);
	if (rolled) {
		store_log("generation %" PRIu32 " ended at frame %" PRIu32
			  "; now generation %" PRIu32,
			  cur->number, frame_log_head(cur->log),
			  cur->number + 1);
		notify(s);
	}
}

static void drop_expired_generations(struct store *s)
{
	int64_t now = util_now_ms();

	pthread_mutex_lock(&s->mu);
	while (s->n_gens > 1 && s->gens[0]->ended_ms != 0 &&
	       now - s->gens[0]->ended_ms > s->cfg.retention_ms) {
		struct generation *g = s->gens[0];
		memmove(s->gens, s->gens + 1,
			(s->n_gens - 1) * sizeof *s->gens);
		s->n_gens--;
		store_log("generation %" PRIu32 " is past retention; removed",
			  g->number);
		remove_tree(g->dir);
		free_gen(g);
	}
	pthread_mutex_unlock(&s->mu);
}

void store_maintain(struct store *s)
{
	expire_pushes(s);
	maybe_rollover(s);
	drop_expired_generations(s);
	/* Injected frames never trigger SQLite's auto-checkpoint. */
	pthread_mutex_lock(&s->internal_mu);
	sqlite3_wal_checkpoint_v2(s->internal, "main",
				  SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	pthread_mutex_unlock(&s->internal_mu);
}
