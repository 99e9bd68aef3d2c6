/* The applier's full images: a whole database (GET /export/{G}) applied
 * as one batch that rewrites every page, on a new file or on one whose
 * content is unknown (docs/architecture.md "The replica's read path", 4). */
#include "applier_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/errors.h"

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
	if (memcmp(img->data, "SQLite format 3", 16) != 0 ||
	    ((uint32_t)img->data[16] << 8 | img->data[17]) !=
		(a->page_size == 65536 ? 1 : a->page_size)) {
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
static int check_unclaimed_file(struct applier *a, char *err, size_t err_len)
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

enum applier_result applier_apply_image(struct applier *a,
					const struct applier_image *img,
					struct replica_state *st, char *err,
					size_t err_len)
{
	enum applier_result res = APPLIER_ERROR;
	struct applier_drop drop = {0};
	struct wal_page *pages = NULL;
	uint32_t n_pages = 0, i;
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
	if (loaded == 0 && !st->bootstrapping &&
	    st->generation >= img->generation) {
		res = APPLIER_STALE;
		goto out;
	}
	if (loaded == 1 && check_unclaimed_file(a, err, err_len) != 0)
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
	if (applier_state_save(a, st, err, err_len) != 0)
		goto out;
	pages = calloc(n_pages, sizeof *pages);
	if (pages == NULL) {
		errors_set(err, err_len, "out of memory");
		goto out;
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
	if (applier_inject(a, pages, n_pages,
			   (uint32_t)(img->len / a->page_size), err,
			   err_len) != 0)
		goto out;
	st->bootstrapping = 0;
	st->catching_up = 1;
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
