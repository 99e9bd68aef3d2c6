/* The databases of one primary (databases.h). */
#include "databases.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/fileio.h"
#include "util.h"

#define SUBDIR "databases"
#define CREATING ".creating-"
#define DELETING ".deleting-"

struct entry {
	struct database db; /* first: a struct database * is an entry */
	struct databases *owner;
	char *dir;
	int refs; /* holders, the registry's own included while listed */
	int gone; /* deleted: remove dir once closed */
	struct entry *next;
};

struct databases {
	struct databases_config cfg;
	char *sub;                /* DATA_DIR/databases */
	pthread_mutex_t mu;       /* guards list and every entry's refs */
	pthread_mutex_t admin_mu; /* one create or delete at a time */
	struct entry *list;       /* the default database first */
};

int databases_name_valid(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0, i;

	if (n == 0 || n > DATABASES_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && c != '-' && c != '_')
			return 0;
		if (!alnum && (i == 0 || i == n - 1))
			return 0;
	}
	return 1;
}

int databases_name_reserved(const char *name)
{
	static const char *const reserved[] = {DATABASES_DEFAULT, "v1", "v2",
					       "v3", "v3-protobuf"};
	size_t i;

	for (i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
		if (strcmp(name, reserved[i]) == 0)
			return 1;
	return 0;
}

/* Close an entry no longer listed nor held; remove its files if it was
 * deleted. */
static void entry_free(struct entry *e)
{
	if (e == NULL)
		return;
	if (e->db.store != NULL)
		store_set_listener(e->db.store, NULL, NULL);
	streams_free(e->db.streams);
	store_close(e->db.store);
	replicas_free(e->db.replicas);
	if (e->gone && e->dir != NULL)
		fileio_remove_tree(e->dir);
	free(e->dir);
	free(e);
}

/* Open the database in dir (created if missing) as name. */
static struct entry *entry_open(struct databases *d, const char *name,
				const char *dir, const char *import, char *err,
				size_t n)
{
	struct entry *e = calloc(1, sizeof *e);
	struct store_config sc = d->cfg.store;
	struct streams_config stc = d->cfg.streams;

	if (e == NULL || (e->dir = strdup(dir)) == NULL) {
		snprintf(err, n, "out of memory");
		goto fail;
	}
	snprintf(e->db.name, sizeof e->db.name, "%s", name);
	e->owner = d;
	sc.data_dir = dir;
	sc.import_path = import;
	if (store_open(&sc, &e->db.store, err, n) != 0) {
		/* Say which database: a server holds many. */
		char *why = strdup(err);
		snprintf(err, n, "database \"%s\" (%s): %s", name, dir,
			 why != NULL ? why : "cannot open");
		free(why);
		goto fail;
	}
	stc.open_db = store_open_conn;
	stc.open_db_arg = e->db.store;
	e->db.streams = streams_new(&stc);
	e->db.replicas = replicas_new(d->cfg.replica_expiry_ms, 4096);
	if (e->db.streams == NULL || e->db.replicas == NULL) {
		snprintf(err, n, "out of memory");
		goto fail;
	}
	if (d->cfg.listener != NULL)
		store_set_listener(e->db.store, d->cfg.listener,
				   d->cfg.listener_arg);
	e->refs = 1;
	return e;
fail:
	entry_free(e);
	return NULL;
}

/* Remove what interrupted creates and deletes left in databases/, and
 * open the databases there. */
static int open_named(struct databases *d, char *err, size_t n)
{
	DIR *dir = opendir(d->sub);
	struct dirent *de;
	struct entry **tail = &d->list->next;

	if (dir == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(dir)) != NULL) {
		char *path;
		struct entry *e;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		path = util_strdupf("%s/%s", d->sub, de->d_name);
		if (path == NULL)
			continue;
		if (strncmp(de->d_name, CREATING, strlen(CREATING)) == 0 ||
		    strncmp(de->d_name, DELETING, strlen(DELETING)) == 0) {
			fprintf(stderr,
				"replite: removing %s, left by an interrupted "
				"%s\n",
				path,
				de->d_name[1] == 'c' ? "create" : "delete");
			fileio_remove_tree(path);
		} else if (!databases_name_valid(de->d_name) ||
			   databases_name_reserved(de->d_name)) {
			fprintf(stderr,
				"replite: ignoring %s: not a database name\n",
				path);
		} else {
			e = entry_open(d, de->d_name, path, NULL, err, n);
			if (e == NULL) {
				free(path);
				closedir(dir);
				return -1;
			}
			*tail = e;
			tail = &e->next;
		}
		free(path);
	}
	closedir(dir);
	return 0;
}

