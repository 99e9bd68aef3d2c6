#include "replica_state.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/clock.h"
#include "base/dbsum.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "sync/state_file.h"

/* What a user can do about a damaged state file. */
#define DAMAGED_ADVICE                                                         \
	"restore it, or delete the database with its -wal, -shm and state "    \
	"files to bootstrap the replica again from the primary"

char *replica_state_path(const char *db_path)
{
	char *path;

	if (asprintf(&path, "%s" REPLICA_STATE_SUFFIX, db_path) < 0) {
		return NULL;
	}
	return path;
}

static int page_size_valid(uint32_t page_size)
{
	return page_size >= 512 && page_size <= 65536 &&
	       (page_size & (page_size - 1)) == 0;
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "an unknown value";
}

/* root[key], or NULL with err naming the missing field. */
static const json_t *require_field(const json_t *root, const char *key,
				   const char *path, char *err, size_t err_len)
{
	const json_t *v = json_object_get(root, key);

	if (v == NULL)
		snprintf(err, err_len,
			 "the replica state file %s has no \"%s\" field; "
			 "it is damaged: " DAMAGED_ADVICE,
			 path, key);
	return v;
}

/* Read root[key] as an integer in 0..UINT32_MAX. */
static int get_u32(const json_t *root, const char *key, uint32_t *out,
		   const char *path, char *err, size_t err_len)
{
	const json_t *v = require_field(root, key, path, err, err_len);
	json_int_t i;

	if (v == NULL)
		return -1;
	if (!json_is_integer(v)) {
		snprintf(err, err_len,
			 "field \"%s\" of the replica state file %s is %s, "
			 "not an integer; it is damaged: " DAMAGED_ADVICE,
			 key, path, json_type_name(v));
		return -1;
	}
	i = json_integer_value(v);
	if (i < 0 || i > (json_int_t)UINT32_MAX) {
		snprintf(err, err_len,
			 "field \"%s\" of the replica state file %s is %lld, "
			 "out of range (0..%u); it is damaged: " DAMAGED_ADVICE,
			 key, path, (long long)i, UINT32_MAX);
		return -1;
	}
	*out = (uint32_t)i;
	return 0;
}

