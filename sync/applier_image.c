/* The applier's full images: a whole database (GET /export/{G}) applied
 * as one batch that rewrites every page, on a new file or on one whose
 * content is unknown (docs/architecture.md "The replica's read path", 4). */
#include "applier_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "wal/wal_inject.h"

static int check_image(struct applier *a, const struct applier_image *img,
		       uint32_t *n_pages, char *err, size_t err_len)
{
	if (img->len == 0 || img->len % a->page_size != 0 ||
	    img->len / a->page_size > UINT32_MAX) {
		errors_set(
		    err, err_len,
		    "the primary's image of generation %u has %zu bytes, "
		    "not a whole number of %u-byte pages",
		    img->generation, img->len, a->page_size);
		return -1;
	}
	if (!frames_is_database_page1(img->data, a->page_size)) {
		errors_set(
		    err, err_len,
		    "the primary's image of generation %u is not a SQLite "
		    "database with %u-byte pages",
		    img->generation, a->page_size);
		return -1;
	}
	*n_pages = (uint32_t)(img->len / a->page_size);
	return 0;
}

/* With no state file, the file must hold nothing of the user's (checked
 * again under the lock: another process may have written it meanwhile). */
int applier_image_check_unclaimed(struct applier *a, char *err, size_t err_len)
{
	int64_t tables = 1, pages = 2;

	if (applier_query_int(a, "SELECT count(*) FROM sqlite_master",
			      &tables) != SQLITE_OK ||
	    applier_query_int(a, "PRAGMA page_count", &pages) != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot read the local database %s: %s", a->db_path,
			   sqlite3_errmsg(a->db));
		return -1;
	}
	if (tables != 0 || pages > 1) {
		errors_set(
		    err, err_len,
		    "%s holds data but has no replica state file (%s): it "
		    "is not a replica, and replite will not overwrite it; "
		    "open a new file name to create a replica",
		    a->db_path, a->state_path);
		return -1;
	}
	return 0;
}

/* May the image bypass the WAL?  Only when what readers can see of the file
 * is an empty database whose first page is in the file itself: its header
 * then gives the size (one page), so no reader ever looks at page 2 or
 * beyond, and the WAL holds no frame that could shadow a page written
 * under it.  That is the state of a new replica (and of one whose
 * bootstrap was cut short before its first page was published). */
int applier_image_can_bypass_wal(struct applier *a)
{
	struct wal_position pos;
	int64_t pages = 0, tables = 1;
	char *msg = NULL;

	if (applier_query_int(a, "PRAGMA page_count", &pages) != SQLITE_OK ||
	    applier_query_int(a, "SELECT count(*) FROM sqlite_master",
			      &tables) != SQLITE_OK)
		return 0;
	if (pages != 1 || tables != 0)
		return 0;
	if (wal_inject_position(a->db, NULL, &pos, &msg) != SQLITE_OK) {
		sqlite3_free(msg);
		return 0;
	}
	return pos.frames == 0;
}

/* Pages 2..n_pages of the image straight into the database file, in runs of
 * APPLIER_RUN_BYTES, then synced: sequential writes instead of a frame per
 * page in the WAL and a checkpoint copying each one again.  Invisible until
 * page 1 is published through the WAL (see applier_apply_image); the
 * pending-byte page is never written, as SQLite never does. */
static int write_pages_direct(struct applier *a,
			      const struct applier_image *img, uint32_t n_pages,
			      char *err, size_t err_len)
{
	const uint32_t ps = a->page_size;
	const uint32_t pb = frames_pending_byte_page(ps);
	sqlite3_file *f = applier_main_file(a, err, err_len);
	uint32_t first = 2, last;
	int rc;

	if (f == NULL)
		return -1;
	while (first <= n_pages) {
		if (first == pb) {
			first++;
			continue;
		}
		last = first + APPLIER_RUN_BYTES / ps - 1;
		if (last > n_pages)
			last = n_pages;
		if (first < pb && last >= pb)
			last = pb - 1;
		rc =
		    f->pMethods->xWrite(f, img->data + (size_t)(first - 1) * ps,
					(int)((last - first + 1) * ps),
					(sqlite3_int64)(first - 1) * ps);
		if (rc != SQLITE_OK)
			goto io_error;
		first = last + 1;
	}
	/* Durable before page 1's commit frame makes them part of the
	 * database: a power loss must never leave that frame pointing at
	 * pages that were not written. */
	rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK)
		goto io_error;
	return 0;
io_error:
	errors_set(err, err_len, "cannot write the image into %s: %s",
		   a->db_path, sqlite3_errstr(rc));
	return -1;
}

sqlite3_file *applier_main_file(struct applier *a, char *err, size_t err_len)
{
	sqlite3_file *f = NULL;

	if (sqlite3_file_control(a->db, "main", SQLITE_FCNTL_FILE_POINTER,
				 &f) != SQLITE_OK ||
	    f == NULL || f->pMethods == NULL) {
		errors_set(err, err_len,
			   "cannot reach the file of the local database %s",
			   a->db_path);
		return NULL;
	}
	return f;
}

