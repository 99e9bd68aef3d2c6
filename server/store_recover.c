/* Start-up: the database id (database.json) and bringing the live database
 * up to the head of the log. */
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

#include <openssl/rand.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "util.h"

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

int store_write_new_id(const char *dir, char *err, size_t n)
{
	char *id = new_database_id();
	char *path = util_strdupf("%s/database.json", dir);
	char *body = id != NULL ? util_strdupf("{\"format\": 1, "
					       "\"database_id\": \"%s\"}\n",
					       id)
				: NULL;
	int e = body != NULL && path != NULL
		    ? fileio_write_file_atomic(path, body, strlen(body))
		    : -ENOMEM;

	if (e != 0)
		errors_set(err, n, "cannot write %s/database.json: %s", dir,
			   strerror(-e));
	free(id);
	free(path);
	free(body);
	return e != 0 ? -1 : 0;
}

int store_recover_id(struct store *s, int *is_new, char *err, size_t n)
{
	char *path = util_strdupf("%s/database.json", s->data_dir);
	char *text = NULL;
	size_t len;
	json_t *j = NULL;
	json_error_t jerr;
	int rv = -1, e;

	*is_new = 0;
	e = fileio_read_file(path, &text, &len);
	if (e == -ENOENT) {
		char *body;
		*is_new = 1;
		s->database_id = new_database_id();
		body =
		    util_strdupf("{\"format\": 1, \"database_id\": \"%s\"}\n",
				 s->database_id);
		e = body ? fileio_write_file_atomic(path, body, strlen(body))
			 : -ENOMEM;
		free(body);
		if (e != 0) {
			errors_set(err, n, "cannot write %s: %s", path,
				   strerror(-e));
			goto out;
		}
		rv = 0;
		goto out;
	}
	if (e != 0) {
		errors_set(err, n, "cannot read %s: %s", path, strerror(-e));
		goto out;
	}
	j = json_loads(text, 0, &jerr);
	if (j == NULL || !json_is_string(json_object_get(j, "database_id"))) {
		errors_set(err, n,
			   "%s is corrupt: expected {\"database_id\": ...}",
			   path);
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

/* A live WAL that is still there, even empty (a TRUNCATE checkpoint
 * empties it): the server did not close the live database, whose last
 * connection's close checkpoints the WAL and deletes it. */
static int stopped_uncleanly(struct store *s)
{
	char *wal = util_strdupf("%s-wal", s->live_path);
	int rv = wal == NULL || access(wal, F_OK) == 0;

	free(wal);
	return rv;
}

/* How live.db stands to the current generation's base: a file of its own
 * (no live.base), sparse over that base (live.base is a link to it: a fork
 * that has not rolled over), or sparse over a base that is no longer the
 * current one (the fork rolled over: live.base is an older base). */
enum live_kind { LIVE_OWN, LIVE_SHARED, LIVE_STALE };

static enum live_kind live_kind(const char *live_base, const char *base)
{
	struct stat a, b;

	if (stat(live_base, &a) != 0)
		return LIVE_OWN;
	if (stat(base, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		return LIVE_SHARED;
	return LIVE_STALE;
}

/* live.db as a sparse file of base's size: every page a hole, read from
 * the base through the overlay until written. */
static int create_sparse(const char *base, const char *live)
{
	struct stat st;
	int fd, e = 0;

	if (stat(base, &st) != 0)
		return -errno;
	fd = open(live, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, st.st_size) != 0 || fsync(fd) != 0)
		e = -errno;
	close(fd);
	return e;
}

/* live.db goes first: a sparse live.db is never without its live.base. */
static int drop_shared_live(struct store *s, const char *live_base, char *err,
			    size_t n)
{
	if ((unlink(s->live_path) != 0 && errno != ENOENT) ||
	    fileio_fsync_dir(s->data_dir) != 0 ||
	    (unlink(live_base) != 0 && errno != ENOENT) ||
	    fileio_fsync_dir(s->data_dir) != 0) {
		errors_set(err, n, "cannot remove %s or %s: %s", s->live_path,
			   live_base, strerror(errno));
		return -1;
	}
	return 0;
}

/* Bring the live database up to the head of the log.
 *
 * After a clean stop, every transaction in live.db is durable in the log
 * (store_close makes the log durable before the last connection
 * checkpoints), so live.db holds the state of some frame M <= head of the
 * current generation, and the state at the generation's start is its base.
 * Replaying all of the generation's frames onto it therefore yields exactly
 * the head state: pages changed in the generation get their latest image,
 * the others are already equal.
 *
 * After an unclean stop, the live WAL, and live.db if a checkpoint copied
 * them, may hold commits whose frames were written to the log but lost
 * before they were durable (group commit, store_durable.c): nobody was told
 * of them, and they must not come back.  live.db is then rebuilt from the
 * generation's base, as for a missing one.
 *
 * A fork's live.db that shares the base (live_overlay.h) is rebuilt as a
 * sparse file instead of a copy, and read through the overlay, whose bits
 * come from the log just replayed; once the fork has a base of its own,
 * live.db is rebuilt whole and live.base dropped. */
int store_recover_live(struct store *s, char *err, size_t n)
{
	struct generation *g = store_current_locked(s);
	char *base = util_strdupf("%s/base.db", g->dir);
	char *live_base = util_strdupf("%s/live.base", s->data_dir);
	int fd = -1, rv = -1, e, missing;
	enum live_kind kind;

	if (base == NULL || live_base == NULL) {
		errors_set(err, n, "out of memory");
		goto out;
	}
	kind = live_kind(live_base, base);
	if (kind == LIVE_STALE) {
		store_log("the live database was shared with the base of an "
			  "earlier generation: rebuilding it whole from "
			  "generation %" PRIu32 "'s base",
			  g->number);
		if (drop_shared_live(s, live_base, err, n) != 0)
			goto out;
		kind = LIVE_OWN;
	}
	missing = access(s->live_path, F_OK) != 0;
	if (missing || stopped_uncleanly(s)) {
		char *wal = util_strdupf("%s-wal", s->live_path);
		char *shm = util_strdupf("%s-shm", s->live_path);
		if (!missing)
			store_log("the last stop was not clean: rebuilding the "
				  "live database from generation %" PRIu32
				  "'s base and %" PRIu32 " logged frames",
				  g->number, frame_log_head(g->log));
		/* live.db first: a crash from here on finds it missing and
		 * comes back here, never a live.db without its WAL. */
		if (!missing && (unlink(s->live_path) != 0 ||
				 fileio_fsync_dir(s->data_dir) != 0)) {
			errors_set(err, n, "cannot remove %s: %s", s->live_path,
				   strerror(errno));
			free(wal);
			free(shm);
			goto out;
		}
		if (wal)
			unlink(wal);
		if (shm)
			unlink(shm);
		free(wal);
		free(shm);
		e = kind == LIVE_SHARED ? create_sparse(base, s->live_path)
					: fileio_copy_file(base, s->live_path);
		if (e == 0 && fileio_fsync_dir(s->data_dir) != 0)
			e = -errno;
		if (e != 0) {
			errors_set(err, n, "cannot create %s from %s: %s",
				   s->live_path, base, strerror(-e));
			goto out;
		}
	}
	/* No SQLite here: live.db has no WAL at this point (a clean stop's
	 * last close removed it, a rebuild deleted it), and a replay that a
	 * crash cut short leaves a file SQLite may call malformed, which
	 * the replay below repairs: it writes every page the generation
	 * changed, in order, and sets the size, whatever the file held. */
	if (frame_log_head(g->log) > 0) {
		fd = open(s->live_path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			errors_set(err, n, "cannot open %s: %s", s->live_path,
				   strerror(errno));
			goto out;
		}
		e = frame_log_replay(g->log, frame_log_head(g->log), fd);
		if (e != 0) {
			errors_set(err, n,
				   "cannot replay the frame log onto %s: %s",
				   s->live_path, strerror(-e));
			goto out;
		}
	}
	/* A shared live.db holds exactly the pages of the log just
	 * replayed; the base has the others. */
	if (kind == LIVE_SHARED) {
		if (live_overlay_open(live_base, s->live_path, &s->overlay, err,
				      n) != 0)
			goto out;
		e = live_overlay_take_log(s->overlay, g->log);
		if (e != 0) {
			errors_set(err, n,
				   "cannot read the frame log of %s: %s",
				   s->data_dir, strerror(-e));
			goto out;
		}
	}
	rv = 0;
out:
	if (fd >= 0)
		close(fd);
	free(base);
	free(live_base);
	return rv;
}
