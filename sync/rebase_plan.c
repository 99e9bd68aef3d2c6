/* The rebase plan file (rebase_plan.h). */
#include "rebase_plan.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "base/hex.h"

/* Mixed into the hash of a re-applied transaction's id. */
#define REAPPLIED_SEED 0x7265626173652121ull /* "rebase!!" */

char *rebase_plan_path(const char *db_path)
{
	size_t n = strlen(db_path) + sizeof REBASE_PLAN_SUFFIX;
	char *p = malloc(n);

	if (p != NULL)
		snprintf(p, n, "%s%s", db_path, REBASE_PLAN_SUFFIX);
	return p;
}

int rebase_plan_exists(const char *db_path)
{
	char *path = rebase_plan_path(db_path);
	struct stat sb;
	int rv;

	if (path == NULL)
		return 1;
	rv = stat(path, &sb) == 0 || errno != ENOENT;
	free(path);
	return rv;
}

int rebase_plan_read(const char *db_path, json_t **entries, char *err,
		     size_t err_len)
{
	char *path = rebase_plan_path(db_path), *text = NULL, *line, *next;
	json_t *all = json_array(), *header = NULL, *e;
	json_error_t jerr;
	size_t len = 0, want;
	int rc, rv = -1;

	*entries = NULL;
	if (path == NULL || all == NULL) {
		errors_set(err, err_len, "out of memory");
		goto out;
	}
	rc = fileio_read_file(path, &text, &len);
	if (rc == -ENOENT) {
		*entries = all;
		all = NULL;
		rv = 0;
		goto out;
	}
	if (rc != 0) {
		errors_set(err, err_len, "cannot read the rebase plan %s: %s",
			   path, strerror(-rc));
		goto out;
	}
	for (line = text; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		e = json_loads(line, 0, &jerr);
		if (!json_is_object(e)) {
			json_decref(e);
			errors_set(err, err_len,
				   "the rebase plan %s is corrupt: %s", path,
				   jerr.text);
			goto out;
		}
		if (header == NULL)
			header = e;
		else if (json_array_append_new(all, e) != 0)
			goto oom;
	}
	want = (size_t)json_integer_value(json_object_get(header, "entries"));
	if (json_integer_value(json_object_get(
		header, "replite_rebase_plan")) != REBASE_PLAN_FORMAT) {
		errors_set(err, err_len,
			   "the rebase plan %s is not one (or of another "
			   "format)",
			   path);
		goto out;
	}
	if (want != json_array_size(all)) {
		errors_set(
		    err, err_len,
		    "the rebase plan %s is corrupt: it has %zu of its %zu "
		    "entries",
		    path, json_array_size(all), want);
		goto out;
	}
	*entries = all;
	all = NULL;
	rv = 0;
	goto out;
oom:
	errors_set(err, err_len, "out of memory");
out:
	json_decref(header);
	json_decref(all);
	free(text);
	free(path);
	return rv;
}

/* Append text and a newline to the buffer *buf (*len used of *cap). */
static int append_line(char **buf, size_t *len, size_t *cap, const char *text)
{
	size_t n = strlen(text);

	if (*len + n + 1 > *cap) {
		size_t want = (*len + n + 1) * 2;
		char *grown = realloc(*buf, want);
		if (grown == NULL)
			return -1;
		*buf = grown;
		*cap = want;
	}
	memcpy(*buf + *len, text, n);
	(*buf)[*len + n] = '\n';
	*len += n + 1;
	return 0;
}

int rebase_plan_write(const char *db_path, const json_t *entries, char *err,
		      size_t err_len)
{
	char *path = rebase_plan_path(db_path), *buf = NULL, *line;
	size_t len = 0, cap = 0, i;
	json_t *header, *e;
	int rc, rv = -1;

	header =
	    json_pack("{s:i, s:I}", "replite_rebase_plan", REBASE_PLAN_FORMAT,
		      "entries", (json_int_t)json_array_size(entries));
	if (path == NULL || header == NULL)
		goto oom;
	line = json_dumps(header, JSON_COMPACT);
	if (line == NULL || append_line(&buf, &len, &cap, line) != 0) {
		free(line);
		goto oom;
	}
	free(line);
	json_array_foreach(entries, i, e)
	{
		line = json_dumps(e, JSON_COMPACT);
		if (line == NULL || append_line(&buf, &len, &cap, line) != 0) {
			free(line);
			goto oom;
		}
		free(line);
	}
	rc = fileio_write_file_atomic(path, buf, len);
	if (rc != 0) {
		errors_set(err, err_len, "cannot write the rebase plan %s: %s",
			   path, strerror(-rc));
		goto out;
	}
	rv = 0;
	goto out;
oom:
	errors_set(err, err_len, "out of memory");
out:
	json_decref(header);
	free(buf);
	free(path);
	return rv;
}

int rebase_plan_remove(const char *db_path, char *err, size_t err_len)
{
	char *path = rebase_plan_path(db_path), *dir = NULL;
	int rc;

	if (path == NULL || (dir = strdup(path)) == NULL) {
		free(path);
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	rc = unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
	if (rc == 0)
		rc = fileio_fsync_dir(dirname(dir));
	if (rc != 0)
		errors_set(err, err_len, "cannot remove the rebase plan %s: %s",
			   path, strerror(-rc));
	free(dir);
	free(path);
	return rc == 0 ? 0 : -1;
}

void rebase_plan_reapplied_id(const uint8_t id[16], uint8_t out[16])
{
	XXH128_hash_t h = XXH3_128bits_withSeed(id, 16, REAPPLIED_SEED);
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	memcpy(out, c.digest, 16);
}

int rebase_plan_parse_id(const char *hex, uint8_t id[16])
{
	if (hex == NULL || strlen(hex) != 32)
		return -1;
	return hex_decode(hex, id, 16) == 0 ? 0 : -1;
}