int applier_image_check_as_of(struct applier *a, const struct replica_state *st,
			      const struct applier_image *img, char *err,
			      size_t err_len)
{
	static const struct as_of live = {.kind = AS_OF_NONE};

	/* Checked at open too; again under the lock, since another
	 * connection or process may have made the file something else
	 * meanwhile. */
	return replica_state_check_as_of(
	    st, img->has_as_of ? &img->as_of_request : &live, a->db_path, err,
	    err_len);
}

void applier_image_set_as_of(struct replica_state *st,
			     const struct applier_image *img)
{
	st->has_as_of = img->has_as_of;
	st->as_of_request = img->as_of_request;
	st->as_of_unix_ms = img->as_of_unix_ms;
}

enum applier_result applier_apply_image(struct applier *a,
					const struct applier_image *img,
					struct replica_state *st, char *err,
					size_t err_len)
{
	enum applier_result res = APPLIER_ERROR;
	struct applier_drop drop = {0};
	struct wal_page *pages = NULL;
	uint32_t n_pages = 0, n_inject, i;
	uint8_t pushed_id[16] = {0};
	int loaded, dropping = 0, has_pushed = 0;

	memset(st, 0, sizeof *st);
	if (check_image(a, img, &n_pages, err, err_len) != 0)
		return APPLIER_ERROR;
	if (applier_lock_begin(a, err, err_len) != 0)
		return APPLIER_ERROR;
	loaded = applier_load_state(a, st, err, err_len);
	if (loaded < 0)
		goto out;
	if (loaded == 0 &&
	    applier_image_check_as_of(a, st, img, err, err_len) != 0)
		goto out;
	if (loaded == 0 && !st->bootstrapping &&
	    st->generation >= img->generation) {
		res = APPLIER_STALE;
		goto out;
	}
	if (loaded == 1 && applier_image_check_unclaimed(a, err, err_len) != 0)
		goto out;
	/* The image replaces whatever the file holds, local transactions
	 * not on the primary yet included: they are recorded as dropped,
	 * and the state keeps naming the last record pushed. */
	if (loaded == 0) {
		dropping = applier_drop_prepare(
		    a, st,
		    st->discard ? NULL
				: "the local file was replaced by a full image "
				  "of the primary's database",
		    &drop, err, err_len);
		if (dropping < 0)
			goto out;
		has_pushed = st->has_pushed;
		memcpy(pushed_id, st->pushed_id, sizeof pushed_id);
	}
	replica_state_free(st);
	st->has_pushed = has_pushed;
	memcpy(st->pushed_id, pushed_id, sizeof pushed_id);
	if (dropping)
		applier_drop_done(a, st, &drop);
	st->database_id = img->database_id ? strdup(img->database_id) : NULL;
	st->sync_url = strdup(img->sync_url);
	if (st->sync_url == NULL ||
	    (img->database_id != NULL && st->database_id == NULL)) {
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	st->generation = img->generation;
	st->page_size = a->page_size;
	st->bootstrapping = 1;
	applier_image_set_as_of(st, img);
	if (applier_state_save(a, st, err, err_len) != 0)
		goto out;
	pages = calloc(n_pages, sizeof *pages);
	if (pages == NULL) {
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	if (applier_image_can_bypass_wal(a)) {
		/* Every page but the first into the file; the first through
		 * the WAL, whose commit frame gives the database its new
		 * size: the one step that makes the image visible, all at
		 * once. */
		if (write_pages_direct(a, img, n_pages, err, err_len) != 0)
			goto out;
		pages[0].pgno = 1;
		pages[0].data = img->data;
		n_inject = 1;
		goto inject;
	}
	for (i = 0; i < n_pages; i++) {
		pages[i].pgno = i + 1;
		pages[i].data = img->data + (size_t)i * a->page_size;
	}
	/* The pending-byte page never holds data: leave it out. */
	if (n_pages >= frames_pending_byte_page(a->page_size)) {
		uint32_t pb = frames_pending_byte_page(a->page_size);
		memmove(&pages[pb - 1], &pages[pb],
			(n_pages - pb) * sizeof *pages);
		n_pages--;
	}
	n_inject = n_pages;
inject:
	if (applier_inject(a, pages, n_inject,
			   (uint32_t)(img->len / a->page_size), err,
			   err_len) != 0)
		goto out;
	st->bootstrapping = 0;
	st->catching_up = !img->has_as_of; /* an as-of state is complete */
	st->frame_no = img->frame_no;
	st->frame_hwm = img->frame_no;
	st->has_checksum = img->has_checksum;
	st->checksum = img->checksum;
	if (applier_record_wal(a, st, err, err_len) != 0 ||
	    applier_state_save(a, st, err, err_len) != 0)
		goto out;
	applier_drop_clear(a);
	res = APPLIER_APPLIED;
out:
	free(pages);
	applier_drop_free(&drop);
	applier_lock_end(a);
	return res;
}
