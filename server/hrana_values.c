/* Hrana values and errors: SQLite column values as Hrana Value objects,
 * Hrana values bound to statement parameters, and SQLite errors as Hrana
 * Error objects with sqld's codes. */
#include "hrana.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base64.h"

/* ---------------------------------------------------------------------- */
/* errors */

static const char *sqlite_code_name(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_ERROR:
		return "SQLITE_ERROR";
	case SQLITE_INTERNAL:
		return "SQLITE_INTERNAL";
	case SQLITE_PERM:
		return "SQLITE_PERM";
	case SQLITE_ABORT:
		return "SQLITE_ABORT";
	case SQLITE_BUSY:
		return "SQLITE_BUSY";
	case SQLITE_LOCKED:
		return "SQLITE_LOCKED";
	case SQLITE_NOMEM:
		return "SQLITE_NOMEM";
	case SQLITE_READONLY:
		return "SQLITE_READONLY";
	case SQLITE_INTERRUPT:
		return "SQLITE_INTERRUPT";
	case SQLITE_IOERR:
		return "SQLITE_IOERR";
	case SQLITE_CORRUPT:
		return "SQLITE_CORRUPT";
	case SQLITE_NOTFOUND:
		return "SQLITE_NOTFOUND";
	case SQLITE_FULL:
		return "SQLITE_FULL";
	case SQLITE_CANTOPEN:
		return "SQLITE_CANTOPEN";
	case SQLITE_PROTOCOL:
		return "SQLITE_PROTOCOL";
	case SQLITE_EMPTY:
		return "SQLITE_EMPTY";
	case SQLITE_SCHEMA:
		return "SQLITE_SCHEMA";
	case SQLITE_TOOBIG:
		return "SQLITE_TOOBIG";
	case SQLITE_CONSTRAINT:
		return "SQLITE_CONSTRAINT";
	case SQLITE_MISMATCH:
		return "SQLITE_MISMATCH";
	case SQLITE_MISUSE:
		return "SQLITE_MISUSE";
	case SQLITE_NOLFS:
		return "SQLITE_NOLFS";
	case SQLITE_AUTH:
		return "SQLITE_AUTH";
	case SQLITE_FORMAT:
		return "SQLITE_FORMAT";
	case SQLITE_RANGE:
		return "SQLITE_RANGE";
	case SQLITE_NOTADB:
		return "SQLITE_NOTADB";
	default:
		return "SQLITE_UNKNOWN";
	}
}

json_t *hrana_make_error(const char *message, const char *code)
{
	return json_pack("{s:s, s:s}", "message", message, "code", code);
}

/* An error from SQLite on this connection; like sqld, syntax errors get
 * SQL_PARSE_ERROR and the rest the primary result code's name. */
json_t *hrana_sqlite_error(sqlite3 *db, int rc)
{
	const char *msg = sqlite3_errmsg(db);

	if ((rc & 0xff) == SQLITE_AUTH) {
		return hrana_make_error(
		    "not authorized: replite serve refuses ATTACH, DETACH, "
		    "VACUUM INTO and changes of journal_mode or "
		    "locking_mode (the primary's storage depends on them)",
		    "SQLITE_AUTH");
	}
	if ((rc & 0xff) == SQLITE_ERROR &&
	    (strstr(msg, "syntax error") || strstr(msg, "incomplete input") ||
	     strstr(msg, "unrecognized token")))
		return hrana_make_error(msg, "SQL_PARSE_ERROR");
	return hrana_make_error(msg, sqlite_code_name(rc));
}

/* ---------------------------------------------------------------------- */
/* values (encoded by proto/values.c) */

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

int hrana_value_bind(sqlite3_stmt *stmt, int idx, json_t *value,
		     const char **err)
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
