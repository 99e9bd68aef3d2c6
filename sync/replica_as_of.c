/* As-of replicas (URI as_of, sync/as_of.h): a read-only replica of the
 * primary's state at a time or after a commit frame.  Its first open
 * bootstraps the file with exactly that state (the puller asks GET
 * /info?as_of=... and requests nothing past it; every byte verified as in
 * any bootstrap); every later open reads the state file only, so it works
 * with the primary down.  It has no sync thread: it never syncs forward,
 * replite_sync() fails, and writes are refused at begin-write with
 * SQLITE_READONLY. */
#include "replica_internal.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/dbsum.h"
#include "base/errors.h"
#include "base/sqlite_api.h"

/* "as of <time> (as_of=<request>)" of the replica's state. */
static void describe(const struct replica *r, char *out, size_t n)
{
	char when[AS_OF_TEXT_SIZE], asked[AS_OF_TEXT_SIZE];

	clock_format_rfc3339(r->as_of_state.as_of_unix_ms, when, sizeof when);
	as_of_format(&r->as_of_state.as_of_request, asked);
	snprintf(out, n, "as of %s (as_of=%s)", when, asked);
}

int replica_as_of_open(struct replica *r, int synced, char *err, size_t err_len)
{
	struct replica_state st = {0};
	char asked[AS_OF_TEXT_SIZE], why[1024];
	int rv = -1;

	as_of_format(&r->params.as_of, asked);
	puller_set_as_of(r->puller, &r->params.as_of);
	/* No sync thread: the first open bootstraps in the caller's
	 * thread; later ones need nothing from the primary. */
	if (!synced) {
		if (puller_sync(r->puller, 0, why, sizeof why) != 0) {
			errors_set(err, err_len,
				   "the as-of replica %s could not get the "
				   "primary's state as_of=%s: %s",
				   r->db_path, asked, why);
			return -1;
		}
		r->last_sync_unix_ms = clock_unix_ms();
		/* No sync thread will ever checkpoint it: a whole image
		 * applied through the WAL goes into the file now. */
		if (applier_checkpoint(r->applier, 1, NULL, why, sizeof why) !=
		    0)
			sqlite3_log(SQLITE_WARNING, "replite: %s", why);
	}
	puller_stats(r->puller, &r->stats);
	if (applier_load_state(r->applier, &st, err, err_len) != 0)
		return -1;
	/* Checked at open; again now that the state is there (another
	 * process may have made the file something else meanwhile). */
	if (replica_state_check_as_of(&st, &r->params.as_of, r->db_path, err,
				      err_len) != 0)
		goto out;
	r->as_of_state.has_as_of = 1;
	r->as_of_state.as_of_request = st.as_of_request;
	r->as_of_state.as_of_unix_ms = st.as_of_unix_ms;
	r->as_of_state.generation = st.generation;
	r->as_of_state.frame_no = st.frame_no;
	r->stats.generation = st.generation;
	r->stats.frame_no = st.frame_no;
	r->stats.primary_frame_no = st.frame_no;
	r->params.sync_interval_ms = 0; /* never syncs */
	rv = 0;
out:
	replica_state_free(&st);
	return rv;
}

int replica_check_as_of(struct replica *r, const struct as_of *want, char *err,
			size_t err_len)
{
	struct replica_state st = r->as_of_state;

	/* Borrowed for the message only (never freed). */
	st.sync_url = r->params.sync_url;
	st.database_id = NULL;
	return replica_state_check_as_of(&st, want, r->db_path, err, err_len);
}

int replica_as_of_sync(struct replica *r, char *err, size_t err_len)
{
	char what[128];

	describe(r, what, sizeof what);
	errors_set(err, err_len,
		   "replite: %s is an as-of replica, the primary's state %s: "
		   "it does not sync (open another file without as_of for a "
		   "live replica)",
		   r->db_path, what);
	return -1;
}

int replica_as_of_write(struct replica *r)
{
	char what[128];

	describe(r, what, sizeof what);
	pthread_mutex_lock(&r->mu);
	snprintf(r->last_error, sizeof r->last_error,
		 "%s is an as-of replica, the primary's state %s: it is "
		 "read-only, and writes are refused",
		 r->db_path, what);
	sqlite3_log(SQLITE_READONLY, "replite: %s", r->last_error);
	pthread_mutex_unlock(&r->mu);
	return SQLITE_READONLY;
}

json_t *replica_as_of_verify(struct replica *r, char *err, size_t err_len)
{
	char local_text[DBSUM_TEXT_SIZE], rec_text[DBSUM_TEXT_SIZE];
	struct replica_state st = {0};
	uint64_t local;
	json_t *o;

	/* The state's checksum was verified against the primary's answers
	 * when it was downloaded; the primary is not asked again (it may be
	 * down, and keeps checksums of its current generation only). */
	if (applier_verify(r->applier, &st, &local, err, err_len) != 0)
		return NULL;
	dbsum_format(local, local_text);
	dbsum_format(st.checksum, rec_text);
	o = json_pack("{s:b, s:I, s:I, s:s, s:o, s:n, s:s}", "match",
		      st.has_checksum && st.checksum == local, "generation",
		      (json_int_t)st.generation, "frame_no",
		      (json_int_t)st.frame_no, "local", local_text, "recorded",
		      st.has_checksum ? json_string(rec_text) : json_null(),
		      "primary", "error",
		      "an as-of replica does not ask the primary: the local "
		      "checksum is compared with the one recorded when its "
		      "state was downloaded and verified");
	replica_state_free(&st);
	if (o == NULL)
		errors_set(err, err_len, "out of memory");
	return o;
}
