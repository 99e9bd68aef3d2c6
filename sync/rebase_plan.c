/* The rebase plan file (rebase_plan.h). */
#include "rebase_plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "wal/cipher.h"

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

size_t rebase_plan_count(const char *db_path)
{
	char *path = rebase_plan_path(db_path), line[256];
	FILE *f = path != NULL ? fopen(path, "re") : NULL;
	json_t *header = NULL;
	size_t n = 0;

	if (f != NULL && fgets(line, sizeof line, f) != NULL &&
	    (header = json_loads(line, JSON_DISABLE_EOF_CHECK, NULL)) != NULL)
		n = (size_t)json_integer_value(
		    json_object_get(header, "entries"));
	json_decref(header);
	if (f != NULL)
		fclose(f);
	free(path);
	return n;
}

/* The entries' text of a plan whose header line (NUL-terminated) is header
 * and whose header parsed as h: body itself, or the plan's sealed line
 * opened (malloc'd in *opened).  NULL with err when it cannot be. */
static char *entries_text(const struct cipher *c, const char *path,
			  const char *header, const json_t *h, char *body,
			  char **opened, char *err, size_t err_len)
{
	int sealed = json_is_true(json_object_get(h, "sealed"));
	size_t n, len;

	*opened = NULL;
	if (!sealed && c == NULL)
		return body;
	if (!sealed || c == NULL) {
		errors_set(err, err_len,
			   sealed ? "the rebase plan %s is encrypted, but the "
				    "replica was opened without a key"
				  : "the rebase plan %s is in clear, but the "
				    "replica is encrypted: it was not written "
				    "by this replica",
			   path);
		return NULL;
	}
	len = strcspn(body, "\n");
	*opened = cipher_unseal_text(c, header, body, len, &n);
	if (*opened == NULL)
		errors_set(err, err_len,
			   "the rebase plan %s is corrupt: its entries do not "
			   "authenticate under the replica's key",
			   path);
	return *opened;
}

int rebase_plan_read(const char *db_path, const struct cipher *c,
		     json_t **entries, char *err, size_t err_len)
{
	char *path = rebase_plan_path(db_path), *text = NULL, *line, *next;
	char *body, *opened = NULL;
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
	body = strchr(text, '\n');
	if (body != NULL)
		*body++ = '\0';
	header = json_loads(text, 0, &jerr);
	if (json_integer_value(json_object_get(
		header, "replite_rebase_plan")) != REBASE_PLAN_FORMAT) {
		errors_set(err, err_len,
			   "the rebase plan %s is not one (or of another "
			   "format)",
			   path);
		goto out;
	}
	want = (size_t)json_integer_value(json_object_get(header, "entries"));
	body = entries_text(c, path, text, header, body != NULL ? body : "",
			    &opened, err, err_len);
	if (body == NULL)
		goto out;
	for (line = body; line != NULL && *line != '\0'; line = next) {
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
		if (json_array_append_new(all, e) != 0)
			goto oom;
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
	free(opened);
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

/* The entries as lines in *buf (*len bytes; *buf malloc'd, NULL when
 * there are none).  Returns 0, or -1 when out of memory. */
static int entry_lines(const json_t *entries, char **buf, size_t *len)
{
	size_t cap = 0, i;
	json_t *e;
	char *line;

	*buf = NULL;
	*len = 0;
	json_array_foreach(entries, i, e)
	{
		line = json_dumps(e, JSON_COMPACT);
		if (line == NULL || append_line(buf, len, &cap, line) != 0) {
			free(line);
			return -1;
		}
		free(line);
	}
	return 0;
}

int rebase_plan_write(const char *db_path, const struct cipher *c,
		      const json_t *entries, char *err, size_t err_len)
{
	char *path = rebase_plan_path(db_path), *buf = NULL, *head = NULL;
	char *body = NULL, *sealed = NULL;
	size_t len = 0, cap = 0, body_len = 0;
	json_t *header;
	int rc, rv = -1;

	header = json_pack("{s:i, s:I, s:b}", "replite_rebase_plan",
			   REBASE_PLAN_FORMAT, "entries",
			   (json_int_t)json_array_size(entries), "sealed",
			   c != NULL);
	if (path == NULL || header == NULL ||
	    (head = json_dumps(header, JSON_COMPACT)) == NULL ||
	    append_line(&buf, &len, &cap, head) != 0 ||
	    entry_lines(entries, &body, &body_len) != 0)
		goto oom;
	/* Sealed with the header line: entries moved under another header
	 * do not open. */
	if (c != NULL) {
		sealed = cipher_seal_text(c, head, body != NULL ? body : "",
					  body_len);
		if (sealed == NULL) {
			errors_set(err, err_len,
				   "cannot encrypt the rebase plan %s "
				   "(OpenSSL's AES-256-GCM failed)",
				   path);
			goto out;
		}
		if (append_line(&buf, &len, &cap, sealed) != 0)
			goto oom;
	} else if (body != NULL) {
		char *grown = realloc(buf, len + body_len);
		if (grown == NULL)
			goto oom;
		buf = grown;
		memcpy(buf + len, body, body_len);
		len += body_len;
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
	free(head);
	free(body);
	free(sealed);
	free(buf);
	free(path);
	return rv;
}

int rebase_plan_remove(const char *db_path, char *err, size_t err_len)
{
	char *path = rebase_plan_path(db_path);
	int rc;

	if (path == NULL) {
		errors_set(err, err_len, "out of memory");
		return -1;
	}
	rc = unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
	if (rc == 0)
		rc = fileio_fsync_parent(path);
	if (rc != 0)
		errors_set(err, err_len, "cannot remove the rebase plan %s: %s",
			   path, strerror(-rc));
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
