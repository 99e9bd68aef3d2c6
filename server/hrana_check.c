/* Validation of Hrana requests before anything of a pipeline runs. */
#include "hrana.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------------- */
/* validation, before anything runs */

static int check_cond(json_t *cond, size_t step, int version)
{
	const char *type = json_string_value(json_object_get(cond, "type"));
	json_t *x;
	size_t i;

	if (!json_is_object(cond) || type == NULL)
		return -1;
	if (strcmp(type, "ok") == 0 || strcmp(type, "error") == 0) {
		json_t *s = json_object_get(cond, "step");
		return json_is_integer(s) && json_integer_value(s) >= 0 &&
			       (size_t)json_integer_value(s) < step
			   ? 0
			   : -1;
	}
	if (strcmp(type, "not") == 0)
		return check_cond(json_object_get(cond, "cond"), step, version);
	if (strcmp(type, "and") == 0 || strcmp(type, "or") == 0) {
		json_t *conds = json_object_get(cond, "conds");
		if (!json_is_array(conds))
			return -1;
		json_array_foreach(conds, i, x)
		{
			if (check_cond(x, step, version) != 0)
				return -1;
		}
		return 0;
	}
	/* Hrana 3's condition, taken on version 2 too: Turso Sync's clients
	 * push through /v2/pipeline with batches guarded by it. */
	if (strcmp(type, "is_autocommit") == 0)
		return 0;
	return -1;
}

static int check_sql_ref(json_t *obj)
{
	json_t *sql = json_object_get(obj, "sql");
	json_t *id = json_object_get(obj, "sql_id");

	return json_is_string(sql) || json_is_integer(id) ? 0 : -1;
}

int hrana_check_batch(json_t *batch, int version, const char **proto_err)
{
	json_t *steps = json_object_get(batch, "steps"), *step, *cond;
	size_t i;

	if (!json_is_object(batch) || !json_is_array(steps)) {
		*proto_err = "a batch must be {\"steps\": [...]}";
		return -1;
	}
	json_array_foreach(steps, i, step)
	{
		json_t *stmt = json_object_get(step, "stmt");
		if (!json_is_object(step) || !json_is_object(stmt) ||
		    check_sql_ref(stmt) != 0) {
			*proto_err = "a batch step must be {\"stmt\": {\"sql\" "
				     "or \"sql_id\", ...}, \"condition\"?}";
			return -1;
		}
		cond = json_object_get(step, "condition");
		if (cond != NULL && !json_is_null(cond) &&
		    check_cond(cond, i, version) != 0) {
			*proto_err = "invalid batch condition (steps may only "
				     "refer to earlier steps)";
			return -1;
		}
	}
	return 0;
}

int hrana_check_request(json_t *req, int version, const char **proto_err)
{
	const char *type = json_string_value(json_object_get(req, "type"));
	json_t *stmt = json_object_get(req, "stmt");

	if (!json_is_object(req) || type == NULL) {
		*proto_err = "a request must be an object with a \"type\"";
		return -1;
	}
	if (strcmp(type, "execute") == 0) {
		if (json_is_object(stmt) && check_sql_ref(stmt) == 0)
			return 0;
		*proto_err = "execute needs \"stmt\": {\"sql\" or \"sql_id\", "
			     "...}";
		return -1;
	}
	if (strcmp(type, "batch") == 0)
		return hrana_check_batch(json_object_get(req, "batch"), version,
					 proto_err);
	if (strcmp(type, "sequence") == 0 || strcmp(type, "describe") == 0) {
		if (check_sql_ref(req) == 0)
			return 0;
		*proto_err = "sequence and describe need \"sql\" or \"sql_id\"";
		return -1;
	}
	if (strcmp(type, "store_sql") == 0) {
		if (json_is_integer(json_object_get(req, "sql_id")) &&
		    json_is_string(json_object_get(req, "sql")))
			return 0;
		*proto_err = "store_sql needs an integer sql_id and sql";
		return -1;
	}
	if (strcmp(type, "close_sql") == 0) {
		if (json_is_integer(json_object_get(req, "sql_id")))
			return 0;
		*proto_err = "close_sql needs an integer sql_id";
		return -1;
	}
	if (strcmp(type, "close") == 0 ||
	    (strcmp(type, "get_autocommit") == 0 && version >= 3))
		return 0;
	*proto_err = "unknown request type";
	return -1;
}
