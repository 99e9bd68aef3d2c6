/* A new database as a copy of a state of this one (store.h, store_fork):
 * branching and point-in-time restore.
 *
 * The state after frame F of generation G is base(G) with G's frames 1..F
 * applied, so the new database is one generation holding exactly that:
 *
 *   DIR/database.json              a new database id: replicas of the
 *                                  source never take the fork for it
 *   DIR/gen-00000001/base.db       a hard link to G's base.db
 *   DIR/gen-00000001/frames.log    G's frames 1..F, written afresh
 *   DIR/gen-00000001/times.log     their commit times, and the base's
 *
 * A base.db never changes once its generation exists (rollover builds the
 * next one in a file of its own; nothing opens one for writing), so the
 * two databases can share it: the fork costs a link, not a copy, and
 * retention of the source's generation unlinks only the source's name.
 * The frames are at most one generation's (--generation-frames).  The
 * live database is not copied either: DIR/live.base is one more link to
 * the base, and live.db starts as a sparse file over it that holds only
 * the pages written since (live_overlay.h), until the fork rolls over to a
 * generation of its own.  (Where linking fails, the base is copied, and so
 * is the live database.)
 *
 * Everything is read from descriptors taken under the store's lock, so a
 * rollover or retention meanwhile changes nothing: frames at or below a
 * durable head and base.db files are immutable, and an unlinked file stays
 * readable. */
#include "store_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "util.h"

/* What the fork reads, taken under the store's lock. */
struct fork_source {
	int base_fd;
	int log_fd;
	char *gen_dir; /* the generation's directory (may go meanwhile) */
	struct time_log_record *times;
	long n_times;
};

static int take_source(struct store *s, const struct store_point *at,
		       struct fork_source *src, char *err, size_t n)
{
	struct generation *g;
	char *base = NULL;
	uint64_t size;
	int rv = -1;

	pthread_mutex_lock(&s->mu);
	g = store_find_gen_locked(s, at->generation);
	if (g == NULL || at->frame > frame_log_head(g->log)) {
		errors_set(err, n,
			   "generation %" PRIu32
			   " no longer holds frame %" PRIu32
			   " (retention removed it meanwhile)",
			   at->generation, at->frame);
		goto out;
	}
	base = util_strdupf("%s/base.db", g->dir);
	src->gen_dir = strdup(g->dir);
	if (base == NULL || src->gen_dir == NULL ||
	    util_open_sized(base, &src->base_fd, &size) != 0) {
		errors_set(err, n, "cannot open %s: %s",
			   base ? base : "base.db", strerror(errno));
		goto out;
	}
	src->log_fd = dup(frame_log_fd(g->log));
	src->n_times = time_log_snapshot(g->times, at->frame, &src->times);
	if (src->log_fd < 0 || src->n_times < 0) {
		errors_set(err, n, "cannot read generation %" PRIu32 ": %s",
			   at->generation, strerror(errno));
		goto out;
	}
	/* Start-up gives every generation its base's time. */
	assert(src->n_times > 0 && src->times[0].frame == 0);
	rv = 0;
out:
	pthread_mutex_unlock(&s->mu);
	free(base);
	return rv;
}

static void release_source(struct fork_source *src)
{
	if (src->base_fd >= 0)
		close(src->base_fd);
	if (src->log_fd >= 0)
		close(src->log_fd);
	free(src->gen_dir);
	free(src->times);
}

/* dst as a hard link to the file open as fd (through /proc, since its
 * name may be gone), else as a copy of it. */
static int link_or_copy(int fd, const char *dst, int *linked)
{
	char proc[64];

	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	*linked = linkat(AT_FDCWD, proc, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) == 0;
	if (*linked)
		return 0;
	return fileio_copy_fd(fd, dst);
}

/* to_dir/name as a link to from_dir/name, a file derived from the base
 * the two generations share, when it is there. */
static void link_derived(const char *from_dir, const char *to_dir,
			 const char *name)
{
	char *from = util_strdupf("%s/%s", from_dir, name);
	char *to = util_strdupf("%s/%s", to_dir, name);

	if (from != NULL && to != NULL && link(from, to) != 0 &&
	    errno != ENOENT)
		store_log("fork: cannot link %s: %s", from, strerror(errno));
	free(from);
	free(to);
}

/* Frames 1..upto of the log open as fd, written to a new log at path one
 * transaction at a time (upto is a commit frame). */
