/* Hrana values (the JSON the primary answers SQL with, and the values of
 * the replica's row differences, sync/rowdiff.h): {"type": "null"},
 * {"type": "integer", "value": "42"} (a string: JSON numbers lose 64-bit
 * precision), {"type": "float", "value": 1.5}, {"type": "text", "value":
 * "..."}, {"type": "blob", "base64": "..."} (standard alphabet, no
 * padding). */
#ifndef REPLITE_PROTO_VALUES_H
#define REPLITE_PROTO_VALUES_H

#include <jansson.h>

#include "base/sqlite_api.h"

/* Column col of the current row of stmt as a Hrana value (new reference;
 * NULL when out of memory).  Text that is not valid UTF-8 has each invalid
 * byte replaced by U+FFFD; a non-finite float becomes null. */
json_t *values_from_column(sqlite3_stmt *stmt, int col);

/* Bind the Hrana value to parameter idx of stmt.  Returns 0, or -1: with
 * *err (a static string) when the value is malformed, *err untouched when
 * SQLite refused the bind. */
int values_bind(sqlite3_stmt *stmt, int idx, json_t *value, const char **err);

#endif
