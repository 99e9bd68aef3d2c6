#include "messages.h"

#include "base/clock.h"
#include "base/dbsum.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The start of a body as printable text for an error message. */
static void excerpt(const void *body, size_t len, char *out, size_t out_len)
{
	const unsigned char *p = body;
	size_t i, o = 0;

	assert(out_len >= 4);
	for (i = 0; i < len && o + 4 < out_len; i++) {
		out[o++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	}
	if (i < len) {
		out[o++] = '.';
		out[o++] = '.';
		out[o++] = '.';
	}
	out[o] = '\0';
}

/* Parse a JSON object body; on failure err names what came instead. */
static json_t *load_object(const void *body, size_t len, const char *what,
			   char *err, size_t err_len)
{
	json_error_t jerr;
	char text[96];
	json_t *root;

	root = json_loadb(body, len, 0, &jerr);
	if (root == NULL || !json_is_object(root)) {
		excerpt(body, len, text, sizeof text);
		snprintf(err, err_len,
			 "the primary's answer to %s is not a JSON object: "
			 "'%s'",
			 what, text);
		json_decref(root);
		return NULL;
	}
	return root;
}

/* root[key] as an integer in min..UINT32_MAX; *present = 0 when absent
 * and present is not NULL (otherwise absence is an error). */
static int get_u32(const json_t *root, const char *key, uint32_t min,
		   uint32_t *out, int *present, const char *what, char *err,
		   size_t err_len)
{
	const json_t *v = json_object_get(root, key);
	json_int_t i;

	if (v == NULL || (present != NULL && json_is_null(v))) {
		if (present != NULL) {
			*present = 0;
			return 0;
		}
		snprintf(err, err_len,
			 "the primary's answer to %s has no \"%s\"", what, key);
		return -1;
	}
	if (!json_is_integer(v)) {
		snprintf(err, err_len,
			 "the primary's answer to %s has a \"%s\" that is not "
			 "an integer",
			 what, key);
		return -1;
	}
	i = json_integer_value(v);
	if (i < (json_int_t)min || i > (json_int_t)UINT32_MAX) {
		snprintf(err, err_len,
			 "the primary's answer to %s has \"%s\": %lld, out of "
			 "range (%u..%u)",
			 what, key, (long long)i, min, UINT32_MAX);
		return -1;
	}
	*out = (uint32_t)i;
	if (present != NULL) {
		*present = 1;
	}
	return 0;
}

/* root[key] as a malloc'd non-empty string in *out, or NULL when absent
 * or null. */
static int get_string(const json_t *root, const char *key, char **out,
		      const char *what, char *err, size_t err_len)
{
	const json_t *v = json_object_get(root, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		snprintf(err, err_len,
			 "the primary's answer to %s has a \"%s\" that is "
			 "not a non-empty string",
			 what, key);
		return -1;
	}
	*out = strdup(json_string_value(v));
	if (*out == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	return 0;
}

int messages_parse_info(const void *body, size_t len, struct messages_info *out,
			char *err, size_t err_len)
{
	static const char what[] = "GET /info";
	struct messages_info info = {0};
	const json_t *sum, *as_of;
	json_t *root;
	int has_oldest, rv = -1;

	root = load_object(body, len, what, err, err_len);
	if (root == NULL) {
		return -1;
	}
	if (get_u32(root, "current_generation", 1, &info.current_generation,
		    NULL, what, err, err_len) != 0 ||
	    get_u32(root, "max_frame_no", 0, &info.max_frame_no,
		    &info.has_max_frame_no, what, err, err_len) != 0 ||
	    get_u32(root, "oldest_generation", 1, &info.oldest_generation,
		    &has_oldest, what, err, err_len) != 0) {
		goto out;
	}
	if (get_string(root, "database_id", &info.database_id, what, err,
		       err_len) != 0)
		goto out;
	sum = json_object_get(root, "checksum");
	if (sum != NULL && !json_is_null(sum)) {
		if (!json_is_string(sum) ||
		    dbsum_parse(json_string_value(sum), &info.checksum) != 0) {
			snprintf(
			    err, err_len,
			    "the primary's answer to %s has a \"checksum\" "
			    "that is not 16 hex digits",
			    what);
			free(info.database_id);
			goto out;
		}
		info.has_checksum = 1;
	}
	as_of = json_object_get(root, "as_of");
	if (as_of != NULL) {
		if (!json_is_string(as_of) ||
		    clock_parse_rfc3339(json_string_value(as_of),
					&info.as_of_unix_ms) != 0) {
			snprintf(err, err_len,
				 "the primary's answer to %s has an \"as_of\" "
				 "that is not an RFC 3339 time",
				 what);
			free(info.database_id);
			goto out;
		}
		info.has_as_of = 1;
	}
	*out = info;
	rv = 0;
out:
	json_decref(root);
	return rv;
}

void messages_info_free(struct messages_info *info)
{
	free(info->database_id);
	memset(info, 0, sizeof *info);
}

int messages_parse_generation(const void *body, size_t len,
			      uint32_t *generation, char *err, size_t err_len)
{
	static const char what[] = "a pull past the last frame";
	const json_t *msg;
	json_t *root;
	int rv;

	root = load_object(body, len, what, err, err_len);
	if (root == NULL) {
		return -1;
	}
	if (json_object_get(root, "generation") == NULL) {
		msg = json_object_get(root, "message");
		if (!json_is_string(msg)) {
			msg = json_object_get(root, "error");
		}
		if (json_is_string(msg)) {
			snprintf(err, err_len,
				 "the primary refused the pull: %s",
				 json_string_value(msg));
		} else {
			snprintf(err, err_len,
				 "the primary's answer to %s has no "
				 "\"generation\"",
				 what);
		}
		json_decref(root);
		return -1;
	}
	rv = get_u32(root, "generation", 1, generation, NULL, what, err,
		     err_len);
	json_decref(root);
	return rv;
}

int messages_parse_push_reply(const void *body, size_t len,
			      struct messages_push_reply *out, char *err,
			      size_t err_len)
{
	static const char what[] = "a push";
	struct messages_push_reply r = {0};
	const json_t *status;
	json_t *root;
	int rv = -1;

	root = load_object(body, len, what, err, err_len);
	if (root == NULL)
		return -1;
	status = json_object_get(root, "status");
	if (!json_is_string(status) ||
	    (strcmp(json_string_value(status), "ok") != 0 &&
	     strcmp(json_string_value(status), "conflict") != 0)) {
		snprintf(err, err_len,
			 "the primary's answer to %s has no \"status\" of "
			 "\"ok\" or \"conflict\"",
			 what);
		goto out;
	}
	r.conflict = strcmp(json_string_value(status), "conflict") == 0;
	if (get_u32(root, "generation", 1, &r.generation, NULL, what, err,
		    err_len) != 0 ||
	    get_u32(root, "max_frame_no", 0, &r.max_frame_no, NULL, what, err,
		    err_len) != 0)
		goto out;
	if (get_string(root, "baton", &r.baton, what, err, err_len) != 0)
		goto out;
	*out = r;
	rv = 0;
out:
	json_decref(root);
	return rv;
}

void messages_push_reply_free(struct messages_push_reply *r)
{
	free(r->baton);
	memset(r, 0, sizeof *r);
}

json_t *messages_encode_info(const struct messages_info *info)
{
	json_t *o =
	    json_pack("{s:I, s:s, s:I, s:I}", "current_generation",
		      (json_int_t)info->current_generation, "database_id",
		      info->database_id ? info->database_id : "",
		      "max_frame_no", (json_int_t)info->max_frame_no,
		      "oldest_generation", (json_int_t)info->oldest_generation);
	char text[DBSUM_TEXT_SIZE];

	if (o != NULL && info->has_checksum) {
		dbsum_format(info->checksum, text);
		json_object_set_new(o, "checksum", json_string(text));
	}
	if (o != NULL && info->has_as_of) {
		char when[40];
		clock_format_rfc3339(info->as_of_unix_ms, when, sizeof when);
		json_object_set_new(o, "as_of", json_string(when));
	}
	return o;
}

json_t *messages_encode_generation(uint32_t generation)
{
	return json_pack("{s:I, s:s}", "generation", (json_int_t)generation,
			 "message", "no more frames");
}

json_t *messages_encode_push_reply(const struct messages_push_reply *r)
{
	return json_pack("{s:s, s:I, s:I, s:o}", "status",
			 r->conflict ? "conflict" : "ok", "generation",
			 (json_int_t)r->generation, "max_frame_no",
			 (json_int_t)r->max_frame_no, "baton",
			 r->baton ? json_string(r->baton) : json_null());
}

json_t *messages_encode_checksum(uint32_t generation, uint32_t frame_no,
				 uint64_t checksum)
{
	char text[DBSUM_TEXT_SIZE];

	dbsum_format(checksum, text);
	return json_pack("{s:I, s:I, s:s}", "generation",
			 (json_int_t)generation, "frame_no",
			 (json_int_t)frame_no, "checksum", text);
}

int messages_parse_checksum(const void *body, size_t len, uint64_t *checksum,
			    char *err, size_t err_len)
{
	static const char what[] = "GET /checksum";
	const json_t *v;
	json_t *root = load_object(body, len, what, err, err_len);
	int rv = -1;

	if (root == NULL)
		return -1;
	v = json_object_get(root, "checksum");
	if (!json_is_string(v) ||
	    dbsum_parse(json_string_value(v), checksum) != 0)
		snprintf(err, err_len,
			 "the primary's answer to %s has no \"checksum\" of "
			 "16 hex digits",
			 what);
	else
		rv = 0;
	json_decref(root);
	return rv;
}
