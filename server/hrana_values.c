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
