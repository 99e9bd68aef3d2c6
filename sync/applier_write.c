/* The applier's part in the write path (the state edits around a pushed
 * commit, the checksum of a local commit) and replite_verify. */
#include "applier_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/dbsum.h"
#include "base/errors.h"
#include "sync/checksum.h"
#include "wal/wal_read.h"

int applier_commit_prepare(struct applier *a, uint32_t generation,
			   uint32_t start, uint32_t logged_generation,
			   uint32_t end, char *err, size_t err_len)
{
	struct replica_state st = {0};
	char ignored[256];
	int rv = -1;

	if (applier_load_state(a, &st, err, err_len) != 0)
		goto out;
	if (st.bootstrapping || st.generation != generation ||
	    st.frame_no + 1 != start) {
		errors_set(err, err_len,
			   "the replica's position moved during the write (now "
			   "frame %u of generation %u)",
			   st.frame_no, st.generation);
		goto out;
	}
	if (logged_generation != generation) {
		if (logged_generation != generation + 1) {
			errors_set(err, err_len,
				   "the primary logged the write in generation "
				   "%u, not %u or the next",
				   logged_generation, generation);
			goto out;
		}
		if (st.frame_hwm > st.frame_no) {
			/* As in applier_next_generation: frames past the
			 * generation's end may be in the file, so only a full
			 * image makes it exact (and it holds this write). */
			errors_set(
			    err, err_len,
			    "generation %u ended at frame %u, but frames "
			    "up to %u may have been applied; the replica "
			    "bootstraps again",
			    generation, st.frame_no, st.frame_hwm);
			st.bootstrapping = 1;
			applier_state_save(a, &st, ignored, sizeof ignored);
			goto out;
		}
		/* The file is at the end of generation, i.e. at frame 0 of
		 * the next one, whose frames 1..end are this write: one
		 * state change, made durable before the commit frame is
		 * written (the frame_hwm rule, as below). */
		st.generation = logged_generation;
		st.frame_no = 0;
		st.frame_hwm = end;
		if (applier_state_save(a, &st, err, err_len) != 0)
			goto out;
		rv = 0;
		goto out;
	}
	if (end > st.frame_hwm) {
		st.frame_hwm = end;
		if (applier_state_save(a, &st, err, err_len) != 0)
			goto out;
	}
	rv = 0;
out:
	replica_state_free(&st);
	return rv;
}

int applier_commit_done(struct applier *a, uint32_t generation, uint32_t end,
			const struct wal_position *pos, int has_checksum,
			uint64_t checksum, char *err, size_t err_len)
{
	struct replica_state st = {0};
	int rv = -1;

	if (applier_load_state(a, &st, err, err_len) != 0)
		goto out;
	if (st.generation != generation || st.frame_hwm < end) {
		errors_set(err, err_len,
			   "the replica's position moved during the write (now "
			   "frame %u of generation %u)",
			   st.frame_no, st.generation);
		goto out;
	}
	st.frame_no = end;
	st.has_checksum = has_checksum;
	st.checksum = checksum;
	st.wal_known = pos != NULL;
	if (pos != NULL) {
		st.wal_frames = pos->frames;
		memcpy(st.wal_salt, pos->salt, sizeof st.wal_salt);
	}
	/* Unsynced: frame_hwm, made durable before the commit frame was
	 * written, already covers it (state_file.h, "Durability"). */
	rv = applier_state_save_unsynced(a, &st, err, err_len);
out:
	replica_state_free(&st);
	return rv;
}

int applier_checksum_commit(struct applier *a, uint64_t base,
			    const struct wal_page *pages, size_t n,
			    uint32_t db_size, uint64_t *result, char *err,
			    size_t err_len)
{
	return checksum_after(a->reader, NULL, a->page_size, base, pages, n,
			      db_size, result, err, err_len);
}

/* Pages read at a time by applier_verify. */
#define VERIFY_CHUNK 256

int applier_verify(struct applier *a, struct replica_state *st, uint64_t *local,
		   char *err, size_t err_len)
{
	uint32_t *pgnos = malloc(VERIFY_CHUNK * sizeof *pgnos);
	uint8_t *buf = malloc((size_t)VERIFY_CHUNK * a->page_size);
	uint32_t db_pages = 0, p, k;
	sqlite3 *db = NULL;
	char *msg = NULL;
	uint64_t sum = 0;
	int rv = -1, rc, loaded;

	memset(st, 0, sizeof *st);
	if (pgnos == NULL || buf == NULL) {
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	/* A connection of its own: the write lock for as long as it reads,
	 * so neither a sync nor a writer moves the file meanwhile. */
	rc = sqlite3_open_v2(a->db_path, &db, SQLITE_OPEN_READWRITE,
			     a->vfs_name);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, APPLIER_BUSY_TIMEOUT_MS);
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot lock the local database %s: %s", a->db_path,
			   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	loaded = applier_load_state(a, st, err, err_len);
	if (loaded != 0) {
		if (loaded == 1)
			errors_set(err, err_len, "%s has no replica state",
				   a->db_path);
		goto out;
	}
	rc = wal_read_pages(db, NULL, a->page_size, NULL, 0, NULL, &db_pages,
			    &msg);
	for (p = 1; rc == SQLITE_OK && p <= db_pages; p += k) {
		for (k = 0; k < VERIFY_CHUNK && p + k <= db_pages; k++)
			pgnos[k] = p + k;
		rc = wal_read_pages(db, NULL, a->page_size, pgnos, k, buf,
				    &db_pages, &msg);
		for (uint32_t i = 0; rc == SQLITE_OK && i < k; i++)
			sum ^=
			    dbsum_page(pgnos[i], buf + (size_t)i * a->page_size,
				       a->page_size);
	}
	if (rc != SQLITE_OK) {
		errors_set(err, err_len,
			   "cannot read the local database %s: %s", a->db_path,
			   msg ? msg : sqlite3_errstr(rc));
		goto out;
	}
	*local = sum;
	rv = 0;
out:
	if (db != NULL) {
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
	}
	sqlite3_free(msg);
	free(pgnos);
	free(buf);
	if (rv != 0)
		replica_state_free(st);
	return rv;
}
