#include "replite_vfs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/replica.h"
#include "vfs/uri_params.h"
#include "wal/cipher_vfs.h"
#include "wal/wal_observer.h"

/* One database path replicated in this process. */
struct node {
	char *path;
	struct replica *replica; /* NULL while opening */
	int refs;                /* main files attached */
	struct node *next;
};

/* The replicas of the process, reachable only from the registered VFS (it
 * is the hooks' argument). */
struct registry {
	sqlite3_vfs *vfs;
	/* Under the observer: encrypts the files of replicas opened with a
	 * key (wal/cipher_vfs.h; the others are the default VFS's own
	 * handles).  The internal connections use it too. */
	sqlite3_vfs *cipher;
	pthread_mutex_t mu;
	pthread_cond_t opened; /* a node finished opening */
	struct node *nodes;
};

static struct node *find_node(struct registry *reg, const char *path)
{
	struct node *n;

	for (n = reg->nodes; n != NULL; n = n->next) {
		if (strcmp(n->path, path) == 0)
			return n;
	}
	return NULL;
}

static void unlink_node(struct registry *reg, struct node *node)
{
	struct node **pp = &reg->nodes;

	while (*pp != node)
		pp = &(*pp)->next;
	*pp = node->next;
}

/* Another connection of the process already replicates path: share its
 * replica, unless this open asks for another primary. */
static int share_node(struct node *n, const struct replica_options *p,
		      char **errmsg)
{
	const char *url = replica_sync_url(n->replica);
	char err[1024];

	if (p->sync_url != NULL && strcmp(p->sync_url, url) != 0) {
		*errmsg = sqlite3_mprintf(
		    "replite: %s is already open in this process as a replica "
		    "of %s; it cannot also sync from %s",
		    n->path, url, p->sync_url);
		return SQLITE_CANTOPEN;
	}
	/* As when the file is opened first: as-of or live, and which
	 * state. */
	if (replica_check_as_of(n->replica, &p->as_of, err, sizeof err) != 0 ||
	    replica_check_key(n->replica, p->encryption_key, err, sizeof err) !=
		0) {
		*errmsg = sqlite3_mprintf("replite: %s", err);
		return SQLITE_CANTOPEN;
	}
	n->refs++;
	return SQLITE_OK;
}

/* Attach a main file to the replica of its path, creating the replica on
 * the first open (which may bootstrap the file: opens of the same path
 * wait for it, opens of other paths do not). */
static int attach(struct registry *reg, const char *path,
		  const struct replica_options *p, struct node **out,
		  char **errmsg)
{
	struct replica *replica = NULL;
	struct node *n;
	char err[1024];
	int rc;

	pthread_mutex_lock(&reg->mu);
	while ((n = find_node(reg, path)) != NULL && n->replica == NULL)
		pthread_cond_wait(&reg->opened, &reg->mu);
	if (n != NULL) {
		rc = share_node(n, p, errmsg);
		pthread_mutex_unlock(&reg->mu);
		*out = n;
		return rc;
	}
	n = calloc(1, sizeof *n);
	if (n == NULL || (n->path = strdup(path)) == NULL) {
		free(n);
		pthread_mutex_unlock(&reg->mu);
		return SQLITE_NOMEM;
	}
	n->refs = 1;
	n->next = reg->nodes;
	reg->nodes = n;
	pthread_mutex_unlock(&reg->mu);

	rc = replica_open(path, p, reg->cipher, &replica, err, sizeof err);

	pthread_mutex_lock(&reg->mu);
	if (rc != 0)
		unlink_node(reg, n);
	else
		n->replica = replica;
	pthread_cond_broadcast(&reg->opened);
	pthread_mutex_unlock(&reg->mu);
	if (rc != 0) {
		free(n->path);
		free(n);
		*errmsg = sqlite3_mprintf("replite: %s", err);
		return SQLITE_CANTOPEN;
	}
	*out = n;
	return SQLITE_OK;
}

static void detach(struct registry *reg, struct node *n)
{
	int last;

	pthread_mutex_lock(&reg->mu);
	last = --n->refs == 0;
	if (last)
		unlink_node(reg, n);
	pthread_mutex_unlock(&reg->mu);
	if (!last)
		return;
	/* Outside the lock: closing joins the sync thread. */
	replica_close(n->replica);
	free(n->path);
	free(n);
}

/* ---------------------------------------------------------------------- */
/* hooks */

static int on_open_main(void *arg, sqlite3_filename name, void **ctx,
			char **errmsg)
{
	struct registry *reg = arg;
	struct replica_options p;
	struct node *n = NULL;
	char err[1024];
	int rc;

	if (uri_params_parse(name, NULL, &p, err, sizeof err) != 0) {
		*errmsg = sqlite3_mprintf("%s", err);
		return SQLITE_CANTOPEN;
	}
	rc = attach(reg, name, &p, &n, errmsg);
	replica_options_free(&p);
	if (rc == SQLITE_OK)
		*ctx = n;
	return rc;
}

static void on_close_main(void *arg, void *ctx)
{
	detach(arg, ctx);
}

static int on_begin_write(void *arg, void *ctx)
{
	struct node *n = ctx;

	(void)arg;
	return replica_begin_write(n->replica);
}

static int begin_write_held(void *arg, void *ctx)
{
	struct node *n = ctx;

	(void)arg;
	return replica_begin_write_held(n->replica);
}

static int on_commit(void *arg, void *ctx, const char *main_path,
		     const struct wal_page *pages, size_t n_pages,
		     uint32_t db_size)
{
	struct node *n = ctx;

	(void)arg;
	(void)main_path;
	if (n == NULL)
		return SQLITE_OK;
	return replica_commit(n->replica, pages, n_pages, db_size);
}

