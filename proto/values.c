#include "values.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_sequence(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A text value.  SQLite stores whatever bytes it is given as TEXT; JSON
 * strings must be UTF-8, so invalid sequences become U+FFFD (as a lossy
 * UTF-8 decoder does) instead of dropping the value from its row. */
static json_t *text_value(const char *text, size_t len)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t i = 0, o = 0, k;
	json_t *v;
	char *fixed;

	v = json_pack("{s:s, s:s%}", "type", "text", "value", text, len);
	if (v != NULL)
		return v;
	fixed = malloc(len * 3 + 1);
	if (fixed == NULL)
		return NULL;
	while (i < len) {
		k = utf8_sequence(p + i, len - i);
		if (k == 0) {
			memcpy(fixed + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(fixed + o, p + i, k);
			o += k;
			i += k;
		}
	}
	v = json_pack("{s:s, s:s%}", "type", "text", "value", fixed, o);
	free(fixed);
	return v;
}

json_t *values_from_column(sqlite3_stmt *stmt, int col)
{
	char buf[32];
	char *b64;
	json_t *v;

	switch (sqlite3_column_type(stmt, col)) {
	case SQLITE_INTEGER:
		snprintf(buf, sizeof buf, "%lld",
			 (long long)sqlite3_column_int64(stmt, col));
		return json_pack("{s:s, s:s}", "type", "integer", "value", buf);
	case SQLITE_FLOAT: {
		double d = sqlite3_column_double(stmt, col);
		if (!isfinite(d)) /* JSON has no infinities */
			return json_pack("{s:s}", "type", "null");
		return json_pack("{s:s, s:f}", "type", "float", "value", d);
	}
	case SQLITE_TEXT:
		return text_value((const char *)sqlite3_column_text(stmt, col),
				  (size_t)sqlite3_column_bytes(stmt, col));
	case SQLITE_BLOB:
		b64 = base64_encode(sqlite3_column_blob(stmt, col),
				    (size_t)sqlite3_column_bytes(stmt, col), 0,
				    0);
		v = json_pack("{s:s, s:s}", "type", "blob", "base64",
			      b64 ? b64 : "");
		free(b64);
		return v;
	default:
		return json_pack("{s:s}", "type", "null");
	}
}

/* ---------------------------------------------------------------------- */
/* decoding */

static int parse_i64(const char *s, sqlite3_int64 *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int values_bind(sqlite3_stmt *stmt, int idx, json_t *value, const char **err)
{
	const char *type = json_string_value(json_object_get(value, "type"));
	json_t *v = json_object_get(value, "value");
	sqlite3_int64 i;

	if (!json_is_object(value) || type == NULL) {
		*err = "a value must be an object with a \"type\"";
		return -1;
	}
	if (strcmp(type, "null") == 0)
		return sqlite3_bind_null(stmt, idx) == SQLITE_OK ? 0 : -1;
	if (strcmp(type, "integer") == 0) {
		if (json_is_string(v) &&
		    parse_i64(json_string_value(v), &i) == 0)
			return sqlite3_bind_int64(stmt, idx, i) == SQLITE_OK
				   ? 0
				   : -1;
		if (json_is_integer(v))
			return sqlite3_bind_int64(stmt, idx,
						  json_integer_value(v)) ==
				       SQLITE_OK
				   ? 0
				   : -1;
		*err = "an integer value must be a decimal string in the "
		       "64-bit range";
		return -1;
	}
	if (strcmp(type, "float") == 0) {
		if (!json_is_number(v)) {
			*err = "a float value must be a JSON number";
			return -1;
		}
		return sqlite3_bind_double(stmt, idx, json_number_value(v)) ==
			       SQLITE_OK
			   ? 0
			   : -1;
	}
	if (strcmp(type, "text") == 0) {
		if (!json_is_string(v)) {
			*err = "a text value must be a JSON string";
			return -1;
		}
		return sqlite3_bind_text(stmt, idx, json_string_value(v),
					 (int)json_string_length(v),
					 SQLITE_TRANSIENT) == SQLITE_OK
			   ? 0
			   : -1;
	}
	if (strcmp(type, "blob") == 0) {
		json_t *b = json_object_get(value, "base64");
		size_t len = 0;
		uint8_t *raw;
		int rc;
		if (!json_is_string(b)) {
			*err = "a blob value must have a \"base64\" string";
			return -1;
		}
		raw = base64_decode(json_string_value(b), json_string_length(b),
				    &len);
		if (raw == NULL) {
			*err = "a blob value has invalid base64";
			return -1;
		}
		rc = sqlite3_bind_blob64(stmt, idx, raw, len, SQLITE_TRANSIENT);
		free(raw);
		return rc == SQLITE_OK ? 0 : -1;
	}
	*err = "unknown value type";
	return -1;
}
