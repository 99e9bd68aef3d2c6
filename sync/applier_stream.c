/* A new replica's image written into its database file as it arrives
 * (docs/architecture.md "The replica's read path", 4): the bootstrap never
 * holds the image in memory.
 *
 * Only for a file with no state at all (a new replica), or one whose
 * bootstrap was cut short (the state says bootstrapping; no offline
 * outbox), whose published content is an empty database
 * (applier_image_can_bypass_wal): readers, if any, then see one page and
 * never look at the pages being written.
 * The stream holds the sync lock from begin to finish or abort, and the
 * state says bootstrapping from begin on, so an interrupted stream is
 * never taken for a complete one: the next attempt streams again (or, if
 * a crash came after page 1 was published, applies a whole image with
 * applier_apply_image).
 *
 * Pages 2 and up go straight into the file in runs of consecutive pages;
 * page 1 is kept in memory and published last, through the WAL, as the
 * commit frame that gives the database its size.  Before that, every page
 * of the result is read back and its checksum compared with the one the
 * primary announced: what is published is what is on disk, verified. */
#include "applier_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/dbsum.h"
#include "base/errors.h"

struct applier_stream {
	struct applier *a;
	sqlite3_file *f;
	struct replica_state st;
	uint8_t *page1;   /* NULL until page 1 arrived */
	uint32_t n_pages; /* the database's size as last set */
	/* A run of consecutive pages not written yet: first_pgno... */
	uint8_t *run;
	uint32_t run_first, run_n;
};

static int io_error(struct applier_stream *s, int rc, const char *what,
		    char *err, size_t err_len)
{
	errors_set(err, err_len, "cannot %s %s: %s", what, s->a->db_path,
		   sqlite3_errstr(rc));
	return -1;
}

static int flush_run(struct applier_stream *s, char *err, size_t err_len)
{
	const uint32_t ps = s->a->page_size;
	int rc;

	if (s->run_n == 0)
		return 0;
	rc = s->f->pMethods->xWrite(s->f, s->run, (int)(s->run_n * ps),
				    (sqlite3_int64)(s->run_first - 1) * ps);
	s->run_n = 0;
	return rc == SQLITE_OK
		   ? 0
		   : io_error(s, rc, "write the image into", err, err_len);
}

int applier_stream_page(struct applier_stream *s, uint32_t pgno,
			const uint8_t *data, char *err, size_t err_len)
{
	const uint32_t ps = s->a->page_size;

	if (pgno == 0)
		return 0;
	if (pgno == 1) {
		if (s->page1 == NULL && (s->page1 = malloc(ps)) == NULL) {
			errors_set(err, err_len, "out of memory");
			return -1;
		}
		memcpy(s->page1, data, ps);
		return 0;
	}
	if (pgno == frames_pending_byte_page(ps))
		return 0; /* never written, as SQLite never does */
	if (s->run_n > 0 && (pgno != s->run_first + s->run_n ||
			     (s->run_n + 1) * ps > APPLIER_RUN_BYTES)) {
		if (flush_run(s, err, err_len) != 0)
			return -1;
	}
	if (s->run_n == 0)
		s->run_first = pgno;
	memcpy(s->run + (size_t)s->run_n * ps, data, ps);
	s->run_n++;
	return 0;
}

int applier_stream_size(struct applier_stream *s, uint32_t n_pages, char *err,
			size_t err_len)
{
	const uint32_t ps = s->a->page_size;
	int rc;

	if (flush_run(s, err, err_len) != 0)
		return -1;
	if (n_pages < s->n_pages) {
		/* Pages past the end are no part of the result: neither
		 * checked nor kept.  (Page 1 stays, the old one, until the
		 * new one is published.) */
		rc = s->f->pMethods->xTruncate(
		    s->f, (sqlite3_int64)(n_pages > 1 ? n_pages : 1) * ps);
		if (rc != SQLITE_OK)
			return io_error(s, rc, "truncate", err, err_len);
	}
	s->n_pages = n_pages;
	return 0;
}

