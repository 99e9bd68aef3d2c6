/* Pushed frames (POST /sync): structural validation, pending pushes that
 * wait for their commit frame, and application under the write lock (log
 * first, then injection into the live WAL). */
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
#include "base/dbsum.h"
#include "base/errors.h"
#include "proto/messages.h"
#include "util.h"
#include "wal/wal_inject.h"
#include "wal/wal_observer.h"

static void push_reply(struct http_reply *r, const char *status, uint32_t gen,
		       uint32_t max_frame_no, const char *baton)
{
	struct messages_push_reply answer = {
	    .conflict = strcmp(status, "conflict") == 0,
	    .generation = gen,
	    .max_frame_no = max_frame_no,
	    .baton = (char *)baton,
	};

	http_reply_json(r, 200, messages_encode_push_reply(&answer));
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
			errors_set(why, n, "frame %zu has page number 0", i);
			return -1;
		}
		if (pgno == PENDING_BYTE_PAGE) {
			errors_set(why, n,
				   "frame %zu writes the pending-byte page %u",
				   i, pgno);
			return -1;
		}
		if (db_size != 0 && db_size >= PENDING_BYTE_PAGE * 64u) {
			errors_set(why, n,
				   "frame %zu has an implausible database "
				   "size of %u pages",
				   i, db_size);
			return -1;
		}
		if (pgno == 1) {
			const char *bad =
			    page1_problem(f + WALFMT_FRAME_HDR_SIZE);
			if (bad != NULL) {
				errors_set(why, n, "frame %zu: page 1 %s", i,
					   bad);
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

/* The digest of frames [first, last] as the log holds them, or 0 when they
 * cannot be read. */
static uint64_t logged_digest(struct generation *g, uint32_t first,
			      uint32_t last)
{
	size_t n = (size_t)(last - first) + 1;
	uint8_t *buf = malloc(n * WALFMT_FRAME_SIZE);
	uint64_t digest = 0;

	if (buf == NULL)
		return 0;
	if (frame_log_read(g->log, first, last + 1, buf) == 0)
		digest = push_log_digest(buf, n, WALFMT_PAGE_SIZE);
	free(buf);
	return digest;
}

/* Was the transaction named txn committed, in a generation still retained?
 * Its record must name frames that the log holds, with the recorded digest
 * (a record can outlive frames that never became durable: push_log.h).
 * Then *gen and *last say where it ended. */
static int txn_committed(struct store *s, const uint8_t *txn, uint32_t *gen,
			 uint32_t *last)
{
	struct push_log_record rec;
	size_t i;
	int found = 0;

	pthread_mutex_lock(&s->mu);
	for (i = s->n_gens; i > 0 && !found; i--) {
		struct generation *g = s->gens[i - 1];
		if (!push_log_find(g->pushes, txn, &rec) ||
		    rec.last > frame_log_head(g->log) ||
		    logged_digest(g, rec.first, rec.last) != rec.digest)
			continue;
		*gen = g->number;
		*last = rec.last;
		found = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

/* A push that states its base checksum must follow a position whose
 * checksum is that one. */
static int check_base(struct store *s, const struct store_push_opts *opts,
		      uint32_t first, char *why, size_t why_len)
{
	char want[DBSUM_TEXT_SIZE], got[DBSUM_TEXT_SIZE];
	uint64_t at;
	int known;

	if (!opts->has_base)
		return 0;
	pthread_mutex_lock(&s->mu);
	known = store_sum_at_locked(&s->sum, first - 1, &at) == 0;
	pthread_mutex_unlock(&s->mu);
	if (known && at == opts->base)
		return 0;
	dbsum_format(opts->base, want);
	if (!known) {
		errors_set(why, why_len,
			   "the push states base checksum %s, but the primary "
			   "knows no checksum at frame %u",
			   want, first - 1);
		return -1;
	}
	dbsum_format(at, got);
	errors_set(why, why_len,
		   "the push was built on a database with checksum %s, but the "
		   "primary's database at frame %u has checksum %s: the "
		   "replica's file differs from the primary's; refused",
		   want, first - 1, got);
	return -1;
}

/* Can a push for the ended generation gen, starting at first, be logged as
 * the first frames of the current generation g?  It is built on the
 * database as gen ended (it starts right after gen's last frame), which is
 * exactly g's base; with nothing logged in g yet, nothing was committed
 * since, so it applies as it would have before the rollover.  The client
 * must have asked for it (its frame numbers change) and the push must end
 * here, so that the answer can say where all of it went.  Called with the
 * write lock held: no commit can slip in. */
static int continues_in_next(const struct generation *g, uint32_t gen,
			     uint32_t first, unsigned flags, int ends_push)
{
	return (flags & STORE_PUSH_ROLLOVER) && ends_push &&
	       g->number == gen + 1 && g->prev_end != 0 &&
	       first == g->prev_end + 1 && frame_log_written_head(g->log) == 0;
}

static void stage(struct store *s, int step)
{
	if (s->cfg.push_stage != NULL)
		s->cfg.push_stage(s->cfg.push_stage_arg, s, step);
}

/* Log a pushed transaction named txn with one fdatasync (push_log.h): its
 * entry, frames included, durable in the push log first, then its frames
 * written to the frame log, where they count as durable without a sync of
 * their own, since start-up copies them back from the entry.  Returns 0,
 * or -1 with why. */
static int log_pushed(struct store *s, struct generation *g, const uint8_t *txn,
		      uint32_t first, const uint8_t *frames,
		      const struct frame_log_entry *e, size_t n, char *why,
		      size_t why_len)
{
	struct push_log_record rec = {
	    .first = first,
	    .last = first + (uint32_t)n - 1,
	    .digest = push_log_digest(frames, n, WALFMT_PAGE_SIZE),
	    .unix_ms = clock_unix_ms(),
	};
	int rc;

	memcpy(rec.id, txn, PUSH_LOG_ID_SIZE);
	if (frame_log_head(g->log) < frame_log_written_head(g->log)) {
		/* SQL commits written since the last sync: start-up copies
		 * an entry back only right after the log's head, so they
		 * must be durable before it is. */
		rc = store_gen_sync(g);
		if (rc != 0) {
			errors_set(why, why_len,
				   "cannot make the frame log durable: %s",
				   strerror(-rc));
			store_mark_failed(s, why);
			return -1;
		}
	}
	stage(s, STORE_PUSH_BEFORE_RECORD);
	rc = push_log_append_frames(g->pushes, &rec, frames);
	if (rc != 0) {
		errors_set(why, why_len,
			   "cannot record the pushed transaction: %s",
			   strerror(-rc));
		/* It could not be cut off again: it may be committed. */
		if (push_log_broken(g->pushes))
			store_mark_failed(s, why);
		return -1;
	}
	stage(s, STORE_PUSH_RECORDED);
	/* Its time, unsynced: the entry holds it too, and the time log is
	 * synced before the frame log (store_gen_sync) takes over from the
	 * entry. */
	rc = time_log_append(g->times, rec.last, rec.unix_ms);
	if (rc == 0) {
		rc = frame_log_write(g->log, e, n);
		if (rc != 0 && !frame_log_broken(g->log))
			time_log_cut_after(g->times, first - 1);
	}
	if (rc != 0) {
		errors_set(why, why_len, "cannot append to the frame log: %s",
			   strerror(-rc));
		/* Answered as failed: the entry must not bring it back. */
		if (push_log_cancel_last(g->pushes) != 0 ||
		    frame_log_broken(g->log))
			store_mark_failed(s, why);
		return -1;
	}
	stage(s, STORE_PUSH_WRITTEN);
	frame_log_declare_durable(g->log);
	return 0;
}

/* Log a pushed transaction without an id (libSQL clients): frame log write
 * and fdatasync.  Returns 0, or -1 with why. */
static int log_unrecorded(struct store *s, struct generation *g,
			  const struct frame_log_entry *e, size_t n, char *why,
			  size_t why_len)
{
	uint32_t head = frame_log_written_head(g->log);
	int rc;

	/* Its time first, durable before its frames are (time_log.h). */
	rc = time_log_append(g->times, head + (uint32_t)n, clock_unix_ms());
	if (rc == 0)
		rc = time_log_sync(g->times);
	if (rc == 0)
		rc = frame_log_append(g->log, e, n);
	if (rc == 0)
		return 0;
	if (!frame_log_broken(g->log))
		time_log_cut_after(g->times, head);
	errors_set(why, why_len, "cannot append to the frame log: %s",
		   strerror(-rc));
	/* A failed fdatasync: the frames may or may not be there. */
	if (frame_log_broken(g->log))
		store_mark_failed(s, why);
	return -1;
}

/* Append frames [first, first + n) of generation gen to the log one for
 * one and publish their pages in the live database, as one atomic step
 * under the write lock.  *gen_out and *head_out receive the generation and
 * head the answer reports: where the frames were logged (gen, or the next
 * generation, see continues_in_next), where a transaction sent again under
 * opts->txn had been logged, or the current ones on a conflict.  Returns 0
 * when applied (or acknowledged), 1 on a conflict, 2 when the checksums
 * opts states do not match, 3 when the pages would damage the database (why
 * says how), -1 with why on an error. */
static int apply_frames(struct store *s, uint32_t gen, uint32_t first,
			const struct store_push_opts *opts, int ends_push,
			const uint8_t *frames, size_t n, uint32_t *gen_out,
			uint32_t *head_out, char *why, size_t why_len)
{
	const uint8_t *txn = opts->txn;
	int strict = (opts->flags & STORE_PUSH_STRICT) != 0, summed = 0;
	int checked = 0;
	uint64_t sum;
	struct frame_log_entry *e = calloc(n, sizeof *e);
	struct wal_page *pages = calloc(n, sizeof *pages);
	uint32_t *sizes = calloc(n, sizeof *sizes);
	struct wal_inject_opts inject_opts = {wal_observer_unwrap, 0,
					      WALFMT_PAGE_SIZE};
	struct generation *g;
	char *msg = NULL;
	uint32_t head;
	size_t i;
	int rv = -1, rc, next;

	if (e == NULL || pages == NULL || sizes == NULL) {
		errors_set(why, why_len, "out of memory");
		goto out_free;
	}
	pthread_mutex_lock(&s->internal_mu);
	rc = sqlite3_exec(s->internal, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		errors_set(why, why_len, "cannot take the write lock: %s",
			   sqlite3_errmsg(s->internal));
		goto out_unlock;
	}
	*gen_out = gen;
	if (txn != NULL && txn_committed(s, txn, gen_out, head_out)) {
		/* Sent again while the first copy was being applied. */
		rv = 0;
		goto out_rollback;
	}
	pthread_mutex_lock(&s->mu);
	g = store_current_locked(s);
	pthread_mutex_unlock(&s->mu);
	next = continues_in_next(g, gen, first, opts->flags, ends_push);
	head = frame_log_written_head(g->log);
	*gen_out = g->number;
	*head_out = head;
	if (next) {
		/* The rollover came between the client's view of the head
		 * and its push (issue 9): frames 1... of the new one. */
		gen = g->number;
		first = head + 1;
	}
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
		sizes[i] = e[i].db_size;
	}
	if (check_base(s, opts, first, why, why_len) != 0) {
		rv = 2;
		goto out_rollback;
	}
	rc = store_sum_apply(&s->sum, pages, n, e[n - 1].db_size, &sum);
	if (rc != 0) {
		errors_set(why, why_len, "out of memory");
		goto out_rollback;
	}
	summed = 1;
	if (opts->has_result && sum != opts->result) {
		char want[DBSUM_TEXT_SIZE], got[DBSUM_TEXT_SIZE];
		dbsum_format(opts->result, want);
		dbsum_format(sum, got);
		errors_set(why, why_len,
			   "the pushed transaction (frames %u-%u) gives the "
			   "primary's database checksum %s, not the %s the "
			   "replica computed: its pages were built on a "
			   "database that differs from the primary's (a "
			   "foreign write?); refused",
			   first, first + (uint32_t)n - 1, got, want);
		rv = 2;
		goto out_rollback;
	}
	/* After the checksums: pages built on another database (a foreign
	 * write) are that, not damage, and the replica needs to know. */
	rc = store_check_push(s, pages, sizes, n, why, why_len);
	if (rc != 0) {
		rv = rc > 0 ? 3 : -1;
		goto out_rollback;
	}
	checked = 1;
	pthread_mutex_lock(&s->mu);
	rc = store_sum_record_locked(&s->sum, first + (uint32_t)n - 1, sum);
	pthread_mutex_unlock(&s->mu);
	if (rc != 0) {
		errors_set(why, why_len, "out of memory");
		goto out_rollback;
	}
	if (txn != NULL)
		rc = log_pushed(s, g, txn, first, frames, e, n, why, why_len);
	else
		rc = log_unrecorded(s, g, e, n, why, why_len);
	if (rc != 0)
		goto out_rollback;
	atomic_fetch_add_explicit(&s->commits_pushed, 1, memory_order_relaxed);
	rc = wal_inject(s->internal, &inject_opts, pages, n, e[n - 1].db_size,
			&msg);
	if (rc != SQLITE_OK) {
		errors_set(
		    why, why_len,
		    "pushed frames are durable in the log but could not be "
		    "applied to the live database: %s",
		    msg ? msg : sqlite3_errstr(rc));
		store_mark_failed(s, why);
		sqlite3_free(msg);
		/* Durable and acknowledged: start-up will apply them. */
	}
	*head_out = frame_log_head(g->log);
	summed = 0;
	store_check_commit(s);
	checked = 0;
	rv = 0;
out_rollback:
	if (checked)
		store_check_abort(s);
	if (summed) {
		/* Refused or not logged: the checksums take it back. */
		store_sum_undo(&s->sum);
		pthread_mutex_lock(&s->mu);
		store_sum_forget_locked(&s->sum, first - 1);
		pthread_mutex_unlock(&s->mu);
	}
	/* Nothing is dirty: COMMIT writes no frame and releases the lock. */
	sqlite3_exec(s->internal, "COMMIT", NULL, NULL, NULL);
	if (sqlite3_get_autocommit(s->internal) == 0)
		sqlite3_exec(s->internal, "ROLLBACK", NULL, NULL, NULL);
out_unlock:
	pthread_mutex_unlock(&s->internal_mu);
out_free:
	free(e);
	free(pages);
	free(sizes);
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

/* The last request of pending push p sent again (its answer was lost): the
 * same range and the same bytes as what p buffered last. */
static int resends_last_part(const struct pending_push *p, uint32_t gen,
			     uint32_t start, uint32_t end, const uint8_t *body,
			     size_t len)
{
	return p->gen == gen && p->last_start == start && p->next == end &&
	       p->len >= len &&
	       memcmp(p->frames + p->len - len, body, len) == 0;
}

void store_push(struct store *s, uint32_t gen, uint32_t start, uint32_t end,
		const char *baton, const struct store_push_opts *opts,
		const uint8_t *body, size_t len, struct http_reply *reply)
{
	const uint8_t *txn = opts->txn;
	struct pending_push *p = NULL;
	size_t n_frames, keep;
	ssize_t commit;
	uint32_t head = 0, done_gen = gen;
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
	if (txn != NULL && txn_committed(s, txn, &done_gen, &head)) {
		/* Sent again (a lost answer, libcurl's silent resend, the
		 * replica's retry): committed once, and answered so. */
		pthread_mutex_lock(&s->mu);
		p = baton != NULL ? find_pending_locked(s, baton) : NULL;
		if (p != NULL)
			unlink_pending_locked(s, p);
		pthread_mutex_unlock(&s->mu);
		if (p != NULL)
			store_push_free_pending(p);
		push_reply(reply, "ok", done_gen, head, NULL);
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
		struct generation *g = store_current_locked(s);
		uint32_t cur_head = frame_log_written_head(g->log);
		if (g->number == gen && start > cur_head + 1) {
			push_reply(reply, "ok", gen, cur_head, NULL);
			goto out_unlock;
		}
	}
	if (p != NULL && resends_last_part(p, gen, start, end, body, len)) {
		push_reply(reply, "ok", gen, end - 1, p->baton);
		p->used_ms = clock_monotonic_ms();
		goto out_unlock;
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
		p->flags = opts->flags;
	}
	pthread_mutex_unlock(&s->mu);

	if (p->len + len > s->cfg.max_push_bytes) {
		http_reply_error(reply, 413, "PUSH_TOO_LARGE",
				 "a push may buffer at most %zu bytes of "
				 "frames before a commit frame",
				 s->cfg.max_push_bytes);
		store_push_free_pending(p);
		return;
	}
	if (pending_append(p, body, len) != 0) {
		http_reply_error(reply, 500, "OUT_OF_MEMORY", "out of memory");
		store_push_free_pending(p);
		return;
	}
	p->last_start = start;
	p->next = end;
	p->used_ms = clock_monotonic_ms();
	commit = last_commit(p->frames, p->len / WALFMT_FRAME_SIZE);
	if (commit >= 0) {
		size_t n_apply = (size_t)commit + 1;
		struct store_push_opts o = *opts;
		int ends_push = n_apply * WALFMT_FRAME_SIZE == p->len;
		o.flags = p->flags;
		rv = apply_frames(s, gen, p->first, &o, ends_push, p->frames,
				  n_apply, &done_gen, &head, why, sizeof why);
		if (rv == 2 || rv == 3) {
			/* Refused, nothing logged: the primary stays sound. */
			http_reply_error(reply, 400,
					 rv == 2 ? "PUSH_CHECKSUM_MISMATCH"
						 : "PUSH_CORRUPT",
					 "%s", why);
			store_push_free_pending(p);
			return;
		}
		if (rv < 0) {
			http_reply_error(reply, 500, "PUSH_FAILED", "%s", why);
			store_push_free_pending(p);
			return;
		}
		if (rv > 0) {
			push_reply(reply, "conflict", store_generation(s), head,
				   NULL);
			store_push_free_pending(p);
			return;
		}
		keep = p->len - n_apply * WALFMT_FRAME_SIZE;
		memmove(p->frames, p->frames + n_apply * WALFMT_FRAME_SIZE,
			keep);
		p->len = keep;
		p->first += (uint32_t)n_apply;
		store_notify(s);
	}
	if (p->len == 0) {
		/* done_gen: where the transaction was logged (the next
		 * generation after a rollover) or, sent again, had been. */
		push_reply(reply, "ok", commit >= 0 ? done_gen : gen,
			   commit >= 0 ? head : end - 1, NULL);
		store_push_free_pending(p);
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

void store_push_expire(struct store *s)
{
	int64_t now = clock_monotonic_ms();
	struct pending_push **pp;

	pthread_mutex_lock(&s->mu);
	pp = &s->pending;
	while (*pp != NULL) {
		struct pending_push *p = *pp;
		if (now - p->used_ms > s->cfg.push_expiry_ms) {
			*pp = p->next_push;
			store_push_free_pending(p);
		} else {
			pp = &p->next_push;
		}
	}
	pthread_mutex_unlock(&s->mu);
}

void store_push_free_pending(struct pending_push *p)
{
	free(p->baton);
	free(p->frames);
	free(p);
}