int databases_open(const struct databases_config *cfg, struct databases **out,
		   char *err, size_t n)
{
	struct databases *d = calloc(1, sizeof *d);

	*out = NULL;
	if (d == NULL) {
		snprintf(err, n, "out of memory");
		return -1;
	}
	d->cfg = *cfg;
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->admin_mu, NULL);
	d->sub = util_strdupf("%s/" SUBDIR, cfg->data_dir);
	if (d->sub == NULL) {
		snprintf(err, n, "out of memory");
		goto fail;
	}
	d->list = entry_open(d, DATABASES_DEFAULT, cfg->data_dir,
			     cfg->import_path, err, n);
	if (d->list == NULL || open_named(d, err, n) != 0)
		goto fail;
	*out = d;
	return 0;
fail:
	databases_close(d);
	return -1;
}

void databases_close(struct databases *d)
{
	if (d == NULL)
		return;
	while (d->list != NULL) {
		struct entry *e = d->list;
		d->list = e->next;
		entry_free(e);
	}
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->admin_mu);
	free(d->sub);
	free(d);
}

static struct entry *find_locked(struct databases *d, const char *name)
{
	struct entry *e;

	if (name == NULL)
		return d->list;
	for (e = d->list; e != NULL; e = e->next)
		if (strcmp(e->db.name, name) == 0)
			return e;
	return NULL;
}

struct database *databases_get(struct databases *d, const char *name)
{
	struct entry *e;

	pthread_mutex_lock(&d->mu);
	e = find_locked(d, name);
	if (e != NULL)
		e->refs++;
	pthread_mutex_unlock(&d->mu);
	return e != NULL ? &e->db : NULL;
}

void databases_put(struct database *db)
{
	struct entry *e = (struct entry *)db;
	int last;

	if (db == NULL)
		return;
	pthread_mutex_lock(&e->owner->mu);
	last = --e->refs == 0;
	pthread_mutex_unlock(&e->owner->mu);
	if (last)
		entry_free(e); /* deleted, and we were the last */
}

struct database *databases_hold(struct database *db)
{
	struct entry *e = (struct entry *)db;

	pthread_mutex_lock(&e->owner->mu);
	e->refs++;
	pthread_mutex_unlock(&e->owner->mu);
	return db;
}

int databases_exists(struct databases *d, const char *name)
{
	int found;

	pthread_mutex_lock(&d->mu);
	found = find_locked(d, name) != NULL;
	pthread_mutex_unlock(&d->mu);
	return found;
}

/* Why name cannot be a new database's, into err. */
static void name_refused(const char *name, char *err, size_t n)
{
	snprintf(err, n,
		 "invalid database name \"%.80s\": 1-63 of a-z, 0-9, '-' and "
		 "'_', starting and ending with a letter or digit, and "
		 "not " DATABASES_DEFAULT ", v1, v2, v3 or v3-protobuf",
		 name != NULL ? name : "");
}

/* How a new database's directory is filled (an empty store, or a fork). */
typedef int (*build_fn)(void *arg, const char *dir, char *err, size_t n);
static int build_fork(void *arg, const char *dir, char *err, size_t n);

/* Create database name with build, in a temporary directory renamed into
 * place: a crash leaves either nothing or a whole database.  A new empty
 * store is opened once there and closed (which makes its first
 * generation); then the database is opened under its final path (the
 * store keeps its paths).  A fork's directory is whole as built: the open
 * under the final path builds its live database, as start-up would after
 * a crash right after the rename. */