static int copy_frames(int fd, uint32_t upto, const char *path, char *err,
		       size_t n)
{
	struct frame_log *log = NULL;
	struct frame_log_entry *e = NULL;
	uint8_t *buf = NULL;
	size_t cap = 0, k = 0;
	uint32_t f;
	int rv = -1, rc;

	if (frame_log_open(path, 1, &log, err, n) != 0)
		return -1;
	for (f = 1; f <= upto; f++) {
		struct walfmt_frame_header h;
		uint8_t *frame;
		if (k == cap) {
			size_t c = cap ? cap * 2 : 64, i;
			uint8_t *b = realloc(buf, c * WALFMT_FRAME_SIZE);
			struct frame_log_entry *x =
			    b ? realloc(e, c * sizeof *e) : NULL;
			if (b != NULL)
				buf = b;
			if (x == NULL) {
				errors_set(err, n, "out of memory");
				goto out;
			}
			e = x;
			cap = c;
			for (i = 0; i < k; i++)
				e[i].page = buf + i * WALFMT_FRAME_SIZE +
					    WALFMT_FRAME_HDR_SIZE;
		}
		frame = buf + k * WALFMT_FRAME_SIZE;
		rc = fileio_read_all(fd, frame, WALFMT_FRAME_SIZE,
				     frame_log_offset(f));
		if (rc != 0) {
			errors_set(err, n, "cannot read frame %" PRIu32 ": %s",
				   f, strerror(-rc));
			goto out;
		}
		walfmt_frame_header_decode(frame, &h);
		e[k].pgno = h.pgno;
		e[k].db_size = h.db_size;
		e[k].page = frame + WALFMT_FRAME_HDR_SIZE;
		k++;
		if (h.db_size == 0)
			continue;
		rc = frame_log_write(log, e, k);
		if (rc != 0) {
			errors_set(err, n, "cannot write %s: %s", path,
				   strerror(-rc));
			goto out;
		}
		k = 0;
	}
	if (k != 0) {
		errors_set(err, n, "frame %" PRIu32 " is not a commit", upto);
		goto out;
	}
	rc = frame_log_sync(log);
	if (rc != 0) {
		errors_set(err, n, "cannot sync %s: %s", path, strerror(-rc));
		goto out;
	}
	rv = 0;
out:
	frame_log_close(log);
	free(buf);
	free(e);
	return rv;
}

int store_fork(struct store *s, const struct store_point *at, const char *dir,
	       char *err, size_t n)
{
	struct fork_source src = {.base_fd = -1, .log_fd = -1};
	char *gen = util_strdupf("%s/gen-00000001", dir);
	char *base = util_strdupf("%s/base.db", gen ? gen : "");
	char *log = util_strdupf("%s/frames.log", gen ? gen : "");
	char *live_base = util_strdupf("%s/live.base", dir);
	int rv = -1, linked = 0, made = 0, e;

	if (gen == NULL || base == NULL || log == NULL || live_base == NULL) {
		errors_set(err, n, "out of memory");
		goto out;
	}
	/* dir is ours only if we make it: a failure removes nothing else. */
	if (mkdir(dir, 0755) != 0) {
		errors_set(err, n, "cannot create %s: %s", dir,
			   errno == EEXIST ? "it already exists"
					   : strerror(errno));
		goto out;
	}
	made = 1;
	if (take_source(s, at, &src, err, n) != 0)
		goto out;
	if (fileio_mkdir_p(gen) != 0) {
		errors_set(err, n, "cannot create %s: %s", gen,
			   strerror(errno));
		goto out;
	}
	e = link_or_copy(src.base_fd, base, &linked);
	if (e != 0) {
		errors_set(err, n, "cannot link or copy the base to %s: %s",
			   base, strerror(-e));
		goto out;
	}
	/* A linked base is also the fork's live database's: live.db starts
	 * sparse over it (live_overlay.h), so the fork does not copy the
	 * database either. */
	if (linked && link(base, live_base) != 0) {
		errors_set(err, n, "cannot link %s: %s", live_base,
			   strerror(errno));
		goto out;
	}
	/* And what is derived from it, so that the fork neither reads the
	 * base for its checksum terms (store_terms.c) nor compresses it
	 * again (store_zstd.c); without them it makes its own. */
	if (linked) {
		link_derived(src.gen_dir, gen, "base.terms");
		link_derived(src.gen_dir, gen, "base.db.zst");
	}
	if (copy_frames(src.log_fd, at->frame, log, err, n) != 0 ||
	    store_gen_times_write(gen, src.times, (size_t)src.n_times, err,
				  n) != 0 ||
	    store_write_new_id(dir, err, n) != 0)
		goto out;
	if (fileio_fsync_dir(gen) != 0 || fileio_fsync_dir(dir) != 0) {
		errors_set(err, n, "cannot sync %s: %s", dir, strerror(errno));
		goto out;
	}
	store_log("forked generation %" PRIu32 " at frame %" PRIu32
		  " into %s (base %s)",
		  at->generation, at->frame, dir,
		  linked ? "hard-linked" : "copied");
	rv = 0;
out:
	if (rv != 0 && made)
		fileio_remove_tree(dir);
	release_source(&src);
	free(gen);
	free(base);
	free(log);
	free(live_base);
	return rv;
}