/* Read root[key] as a string (non-empty), or NULL when null is allowed. */
static int get_string(const json_t *root, const char *key, int null_ok,
		      const char **out, const char *path, char *err,
		      size_t err_len)
{
	const json_t *v = require_field(root, key, path, err, err_len);

	if (v == NULL)
		return -1;
	if (null_ok && json_is_null(v)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0) {
		snprintf(
		    err, err_len,
		    "field \"%s\" of the replica state file %s is %s, "
		    "not a non-empty string; it is damaged: " DAMAGED_ADVICE,
		    key, path, json_is_string(v) ? "empty" : json_type_name(v));
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static int get_u32_value(const json_t *v, uint32_t *out)
{
	json_int_t i;

	if (!json_is_integer(v))
		return -1;
	i = json_integer_value(v);
	if (i < 0 || i > (json_int_t)UINT32_MAX)
		return -1;
	*out = (uint32_t)i;
	return 0;
}

/* An optional boolean: absent = false. */
static int get_flag(const json_t *root, const char *key, int *out,
		    const char *path, char *err, size_t err_len)
{
	const json_t *b = json_object_get(root, key);

	if (b != NULL && !json_is_boolean(b)) {
		snprintf(err, err_len,
			 "the replica state file %s has \"%s\" of type %s, "
			 "expected a boolean; it is damaged: " DAMAGED_ADVICE,
			 path, key, json_type_name(b));
		return -1;
	}
	*out = b != NULL && json_is_true(b);
	return 0;
}

/* The optional "wal" position. */
static int decode_wal(const json_t *root, struct replica_state *st,
		      const char *path, char *err, size_t err_len)
{
	const json_t *w = json_object_get(root, "wal"), *salt;

	st->wal_known = 0;
	if (w == NULL)
		return 0;
	salt = json_object_get(w, "salt");
	if (!json_is_object(w) ||
	    get_u32_value(json_object_get(w, "frames"), &st->wal_frames) != 0 ||
	    !json_is_array(salt) || json_array_size(salt) != 2 ||
	    get_u32_value(json_array_get(salt, 0), &st->wal_salt[0]) != 0 ||
	    get_u32_value(json_array_get(salt, 1), &st->wal_salt[1]) != 0) {
		snprintf(err, err_len,
			 "the replica state file %s has a \"wal\" field that "
			 "is not {\"frames\": N, \"salt\": [S1, S2]}; it is "
			 "damaged: " DAMAGED_ADVICE,
			 path);
		return -1;
	}
	st->wal_known = 1;
	return 0;
}

/* 32 hex digits into a transaction id: 0, or -1. */
static int hex_id_decode(const char *hex, uint8_t id[16])
{
	return strlen(hex) == 32 && hex_decode(hex, id, 16) == 0 ? 0 : -1;
}

/* The optional "outbox" of an offline replica. */
static int decode_outbox(const json_t *root, struct replica_state *st,
			 const char *path, char *err, size_t err_len)
{
	const json_t *o = json_object_get(root, "outbox"), *pushed, *discard,
		     *batch;

	st->has_pushed = 0;
	st->discard = 0;
	st->has_batch = 0;
	if (o == NULL)
		return 0;
	pushed = json_object_get(o, "pushed");
	discard = json_object_get(o, "discard");
	batch = json_object_get(o, "batch");
	if (!json_is_object(o) || (pushed != NULL && !json_is_string(pushed)) ||
	    (discard != NULL && !json_is_boolean(discard)) ||
	    (batch != NULL && !json_is_string(batch)))
		goto damaged;
	if (pushed != NULL) {
		if (hex_id_decode(json_string_value(pushed), st->pushed_id) !=
		    0)
			goto damaged;
		st->has_pushed = 1;
	}
	if (batch != NULL) {
		if (hex_id_decode(json_string_value(batch), st->batch_last) !=
		    0)
			goto damaged;
		st->has_batch = 1;
	}
	st->discard = discard != NULL && json_is_true(discard);
	return 0;
damaged:
	snprintf(err, err_len,
		 "the replica state file %s has an \"outbox\" field that is "
		 "not {\"pushed\": \"<32 hex digits>\", \"discard\": "
		 "bool, \"batch\": \"<32 hex digits>\"}; it is "
		 "damaged: " DAMAGED_ADVICE,
		 path);
	return -1;
}

/* The optional "checksum" of the content at frame_no. */
static int decode_checksum(const json_t *root, struct replica_state *st,
			   const char *path, char *err, size_t err_len)
{
	const json_t *c = json_object_get(root, "checksum");

	st->has_checksum = 0;
	if (c == NULL)
		return 0;
	if (!json_is_string(c) ||
	    dbsum_parse(json_string_value(c), &st->checksum) != 0) {
		snprintf(err, err_len,
			 "the replica state file %s has a \"checksum\" that "
			 "is not 16 hex digits; it is damaged: " DAMAGED_ADVICE,
			 path);
		return -1;
	}
	st->has_checksum = 1;
	return 0;
}

/* The optional "as_of" and "as_of_request" of an as-of replica: both or
 * neither. */
static int decode_as_of(const json_t *root, struct replica_state *st,
			const char *path, char *err, size_t err_len)
{
	const json_t *t = json_object_get(root, "as_of");
	const json_t *q = json_object_get(root, "as_of_request");

	st->has_as_of = 0;
	if (t == NULL && q == NULL)
		return 0;
	if (!json_is_string(t) || !json_is_string(q) ||
	    clock_parse_rfc3339(json_string_value(t), &st->as_of_unix_ms) !=
		0 ||
	    as_of_parse(json_string_value(q), &st->as_of_request) != 0) {
		snprintf(err, err_len,
			 "the replica state file %s has \"as_of\" and "
			 "\"as_of_request\" fields that are not an RFC 3339 "
			 "time and a time or GENERATION:FRAME; it is "
			 "damaged: " DAMAGED_ADVICE,
			 path);
		return -1;
	}
	st->has_as_of = 1;
	return 0;
}

/* Validate the decoded document; on success fill *st with borrowed
 * strings (still owned by root). */
static int decode(const json_t *root, struct replica_state *st,
		  const char *path, char *err, size_t err_len)
{
	const char *database_id, *sync_url;
	uint32_t format;

	if (!json_is_object(root)) {
		snprintf(err, err_len,
			 "the replica state file %s holds %s, not a JSON "
			 "object; it is damaged: " DAMAGED_ADVICE,
			 path, json_type_name(root));
		return -1;
	}
	if (get_u32(root, "format", &format, path, err, err_len) != 0) {
		return -1;
	}
	if (format != REPLICA_STATE_FORMAT) {
		snprintf(err, err_len,
			 "the replica state file %s has format %u, but this "
			 "replite reads format %d only: open the database with "
			 "the replite version that wrote it (or a newer one)",
			 path, format, REPLICA_STATE_FORMAT);
		return -1;
	}
	if (get_string(root, "database_id", 1, &database_id, path, err,
		       err_len) != 0 ||
	    get_string(root, "sync_url", 0, &sync_url, path, err, err_len) !=
		0 ||
	    get_u32(root, "generation", &st->generation, path, err, err_len) !=
		0 ||
	    get_u32(root, "frame_no", &st->frame_no, path, err, err_len) != 0 ||
	    get_u32(root, "frame_hwm", &st->frame_hwm, path, err, err_len) !=
		0 ||
	    get_u32(root, "page_size", &st->page_size, path, err, err_len) !=
		0) {
		return -1;
	}
	if (st->generation == 0) {
		snprintf(err, err_len,
			 "the replica state file %s has generation 0, but "
			 "generations are numbered from 1; it is "
			 "damaged: " DAMAGED_ADVICE,
			 path);
		return -1;
	}
	if (st->frame_hwm < st->frame_no) {
		snprintf(err, err_len,
			 "the replica state file %s has frame_hwm %u below "
			 "frame_no %u (the high-water mark can never be below "
			 "the applied frame); it is damaged: " DAMAGED_ADVICE,
			 path, st->frame_hwm, st->frame_no);
		return -1;
	}
	if (!page_size_valid(st->page_size)) {
		snprintf(err, err_len,
			 "the replica state file %s has page size %u, not a "
			 "power of two in 512..65536; it is "
			 "damaged: " DAMAGED_ADVICE,
			 path, st->page_size);
		return -1;
	}
	if (get_flag(root, "bootstrapping", &st->bootstrapping, path, err,
		     err_len) != 0 ||
	    get_flag(root, "catching_up", &st->catching_up, path, err,
		     err_len) != 0)
		return -1;
	if (decode_wal(root, st, path, err, err_len) != 0 ||
	    decode_checksum(root, st, path, err, err_len) != 0 ||
	    decode_outbox(root, st, path, err, err_len) != 0 ||
	    decode_as_of(root, st, path, err, err_len) != 0)
		return -1;
	/* Borrowed from root: the caller copies them. */
	st->database_id = (char *)database_id;
	st->sync_url = (char *)sync_url;
	return 0;
}

int replica_state_load(const char *path, struct replica_state *st, char *err,
		       size_t err_len)
{
	struct replica_state tmp = {0};
	json_error_t jerr;
	json_t *root = NULL;
	const char *id;
	char *text = NULL;
	size_t len;
	int rv;

	rv = state_file_read(path, &text, &len);
	if (rv == -ENOENT) {
		return 1;
	}
	if (rv == -EBADMSG) {
		snprintf(err, err_len,
			 "the replica state file %s holds no valid version "
			 "(every copy fails its checksum); it is "
			 "damaged: " DAMAGED_ADVICE,
			 path);
		return -1;
	}
	if (rv != 0) {
		snprintf(err, err_len,
			 "cannot read the replica state file %s: %s", path,
			 strerror(-rv));
		return -1;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(err, err_len,
			 "the replica state file %s is not valid JSON (line "
			 "%d, column %d: %s); it is damaged: " DAMAGED_ADVICE,
			 path, jerr.line, jerr.column, jerr.text);
		rv = -1;
		goto out;
	}
	if (decode(root, &tmp, path, err, err_len) != 0) {
		rv = -1;
		goto out;
	}
	id = tmp.database_id;
	tmp.database_id = id != NULL ? strdup(id) : NULL;
	tmp.sync_url = strdup(tmp.sync_url);
	if (tmp.sync_url == NULL || (id != NULL && tmp.database_id == NULL)) {
		replica_state_free(&tmp);
		snprintf(err, err_len,
			 "out of memory loading the replica state file %s",
			 path);
		rv = -1;
		goto out;
	}
	*st = tmp;
	rv = 0;
out:
	json_decref(root);
	free(text);
	return rv;
}

static int save(const char *path, const struct replica_state *st, int durable,
		char *err, size_t err_len)
{
	json_t *root;
	char *text = NULL;
	int rv;

	assert(st->sync_url != NULL && st->sync_url[0] != '\0');
	assert(st->generation >= 1);
	assert(st->frame_hwm >= st->frame_no);
	assert(page_size_valid(st->page_size));

	root = json_pack(
	    "{s:i, s:s?, s:s, s:I, s:I, s:I, s:I}", "format",
	    REPLICA_STATE_FORMAT, "database_id", st->database_id, "sync_url",
	    st->sync_url, "generation", (json_int_t)st->generation, "frame_no",
	    (json_int_t)st->frame_no, "frame_hwm", (json_int_t)st->frame_hwm,
	    "page_size", (json_int_t)st->page_size);
	if (root != NULL && st->bootstrapping &&
	    json_object_set_new(root, "bootstrapping", json_true()) != 0) {
		json_decref(root);
		root = NULL;
	}
	if (root != NULL && st->catching_up &&
	    json_object_set_new(root, "catching_up", json_true()) != 0) {
		json_decref(root);
		root = NULL;
	}
	if (root != NULL && st->wal_known &&
	    json_object_set_new(root, "wal",
				json_pack("{s:I, s:[I, I]}", "frames",
					  (json_int_t)st->wal_frames, "salt",
					  (json_int_t)st->wal_salt[0],
					  (json_int_t)st->wal_salt[1])) != 0) {
		json_decref(root);
		root = NULL;
	}
	if (root != NULL && st->has_checksum) {
		char sum[DBSUM_TEXT_SIZE];
		dbsum_format(st->checksum, sum);
		if (json_object_set_new(root, "checksum", json_string(sum)) !=
		    0) {
			json_decref(root);
			root = NULL;
		}
	}
	if (root != NULL && (st->has_pushed || st->discard || st->has_batch)) {
		json_t *o = json_object();
		char hex[33], batch[33];
		hex_encode(st->pushed_id, 16, hex);
		hex_encode(st->batch_last, 16, batch);
		if (o == NULL ||
		    (st->has_pushed &&
		     json_object_set_new(o, "pushed", json_string(hex)) != 0) ||
		    (st->discard &&
		     json_object_set_new(o, "discard", json_true()) != 0) ||
		    (st->has_batch &&
		     json_object_set_new(o, "batch", json_string(batch)) !=
			 0) ||
		    json_object_set_new(root, "outbox", o) != 0) {
			json_decref(root);
			root = NULL;
		}
	}
	if (root != NULL && st->has_as_of) {
		char when[AS_OF_TEXT_SIZE], request[AS_OF_TEXT_SIZE];
		clock_format_rfc3339(st->as_of_unix_ms, when, sizeof when);
		as_of_format(&st->as_of_request, request);
		if (json_object_set_new(root, "as_of", json_string(when)) !=
			0 ||
		    json_object_set_new(root, "as_of_request",
					json_string(request)) != 0) {
			json_decref(root);
			root = NULL;
		}
	}
	if (root != NULL) {
		text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(root);
	}
	if (text == NULL) {
		snprintf(err, err_len,
			 "cannot encode the replica state for %s (out of "
			 "memory, or a field is not valid UTF-8)",
			 path);
		return -1;
	}
	rv = state_file_write(path, text, strlen(text), durable);
	free(text);
	if (rv != 0) {
		snprintf(err, err_len,
			 "cannot write the replica state file %s: %s", path,
			 strerror(-rv));
		return -1;
	}
	return 0;
}

int replica_state_save(const char *path, const struct replica_state *st,
		       char *err, size_t err_len)
{
	return save(path, st, 1, err, err_len);
}

int replica_state_save_unsynced(const char *path,
				const struct replica_state *st, char *err,
				size_t err_len)
{
	return save(path, st, 0, err, err_len);
}

void replica_state_free(struct replica_state *st)
{
	free(st->database_id);
	free(st->sync_url);
	memset(st, 0, sizeof *st);
}

int replica_state_check_primary(const struct replica_state *st,
				const char *database_id, const char *sync_url,
				char *err, size_t err_len)
{
	if (st->database_id == NULL) {
		return 0;
	}
	if (database_id == NULL) {
		snprintf(err, err_len,
			 "this replica belongs to database %s, but the primary "
			 "at %s reports no database id, so it cannot be the "
			 "same database; refusing to sync (use the sync_url of "
			 "the replica's own primary, or a new local file for "
			 "this one)",
			 st->database_id, sync_url);
		return -1;
	}
	if (strcmp(database_id, st->database_id) != 0) {
		snprintf(err, err_len,
			 "this replica belongs to database %s, but the primary "
			 "at %s is database %s; refusing to sync a local file "
			 "against another database (use the sync_url of the "
			 "replica's own primary, or a new local file for this "
			 "one)",
			 st->database_id, sync_url, database_id);
		return -1;
	}
	return 0;
}

int replica_state_check_as_of(const struct replica_state *st,
			      const struct as_of *want, const char *db_path,
			      char *err, size_t err_len)
{
	char when[AS_OF_TEXT_SIZE], held[AS_OF_TEXT_SIZE];
	char asked[AS_OF_TEXT_SIZE];

	if (!st->has_as_of && want->kind == AS_OF_NONE)
		return 0;
	as_of_format(want, asked);
	if (!st->has_as_of) {
		snprintf(err, err_len,
			 "%s is a live replica of %s; as_of=%s needs a file "
			 "of its own: open a new file name with as_of (a "
			 "live replica never becomes an as-of one)",
			 db_path, st->sync_url, asked);
		return -1;
	}
	/* Until its image is applied the position is not the state's. */
	if (st->bootstrapping
		? as_of_equal(want, &st->as_of_request)
		: as_of_names_state(want, &st->as_of_request, st->as_of_unix_ms,
				    st->generation, st->frame_no))
		return 0;
	clock_format_rfc3339(st->as_of_unix_ms, when, sizeof when);
	as_of_format(&st->as_of_request, held);
	if (want->kind == AS_OF_NONE)
		snprintf(err, err_len,
			 "%s is an as-of replica: it holds the primary's "
			 "state as of %s (opened with as_of=%s), is read-only "
			 "and never syncs; open it with as_of=%s, or use "
			 "another file for a live replica",
			 db_path, when, held, held);
	else
		snprintf(err, err_len,
			 "%s is an as-of replica of another state: as of %s "
			 "(opened with as_of=%s), not as_of=%s; open it with "
			 "as_of=%s, or use another file for that state",
			 db_path, when, held, asked, held);
	return -1;
}