enum applier_result applier_stream_begin(struct applier *a,
					 const struct applier_image *img,
					 struct applier_stream **out, char *err,
					 size_t err_len)
{
	enum applier_result res = APPLIER_ERROR;
	struct applier_stream *s = calloc(1, sizeof *s);
	int loaded, rc;

	*out = NULL;
	if (s == NULL || (s->run = malloc(APPLIER_RUN_BYTES)) == NULL) {
		errors_set(err, err_len, "out of memory");
		goto fail;
	}
	s->a = a;
	if (applier_lock_begin(a, err, err_len) != 0)
		goto fail;
	loaded = applier_load_state(a, &s->st, err, err_len);
	if (loaded < 0)
		goto unlock;
	if (loaded == 0 &&
	    applier_image_check_as_of(a, &s->st, img, err, err_len) != 0)
		goto unlock;
	if (loaded == 0 && !(s->st.bootstrapping && a->outbox == NULL)) {
		/* Not a new replica (or one with offline records, which a
		 * whole image records as dropped): a whole image, or
		 * nothing. */
		res = s->st.bootstrapping || s->st.generation < img->generation
			  ? APPLIER_MOVED
			  : APPLIER_STALE;
		goto unlock;
	}
	/* A new replica, or one whose bootstrap was cut short: then the
	 * check below (nothing but an empty database published) tells
	 * whether the file is as a stream leaves it. */
	if (loaded == 1 && applier_image_check_unclaimed(a, err, err_len) != 0)
		goto unlock;
	if (!applier_image_can_bypass_wal(a)) {
		res = APPLIER_MOVED;
		goto unlock;
	}
	s->f = applier_main_file(a, err, err_len);
	if (s->f == NULL)
		goto unlock;
	/* Only the empty database's page 1 stays. */
	rc = s->f->pMethods->xTruncate(s->f, a->page_size);
	if (rc != SQLITE_OK) {
		io_error(s, rc, "truncate", err, err_len);
		goto unlock;
	}
	replica_state_free(&s->st);
	s->st.database_id =
	    img->database_id != NULL ? strdup(img->database_id) : NULL;
	s->st.sync_url = strdup(img->sync_url);
	if (s->st.sync_url == NULL ||
	    (img->database_id != NULL && s->st.database_id == NULL)) {
		errors_set(err, err_len, "out of memory");
		goto unlock;
	}
	s->st.generation = img->generation;
	s->st.page_size = a->page_size;
	s->st.bootstrapping = 1;
	applier_image_set_as_of(&s->st, img);
	if (applier_state_save(a, &s->st, err, err_len) != 0)
		goto unlock;
	s->n_pages = 1;
	*out = s;
	return APPLIER_APPLIED;
unlock:
	applier_lock_end(a);
fail:
	if (s != NULL) {
		replica_state_free(&s->st);
		free(s->run);
		free(s);
	}
	return res;
}

void applier_stream_abort(struct applier_stream *s)
{
	if (s == NULL)
		return;
	applier_lock_end(s->a);
	replica_state_free(&s->st);
	free(s->page1);
	free(s->run);
	free(s);
}

/* The checksum of the result as the file holds it (page 1 from memory). */
static int file_checksum(struct applier_stream *s, uint64_t *sum, char *err,
			 size_t err_len)
{
	const uint32_t ps = s->a->page_size;
	const uint32_t per_read = APPLIER_RUN_BYTES / ps;
	uint32_t pgno, k, i;
	int rc;

	*sum = dbsum_page(1, s->page1, ps);
	for (pgno = 2; pgno <= s->n_pages; pgno += k) {
		k = s->n_pages - pgno + 1 < per_read ? s->n_pages - pgno + 1
						     : per_read;
		rc = s->f->pMethods->xRead(s->f, s->run, (int)(k * ps),
					   (sqlite3_int64)(pgno - 1) * ps);
		if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
			return io_error(s, rc, "read back", err, err_len);
		/* A short read is zero-filled: the pending-byte page, or a
		 * page the result never wrote, which the checksum shows. */
		for (i = 0; i < k; i++)
			*sum ^=
			    dbsum_page(pgno + i, s->run + (size_t)i * ps, ps);
	}
	return 0;
}

enum applier_result applier_stream_finish(struct applier_stream *s,
					  uint32_t frame_no, int has_expected,
					  uint64_t expected, int *mismatch,
					  struct replica_state *st, char *err,
					  size_t err_len)
{
	struct applier *a = s->a;
	struct wal_page page1;
	enum applier_result res = APPLIER_ERROR;
	uint64_t sum;
	int rc;

	*mismatch = 0;
	memset(st, 0, sizeof *st);
	if (flush_run(s, err, err_len) != 0)
		goto out;
	if (s->page1 == NULL || s->n_pages < 1) {
		errors_set(err, err_len,
			   "the primary's image of generation %u has no "
			   "first page",
			   s->st.generation);
		*mismatch = 1;
		goto out;
	}
	if (file_checksum(s, &sum, err, err_len) != 0)
		goto out;
	if (has_expected && sum != expected) {
		errors_set(err, err_len,
			   "the image of generation %u at frame %u, as "
			   "written, does not have the checksum the primary "
			   "announced for it; it was not published",
			   s->st.generation, frame_no);
		*mismatch = 1;
		goto out;
	}
	/* The pages durable before the frame that makes them the
	 * database's (see write_pages_direct in applier_image.c). */
	rc = s->f->pMethods->xSync(s->f, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		io_error(s, rc, "sync", err, err_len);
		goto out;
	}
	page1.pgno = 1;
	page1.data = s->page1;
	if (applier_inject(a, &page1, 1, s->n_pages, err, err_len) != 0)
		goto out;
	s->st.bootstrapping = 0;
	s->st.catching_up = !s->st.has_as_of; /* an as-of state is complete */
	s->st.frame_no = frame_no;
	s->st.frame_hwm = frame_no;
	s->st.has_checksum = 1;
	s->st.checksum = sum;
	if (applier_record_wal(a, &s->st, err, err_len) != 0 ||
	    applier_state_save(a, &s->st, err, err_len) != 0)
		goto out;
	*st = s->st;
	memset(&s->st, 0, sizeof s->st);
	res = APPLIER_APPLIED;
out:
	applier_stream_abort(s);
	return res;
}
