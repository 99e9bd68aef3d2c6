/* Retention per database: how long ended generations (and so the states
 * point-in-time restore can reach) are kept.  The server's --retention is
 * every database's default; a database may have its own, kept in
 * DATA_DIR/retention.json ({"retention_ms": N}, written atomically), which
 * start-up reads back.  The maintenance tick reads the value each time
 * (store_gen_drop_expired), so a change applies at once: a shorter
 * retention drops what it no longer covers at the next tick, a longer one
 * keeps what is still there (what was dropped is gone). */
#include "store_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "util.h"

static char *retention_path(struct store *s)
{
	return util_strdupf("%s/retention.json", s->data_dir);
}

int store_retention_load(struct store *s, char *err, size_t n)
{
	char *path = retention_path(s), *text = NULL;
	json_t *j = NULL, *v;
	size_t len;
	int e, rv = -1;

	atomic_store(&s->retention_ms, s->cfg.retention_ms);
	atomic_store(&s->retention_own, 0);
	if (path == NULL) {
		errors_set(err, n, "out of memory");
		return -1;
	}
	e = fileio_read_file(path, &text, &len);
	if (e == -ENOENT) {
		rv = 0;
		goto out;
	}
	if (e != 0) {
		errors_set(err, n, "cannot read %s: %s", path, strerror(-e));
		goto out;
	}
	j = json_loadb(text, len, 0, NULL);
	v = json_object_get(j, "retention_ms");
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		errors_set(err, n,
			   "%s is corrupt: expected {\"retention_ms\": N}",
			   path);
		goto out;
	}
	atomic_store(&s->retention_ms, (int64_t)json_integer_value(v));
	atomic_store(&s->retention_own, 1);
	rv = 0;
out:
	json_decref(j);
	free(text);
	free(path);
	return rv;
}

int store_set_retention(struct store *s, int64_t ms, char *err, size_t n)
{
	if (store_write_retention(s->data_dir, ms, err, n) != 0)
		return -1;
	atomic_store(&s->retention_ms, ms < 0 ? s->cfg.retention_ms : ms);
	atomic_store(&s->retention_own, ms >= 0);
	return 0;
}

int store_write_retention(const char *dir, int64_t ms, char *err, size_t n)
{
	char *path = util_strdupf("%s/retention.json", dir), *body = NULL;
	int e;

	if (path == NULL) {
		errors_set(err, n, "out of memory");
		return -1;
	}
	if (ms < 0) {
		/* Back to the server's default. */
		e = unlink(path) == 0 || errno == ENOENT ? fileio_fsync_dir(dir)
							 : -errno;
	} else {
		body =
		    util_strdupf("{\"retention_ms\": %lld}\n", (long long)ms);
		e = body != NULL
			? fileio_write_file_atomic(path, body, strlen(body))
			: -ENOMEM;
	}
	if (e != 0) {
		errors_set(err, n, "cannot write %s: %s", path,
			   strerror(e < 0 ? -e : errno));
		free(path);
		free(body);
		return -1;
	}
	free(path);
	free(body);
	return 0;
}

int64_t store_retention(struct store *s, int *own)
{
	if (own != NULL)
		*own = atomic_load(&s->retention_own);
	return atomic_load(&s->retention_ms);
}