static int commit_is_private(void *arg, void *ctx)
{
	struct node *n = ctx;

	(void)arg;
	return !replica_reads_own_writes(n->replica);
}

static void before_write_unlock(void *arg, void *ctx, int committed,
				int published, const struct wal_position *pos)
{
	struct node *n = ctx;

	(void)arg;
	replica_write_unlocking(n->replica, committed, published, pos);
}

static void on_write_unlock(void *arg, void *ctx)
{
	struct node *n = ctx;

	(void)arg;
	if (n != NULL)
		replica_write_unlocked(n->replica);
}

static int before_wal_sync(void *arg, void *ctx)
{
	struct node *n = ctx;

	(void)arg;
	return replica_offline_wal_sync(n->replica);
}

static int pragma_error(char **az, const char *fmt, const char *value)
{
	az[0] = sqlite3_mprintf(fmt, value);
	return SQLITE_ERROR;
}

static int on_pragma(void *arg, void *ctx, char **az)
{
	struct node *n = ctx;
	const char *name = az[1], *value = az[2];
	char err[1024];
	uint32_t frame_no;

	(void)arg;
	if (strcasecmp(name, "replite_sync") == 0) {
		if (replica_sync(n->replica, &frame_no, err, sizeof err) != 0)
			return pragma_error(az, "%s", err);
		az[0] = sqlite3_mprintf("%u", frame_no);
		return SQLITE_OK;
	}
	if (strcasecmp(name, "replite_status") == 0) {
		az[0] = replica_status_json(n->replica);
		return az[0] != NULL ? SQLITE_OK : SQLITE_NOMEM;
	}
	if (strcasecmp(name, "replite_conflicts") == 0) {
		az[0] = replica_conflicts_json(n->replica, err, sizeof err);
		return az[0] != NULL ? SQLITE_OK : pragma_error(az, "%s", err);
	}
	if (strcasecmp(name, "replite_conflicts_clear") == 0) {
		uint64_t cleared;
		if (replica_conflicts_clear(n->replica, &cleared, err,
					    sizeof err) != 0)
			return pragma_error(az, "%s", err);
		az[0] = sqlite3_mprintf("%llu", (unsigned long long)cleared);
		return SQLITE_OK;
	}
	if (strcasecmp(name, "replite_verify") == 0) {
		az[0] = replica_verify_json(n->replica, err, sizeof err);
		return az[0] != NULL ? SQLITE_OK : pragma_error(az, "%s", err);
	}
	if (strcasecmp(name, "replite_rekey") == 0)
		return pragma_error(
		    az,
		    "replite: a replica is not re-encrypted in place; open a "
		    "new replica file with the new key (it bootstraps from the "
		    "primary), then delete %s and its -wal, -shm, -replite and "
		    "-replite-key files",
		    replica_db_path(n->replica));
	if (strcasecmp(name, "journal_mode") == 0 && value != NULL &&
	    strcasecmp(value, "wal") != 0)
		return pragma_error(az,
				    "replite: a replica stays in WAL mode; "
				    "journal_mode=%s is refused",
				    value);
	if (strcasecmp(name, "locking_mode") == 0 && value != NULL &&
	    strcasecmp(value, "exclusive") == 0)
		return pragma_error(az,
				    "replite: locking_mode=%s is refused on a "
				    "replica (its sync thread and other "
				    "processes must be able to read and apply)",
				    value);
	return SQLITE_NOTFOUND;
}

/* ---------------------------------------------------------------------- */

int replite_vfs_register(const char *name)
{
	struct wal_observer_hooks hooks = {0};
	struct registry *reg;
	sqlite3_vfs *root;
	char cipher_name[128];
	int rc;

	if (sqlite3_vfs_find(name) != NULL)
		return SQLITE_OK;
	root = sqlite3_vfs_find(NULL);
	if (root == NULL)
		return SQLITE_ERROR;
	reg = calloc(1, sizeof *reg);
	if (reg == NULL)
		return SQLITE_NOMEM;
	snprintf(cipher_name, sizeof cipher_name, "%s-cipher", name);
	rc = cipher_vfs_register(cipher_name, root, &reg->cipher);
	if (rc != SQLITE_OK) {
		free(reg);
		return rc;
	}
	pthread_mutex_init(&reg->mu, NULL);
	pthread_cond_init(&reg->opened, NULL);
	hooks.arg = reg;
	hooks.on_open_main = on_open_main;
	hooks.on_close_main = on_close_main;
	hooks.on_begin_write = on_begin_write;
	hooks.begin_write_held = begin_write_held;
	hooks.on_commit = on_commit;
	hooks.commit_is_private = commit_is_private;
	hooks.before_write_unlock = before_write_unlock;
	hooks.on_write_unlock = on_write_unlock;
	hooks.on_pragma = on_pragma;
	hooks.before_wal_sync = before_wal_sync;
	rc = wal_observer_register_over(name, &hooks, reg->cipher, &reg->vfs);
	if (rc != SQLITE_OK) {
		cipher_vfs_unregister(reg->cipher);
		pthread_mutex_destroy(&reg->mu);
		pthread_cond_destroy(&reg->opened);
		free(reg);
	}
	return rc;
}

const char *replite_vfs_open_error(sqlite3_file *f)
{
	return wal_observer_open_error(f);
}

struct replica *replite_vfs_replica(sqlite3_file *f)
{
	struct node *n = wal_observer_ctx(f);

	return n != NULL ? n->replica : NULL;
}
