/* The applier's access to the replica state file: loads (one cached by the
 * file's stamp), saves, and edits under the sync lock. */
#include "applier_internal.h"

#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "sync/state_file.h"

int applier_state_save(struct applier *a, const struct replica_state *st,
		       char *err, size_t err_len)
{
	return replica_state_save(a->state_path, st, err, err_len);
}

int applier_state_save_unsynced(struct applier *a,
				const struct replica_state *st, char *err,
				size_t err_len)
{
	return replica_state_save_unsynced(a->state_path, st, err, err_len);
}

int applier_load_state(struct applier *a, struct replica_state *st, char *err,
		       size_t err_len)
{
	return replica_state_load(a->state_path, st, err, err_len);
}

/* Reloaded only when the file's stamp (state_file.h) changed: another
 * version was saved, by this process or another. */
int applier_load_state_cached(struct applier *a, struct replica_state *st,
			      char *err, size_t err_len)
{
	struct state_file_stamp key;
	int rv;

	memset(st, 0, sizeof *st);
	pthread_mutex_lock(&a->ob_mu);
	if (state_file_stamp(a->state_path, &key) != 0) {
		pthread_mutex_unlock(&a->ob_mu);
		return applier_load_state(a, st, err, err_len);
	}
	if (!a->st_cached || memcmp(&key, &a->st_key, sizeof key) != 0) {
		replica_state_free(&a->st_cache);
		a->st_cached = 0;
		rv = applier_load_state(a, &a->st_cache, err, err_len);
		if (rv != 0) {
			pthread_mutex_unlock(&a->ob_mu);
			return rv;
		}
		a->st_cached = 1;
		a->st_key = key;
	}
	*st = a->st_cache;
	st->database_id =
	    a->st_cache.database_id ? strdup(a->st_cache.database_id) : NULL;
	st->sync_url = strdup(a->st_cache.sync_url);
	pthread_mutex_unlock(&a->ob_mu);
	if (st->sync_url == NULL ||
	    (a->st_cache.database_id != NULL && st->database_id == NULL)) {
		replica_state_free(st);
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* injection */

int applier_record_primary(struct applier *a, const char *database_id,
			   const char *sync_url, char *err, size_t err_len)
{
	struct replica_state st = {0};
	char *old_id, *old_url;
	int rv = -1;

	if (applier_lock_begin(a, err, err_len) != 0)
		return -1;
	if (applier_load_state(a, &st, err, err_len) != 0)
		goto out;
	old_id = st.database_id;
	old_url = st.sync_url;
	if ((old_id == NULL) == (database_id == NULL) &&
	    (old_id == NULL || strcmp(old_id, database_id) == 0) &&
	    strcmp(old_url, sync_url) == 0) {
		rv = 0;
		goto out;
	}
	st.database_id = (char *)database_id;
	st.sync_url = (char *)sync_url;
	rv = applier_state_save(a, &st, err, err_len);
	st.database_id = old_id;
	st.sync_url = old_url;
out:
	replica_state_free(&st);
	applier_lock_end(a);
	return rv;
}

int applier_edit_state(struct applier *a, int (*edit)(struct replica_state *),
		       char *err, size_t err_len)
{
	struct replica_state st = {0};
	int rv = -1;

	if (applier_lock_begin(a, err, err_len) != 0)
		return -1;
	if (applier_load_state(a, &st, err, err_len) == 0)
		rv = edit(&st) ? applier_state_save(a, &st, err, err_len) : 0;
	replica_state_free(&st);
	applier_lock_end(a);
	return rv;
}

static int clear_catching_up(struct replica_state *st)
{
	if (!st->catching_up || st->bootstrapping)
		return 0;
	st->catching_up = 0;
	return 1;
}

static int set_bootstrapping(struct replica_state *st)
{
	st->bootstrapping = 1;
	return 1;
}

int applier_caught_up(struct applier *a, char *err, size_t err_len)
{
	return applier_edit_state(a, clear_catching_up, err, err_len);
}

int applier_require_image(struct applier *a, char *err, size_t err_len)
{
	return applier_edit_state(a, set_bootstrapping, err, err_len);
}
