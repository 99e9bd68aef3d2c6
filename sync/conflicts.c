#include "conflicts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "wal/cipher.h"

/* What a sealed record is bound to: a conflict record, not a piece of
 * another file sealed under the same key. */
#define SEALED_AAD "replite conflict record v1"

static char *conflicts_path(const char *db_path)
{
	char *path;

	if (asprintf(&path, "%s" CONFLICTS_SUFFIX, db_path) < 0)
		return NULL;
	return path;
}

/* write all of buf at the end of an O_APPEND file (pwrite's offset would be
 * ignored there, and is not portable). */
static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Does the file end inside a line (a record torn by a crash)?  1 if so, 0
 * if it is empty or ends with a newline, -errno on an error. */
static int ends_mid_line(int fd)
{
	struct stat st;
	char last;
	ssize_t n;

	if (fstat(fd, &st) != 0)
		return -errno;
	if (st.st_size == 0)
		return 0;
	do
		n = pread(fd, &last, 1, st.st_size - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* Truncated meanwhile (conflicts_clear): nothing to end. */
	return n == 1 && last != '\n';
}

/* The compact text of one record, sealed when c is given (malloc'd; NULL
 * when out of memory or sealing failed). */
static char *record_text(const struct cipher *c, const json_t *one)
{
	char *text = json_dumps(one, JSON_COMPACT | JSON_PRESERVE_ORDER);
	char *sealed, *line = NULL;

	if (text == NULL || c == NULL)
		return text;
	sealed = cipher_seal_text(c, SEALED_AAD, text, strlen(text));
	if (sealed != NULL &&
	    asprintf(&line, "{\"sealed\":\"%s\"}", sealed) < 0)
		line = NULL;
	free(sealed);
	free(text);
	return line;
}

/* The records (one object, or an array of them) as compact lines, in a
 * malloc'd string; NULL when out of memory or one is not an object. */
static char *record_lines(const struct cipher *c, const json_t *records,
			  int *not_object)
{
	const json_t *one;
	char *all = NULL, *text, *grown;
	size_t len = 0, i,
	       n = json_is_array(records) ? json_array_size(records) : 1;

	*not_object = 0;
	for (i = 0; i < n; i++) {
		one = json_is_array(records) ? json_array_get(records, i)
					     : records;
		if (!json_is_object(one)) {
			*not_object = 1;
			free(all);
			return NULL;
		}
		/* Compact: no newline inside, one record per line. */
		text = record_text(c, one);
		grown = text ? realloc(all, len + strlen(text) + 2) : NULL;
		if (grown == NULL) {
			free(text);
			free(all);
			return NULL;
		}
		all = grown;
		memcpy(all + len, text, strlen(text));
		len += strlen(text);
		all[len++] = '\n';
		all[len] = '\0';
		free(text);
	}
	return all != NULL ? all : strdup("");
}

int conflicts_append(const char *db_path, const struct cipher *c,
		     const json_t *records, char *err, size_t err_len)
{
	char *path = conflicts_path(db_path), *lines = NULL;
	int fd = -1, rv = -1, rc, not_object;

	if (path == NULL)
		goto oom;
	lines = record_lines(c, records, &not_object);
	if (not_object) {
		errors_set(err, err_len,
			   "cannot append to the conflicts file %s: a "
			   "conflict record is a JSON object",
			   path);
		goto out;
	}
	if (lines == NULL)
		goto oom;
	if (lines[0] == '\0') {
		rv = 0;
		goto out;
	}
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto io_error;
	}
	/* After a torn line, start a new one: glued to the torn piece these
	 * records would be unreadable too. */
	rc = ends_mid_line(fd);
	if (rc < 0)
		goto io_error;
	if (rc == 1)
		rc = write_all(fd, "\n", 1);
	/* One write: concurrent appenders' lines do not interleave. */
	if (rc == 0)
		rc = write_all(fd, lines, strlen(lines));
	if (rc == 0 && fdatasync(fd) != 0)
		rc = -errno;
	if (rc != 0)
		goto io_error;
	rv = 0;
	goto out;
oom:
	errors_set(err, err_len, "out of memory appending a conflict of %s",
		   db_path);
	goto out;
io_error:
	errors_set(err, err_len, "cannot append to the conflicts file %s: %s",
		   path, strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	free(lines);
	free(path);
	return rv;
}

/* A line that parsed as the object v: v itself, or the record a sealed v
 * holds (new reference; NULL with err when it cannot be opened). */
static json_t *open_record(const struct cipher *c, json_t *v, const char *path,
			   char *err, size_t err_len)
{
	const char *sealed = json_string_value(json_object_get(v, "sealed"));
	json_t *rec = NULL;
	char *text;
	size_t n;

	if (sealed == NULL || json_object_size(v) != 1) {
		if (c == NULL)
			return json_incref(v);
		errors_set(err, err_len,
			   "the conflicts file %s holds a record in clear, but "
			   "the replica is encrypted: it was not written by "
			   "this replica",
			   path);
		return NULL;
	}
	if (c == NULL) {
		errors_set(err, err_len,
			   "the conflicts file %s is encrypted, but the "
			   "replica was opened without a key",
			   path);
		return NULL;
	}
	text = cipher_unseal_text(c, SEALED_AAD, sealed, strlen(sealed), &n);
	if (text != NULL)
		rec = json_loadb(text, n, 0, NULL);
	free(text);
	if (!json_is_object(rec)) {
		json_decref(rec);
		errors_set(err, err_len,
			   "the conflicts file %s is corrupt: an encrypted "
			   "record does not authenticate under the replica's "
			   "key",
			   path);
		return NULL;
	}
	return rec;
}

/* The records of db_path in a new array (*records): the lines that parse
 * as JSON objects (opened, when sealed).  Returns 0, or -1 with err. */
static int load(const char *db_path, const struct cipher *c, json_t **records,
		char *err, size_t err_len)
{
	char *path = conflicts_path(db_path), *text = NULL, *p, *nl, *end;
	json_t *array = json_array(), *v;
	size_t len = 0;
	int rc, rv = -1;

	if (path == NULL || array == NULL)
		goto oom;
	rc = fileio_read_file(path, &text, &len);
	if (rc == -ENOENT) {
		*records = array;
		array = NULL;
		rv = 0;
		goto out;
	}
	if (rc != 0) {
		errors_set(err, err_len,
			   "cannot read the conflicts file %s: %s", path,
			   strerror(-rc));
		goto out;
	}
	end = text + len;
	for (p = text; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		v = json_loadb(p, (size_t)(nl - p), 0, NULL);
		if (json_is_object(v)) {
			json_t *rec = open_record(c, v, path, err, err_len);
			json_decref(v);
			if (rec == NULL)
				goto out;
			if (json_array_append_new(array, rec) != 0)
				goto oom;
		} else {
			json_decref(v);
		}
	}
	*records = array;
	array = NULL;
	rv = 0;
	goto out;
oom:
	errors_set(err, err_len, "out of memory reading the conflicts of %s",
		   db_path);
out:
	json_decref(array);
	free(text);
	free(path);
	return rv;
}

char *conflicts_read_json(const char *db_path, const struct cipher *c,
			  char *err, size_t err_len)
{
	json_t *records;
	char *text;

	if (load(db_path, c, &records, err, err_len) != 0)
		return NULL;
	text = json_dumps(records, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(records);
	if (text == NULL)
		errors_set(err, err_len,
			   "out of memory encoding the conflicts of %s",
			   db_path);
	return text;
}

int conflicts_count(const char *db_path, const struct cipher *c, uint64_t *n,
		    char *err, size_t err_len)
{
	json_t *records;

	if (load(db_path, c, &records, err, err_len) != 0)
		return -1;
	*n = json_array_size(records);
	json_decref(records);
	return 0;
}

int conflicts_clear(const char *db_path, char *err, size_t err_len)
{
	char *path = conflicts_path(db_path);
	int fd, rv = 0;

	if (path == NULL) {
		errors_set(err, err_len,
			   "out of memory clearing the conflicts of %s",
			   db_path);
		return -1;
	}
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		rv = -errno;
	if (fd >= 0) {
		if (ftruncate(fd, 0) != 0 || fdatasync(fd) != 0)
			rv = -errno;
		close(fd);
	}
	if (rv != 0)
		errors_set(err, err_len,
			   "cannot clear the conflicts file %s: %s", path,
			   strerror(-rv));
	free(path);
	return rv == 0 ? 0 : -1;
}

json_t *conflicts_txn_ids(const char *db_path, const struct cipher *c,
			  char *err, size_t err_len)
{
	char *text = conflicts_read_json(db_path, c, err, err_len);
	json_t *all, *ids = json_object(), *rec;
	size_t i;

	if (text == NULL || ids == NULL) {
		free(text);
		json_decref(ids);
		if (text != NULL)
			errors_set(err, err_len, "out of memory");
		return NULL;
	}
	all = json_loads(text, 0, NULL);
	free(text);
	json_array_foreach(all, i, rec)
	{
		const char *id = json_string_value(json_object_get(rec, "txn"));
		if (id != NULL && json_object_set_new(ids, id, json_true())) {
			json_decref(ids);
			ids = NULL;
			errors_set(err, err_len, "out of memory");
			break;
		}
	}
	json_decref(all);
	return ids;
}
