#include "replica_write_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "fixture.h"

/* ---------------------------------------------------------------------- */
/* small helpers */

int rwh_try_exec(sqlite3 *db, const char *sql, int *xrc, char *msg,
		 size_t msg_len)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

	if (xrc != NULL)
		*xrc =
		    rc == SQLITE_OK ? SQLITE_OK : sqlite3_extended_errcode(db);
	if (msg != NULL)
		snprintf(msg, msg_len, "%s",
			 rc == SQLITE_OK ? ""
			 : err           ? err
					 : sqlite3_errmsg(db));
	sqlite3_free(err);
	return rc;
}

void rwh_assert_fails_with(sqlite3 *db, const char *sql, int want_xrc,
			   char *msg, size_t msg_len)
{
	int xrc, rc = rwh_try_exec(db, sql, &xrc, msg, msg_len);

	ck_assert_msg(rc != SQLITE_OK, "%s succeeded; expected code %d", sql,
		      want_xrc);
	ck_assert_msg(xrc == want_xrc,
		      "%s failed with extended code %d (%s); expected %d", sql,
		      xrc, msg, want_xrc);
}

/* ---------------------------------------------------------------------- */
/* the primary */

int64_t rwh_both_int(sqlite3 *db, const char *url, const char *sql)
{
	int64_t local = fixture_query_int(db, sql);
	int64_t primary = rfx_primary_query_int(url, sql);

	ck_assert_msg(local == primary,
		      "%s: %lld on the replica, %lld on the "
		      "primary",
		      sql, (long long)local, (long long)primary);
	return local;
}

void rwh_assert_integrity_both(sqlite3 *db, const char *url)
{
	fixture_assert_integrity(db);
	ck_assert_int_eq(rfx_primary_query_int(url,
					       "SELECT count(*) FROM "
					       "pragma_integrity_check WHERE "
					       "integrity_check <> 'ok'"),
			 0);
}

/* ---------------------------------------------------------------------- */
/* the replica */

char *rwh_last_error(sqlite3 *db)
{
	json_t *o = rfx_status_json(db);
	const char *s = json_string_value(json_object_get(o, "last_error"));
	char *out = s != NULL ? strdup(s) : NULL;

	json_decref(o);
	return out;
}

void rwh_assert_at_head(sqlite3 *db, const char *path, const char *url)
{
	struct rfx_info info;
	char *err;

	rfx_primary_info(url, NULL, &info);
	ck_assert_int_eq(rfx_status_int(db, "generation"), info.generation);
	ck_assert_int_eq(rfx_status_int(db, "frame_no"), info.max_frame_no);
	ck_assert_int_eq(rfx_state_int(path, "generation"), info.generation);
	ck_assert_int_eq(rfx_state_int(path, "frame_no"), info.max_frame_no);
	ck_assert_int_eq(rfx_state_int(path, "frame_hwm"), info.max_frame_no);
	err = rwh_last_error(db);
	ck_assert_msg(err == NULL, "last_error: %s", err);
}

const char *rwh_start_explicit(struct rfx_env *e, sqlite3 **db, sqlite3 **db2)
{
	rfx_env_start(e, NULL);
	*db = rfx_open(e->path, e->srv.url, "sync_interval=0");
	if (db2 != NULL)
		*db2 = rfx_open(e->path, e->srv.url, "sync_interval=0");
	return e->srv.url;
}

void rwh_finish(struct rfx_env *e, sqlite3 *db, sqlite3 *db2)
{
	rwh_assert_integrity_both(db, e->srv.url);
	if (db2 != NULL) {
		fixture_assert_integrity(db2);
		sqlite3_close(db2);
	}
	sqlite3_close(db);
	rfx_env_stop(e);
}

/* ---------------------------------------------------------------------- */
/* a writer */

int rwh_writer_exec(struct rwh_writer *w, const char *sql)
{
	int tries;

	for (tries = 0; tries < 200; tries++) {
		int rc = sqlite3_exec(w->db, sql, NULL, NULL, NULL);

		if (rc == SQLITE_OK)
			return 1;
		if ((rc & 0xff) == SQLITE_BUSY) {
			w->busy++;
			if (sqlite3_extended_errcode(w->db) ==
			    SQLITE_BUSY_SNAPSHOT)
				w->snapshot++;
			if (sqlite3_get_autocommit(w->db) == 0)
				sqlite3_exec(w->db, "ROLLBACK", NULL, NULL,
					     NULL);
			rfx_sleep_ms(1 + rand() % 5);
			continue;
		}
		if (w->failed++ == 0)
			snprintf(w->first_error, sizeof w->first_error,
				 "%s: %s (%d)", sql, sqlite3_errmsg(w->db),
				 sqlite3_extended_errcode(w->db));
		if (sqlite3_get_autocommit(w->db) == 0)
			sqlite3_exec(w->db, "ROLLBACK", NULL, NULL, NULL);
		return 0;
	}
	if (w->failed++ == 0)
		snprintf(w->first_error, sizeof w->first_error,
			 "%s: still busy after 200 tries", sql);
	return 0;
}