static int install(struct databases *d, const char *name, build_fn build,
		   void *arg, int *status, char *err, size_t n)
{
	char *tmp = NULL, *final = NULL, *suffix = NULL;
	struct store *s = NULL;
	struct store_config sc = d->cfg.store;
	struct entry *e = NULL, **tail;
	int rv = -1;

	*status = 400;
	if (!databases_name_valid(name) || databases_name_reserved(name)) {
		name_refused(name, err, n);
		return -1;
	}
	pthread_mutex_lock(&d->admin_mu);
	if (databases_exists(d, name)) {
		*status = 409;
		snprintf(err, n, "database \"%s\" already exists", name);
		goto out;
	}
	*status = 500;
	suffix = util_random_token(6);
	final = util_strdupf("%s/%s", d->sub, name);
	tmp = suffix != NULL
		  ? util_strdupf("%s/" CREATING "%s-%s", d->sub, name, suffix)
		  : NULL;
	if (final == NULL || tmp == NULL) {
		snprintf(err, n, "out of memory");
		goto out;
	}
	if (fileio_mkdir_p(d->sub) != 0) {
		snprintf(err, n, "cannot create %s: %s", d->sub,
			 strerror(errno));
		goto out;
	}
	if (build != NULL && build(arg, tmp, err, n) != 0)
		goto out;
	if (build != build_fork) {
		sc.data_dir = tmp;
		sc.import_path = NULL;
		if (store_open(&sc, &s, err, n) != 0)
			goto out;
		store_close(s);
	}
	if (rename(tmp, final) != 0 || fileio_fsync_dir(d->sub) != 0) {
		snprintf(err, n, "cannot create %s: %s", final,
			 strerror(errno));
		goto out;
	}
	e = entry_open(d, name, final, NULL, err, n);
	if (e == NULL) {
		fileio_remove_tree(final);
		goto out;
	}
	pthread_mutex_lock(&d->mu);
	for (tail = &d->list; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = e;
	pthread_mutex_unlock(&d->mu);
	rv = 0;
	*status = 200;
out:
	if (rv != 0 && tmp != NULL)
		fileio_remove_tree(tmp);
	pthread_mutex_unlock(&d->admin_mu);
	free(tmp);
	free(final);
	free(suffix);
	return rv;
}

static int build_retained(void *arg, const char *dir, char *err, size_t n)
{
	if (fileio_mkdir_p(dir) != 0) {
		snprintf(err, n, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	return store_write_retention(dir, *(const int64_t *)arg, err, n);
}

int databases_create(struct databases *d, const char *name,
		     int64_t retention_ms, int *status, char *err, size_t n)
{
	return install(d, name, retention_ms >= 0 ? build_retained : NULL,
		       &retention_ms, status, err, n);
}

int databases_parse_at(json_t *timestamp, json_t *frame,
		       struct databases_at *at, const char **code, char *err,
		       size_t n)
{
	char tail;

	at->kind = DATABASES_AT_NOW;
	if (timestamp != NULL && json_is_null(timestamp))
		timestamp = NULL;
	if (frame != NULL && json_is_null(frame))
		frame = NULL;
	*code = "INVALID_POINT";
	if (timestamp != NULL && frame != NULL) {
		snprintf(err, n, "give a timestamp or a frame, not both");
		return -1;
	}
	if (timestamp != NULL) {
		if (!json_is_string(timestamp) ||
		    clock_parse_rfc3339(json_string_value(timestamp),
					&at->unix_ms) != 0) {
			*code = "INVALID_TIMESTAMP";
			snprintf(err, n,
				 "the timestamp must be an RFC 3339 time, "
				 "e.g. 2026-12-03T17:00:00Z (no offset: UTC)");
			return -1;
		}
		at->kind = DATABASES_AT_TIME;
	} else if (frame != NULL) {
		if (!json_is_string(frame) ||
		    sscanf(json_string_value(frame),
			   "%" SCNu32 ":%" SCNu32 "%c", &at->generation,
			   &at->frame, &tail) != 2 ||
		    at->generation == 0) {
			*code = "INVALID_FRAME";
			snprintf(err, n,
				 "the frame must be GENERATION:FRAME, e.g. "
				 "3:120 (frame 0: the generation's start)");
			return -1;
		}
		at->kind = DATABASES_AT_FRAME;
	}
	return 0;
}

int databases_locate(struct database *db, const struct databases_at *at,
		     struct store_point *out, char *err, size_t n)
{
	if (at->kind == DATABASES_AT_FRAME)
		return store_locate_frame(db->store, at->generation, at->frame,
					  out, err, n);
	return store_locate_time(
	    db->store,
	    at->kind == DATABASES_AT_TIME ? at->unix_ms : clock_unix_ms(), out,
	    err, n);
}

struct fork_arg {
	struct store *from;
	struct store_point at;
};

static int build_fork(void *arg, const char *dir, char *err, size_t n)
{
	struct fork_arg *f = arg;

	return store_fork(f->from, &f->at, dir, err, n);
}

int databases_fork(struct databases *d, const char *from, const char *to,
		   const struct databases_at *at, struct store_point *point,
		   int *status, const char **code, char *err, size_t n)
{
	struct database *src = databases_get(d, from);
	struct fork_arg f;
	int rv = -1;

	*code = NULL;
	if (src == NULL) {
		*status = 404;
		snprintf(err, n, "no database is named \"%.80s\"",
			 from != NULL ? from : "");
		return -1;
	}
	if (!databases_name_valid(to) || databases_name_reserved(to)) {
		*status = 400;
		name_refused(to, err, n);
		goto out;
	}
	if (databases_exists(d, to)) {
		*status = 409;
		snprintf(err, n, "database \"%.80s\" already exists", to);
		goto out;
	}
	f.from = src->store;
	/* The state is fixed before anything is built: a fork "now" is the
	 * state when it was asked for. */
	rv = databases_locate(src, at, &f.at, err, n);
	if (rv != 0) {
		*status = 400;
		*code = "POINT_NOT_AVAILABLE";
		goto out;
	}
	*point = f.at;
	rv = install(d, to, build_fork, &f, status, err, n);
out:
	databases_put(src);
	return rv;
}

int databases_delete(struct databases *d, const char *name, int *status,
		     char *err, size_t n)
{
	struct entry *e = NULL, **pp;
	char *suffix = NULL, *moved = NULL;
	int rv = -1, last = 0;

	*status = 400;
	if (name != NULL && strcmp(name, DATABASES_DEFAULT) == 0) {
		snprintf(err, n, "the default database cannot be deleted");
		return -1;
	}
	pthread_mutex_lock(&d->admin_mu);
	pthread_mutex_lock(&d->mu);
	for (pp = &d->list->next; *pp != NULL; pp = &(*pp)->next)
		if (name != NULL && strcmp((*pp)->db.name, name) == 0)
			break;
	e = *pp;
	pthread_mutex_unlock(&d->mu);
	if (e == NULL) {
		*status = 404;
		snprintf(err, n, "no database is named \"%.80s\"",
			 name != NULL ? name : "");
		goto out;
	}
	*status = 500;
	suffix = util_random_token(6);
	moved = suffix != NULL
		    ? util_strdupf("%s/" DELETING "%s-%s", d->sub, name, suffix)
		    : NULL;
	/* Renamed away first: a crash from here on leaves no database of
	 * that name (start-up removes the rest). */
	if (moved == NULL || rename(e->dir, moved) != 0 ||
	    fileio_fsync_dir(d->sub) != 0) {
		snprintf(err, n, "cannot delete database \"%s\": %s", name,
			 moved == NULL ? "out of memory" : strerror(errno));
		goto out;
	}
	pthread_mutex_lock(&d->mu);
	for (pp = &d->list; *pp != e; pp = &(*pp)->next)
		;
	*pp = e->next;
	free(e->dir);
	e->dir = moved;
	moved = NULL;
	e->gone = 1;
	last = --e->refs == 0;
	pthread_mutex_unlock(&d->mu);
	if (last)
		entry_free(e);
	rv = 0;
	*status = 200;
out:
	pthread_mutex_unlock(&d->admin_mu);
	free(suffix);
	free(moved);
	return rv;
}

static void list_one(void *arg, struct database *db)
{
	char since[40];

	clock_format_rfc3339(store_restorable_since(db->store), since,
			     sizeof since);
	json_array_append_new(
	    arg,
	    json_pack("{s:s, s:s, s:I, s:I, s:s}", "name", db->name,
		      "database_id", store_database_id(db->store), "generation",
		      (json_int_t)store_generation(db->store), "frame_no",
		      (json_int_t)store_head(db->store), "restorable_since",
		      since));
}

json_t *databases_list(struct databases *d)
{
	json_t *list = json_array();

	databases_each(d, list_one, list);
	return list;
}

void databases_each(struct databases *d,
		    void (*fn)(void *arg, struct database *db), void *arg)
{
	struct entry **held, *e;
	size_t n = 0, i;

	pthread_mutex_lock(&d->mu);
	for (e = d->list; e != NULL; e = e->next)
		n++;
	held = calloc(n ? n : 1, sizeof *held);
	n = 0;
	for (e = d->list; held != NULL && e != NULL; e = e->next) {
		e->refs++;
		held[n++] = e;
	}
	pthread_mutex_unlock(&d->mu);
	for (i = 0; i < n; i++) {
		fn(arg, &held[i]->db);
		databases_put(&held[i]->db);
	}
	free(held);
}

struct maintain_arg {
	int64_t now_ms;
};

static void maintain_one(void *arg, struct database *db)
{
	struct maintain_arg *m = arg;

	streams_expire(db->streams);
	replicas_expire(db->replicas, m->now_ms);
	store_maintain(db->store);
}

void databases_maintain(struct databases *d, int64_t now_ms)
{
	struct maintain_arg m = {now_ms};

	databases_each(d, maintain_one, &m);
}
