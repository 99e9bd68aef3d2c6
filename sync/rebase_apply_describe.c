/* conflict=discard's records of what was lost (rebase_apply.h,
 * rebase_apply_describe): each row change of a dropped transaction, with
 * the primary's row now, nothing written. */
#include "rebase_apply_internal.h"

#include <string.h>

int rebase_apply_describe(sqlite3 *db, const json_t *changes, json_t *out,
			  char *err, size_t err_len)
{
	struct ra_call c = {.db = db, .err = err, .err_len = err_len};
	struct ra_change ch;
	json_t *one, *row, *e;
	size_t i;
	int rv = 0;

	json_array_foreach(changes, i, one)
	{
		struct ra_target t = {0};
		row = NULL;
		if (ra_parse_change(&c, i, one, &ch) != 0)
			continue; /* malformed: nothing to say of it */
		t.table = ch.table;
		t.key = ch.key;
		t.rowid = ch.rowid;
		/* The primary's row now, when there is one to look up; a
		 * table it no longer has, or a schema row, has none. */
		if (strncmp(ch.table, "sqlite_", 7) != 0 &&
		    (!ch.by_rowid ||
		     ra_rowid_name(&c, ch.table, &t.rowid_name) == 0)) {
			rv = ra_lookup(&c, &t, &row);
			if (rv < 0)
				break;
			rv = 0;
		}
		e = json_pack("{s:s, s:O, s:O?, s:o?, s:s}", "table", ch.table,
			      "key", ch.key, "replica", ch.after, "primary",
			      row, "resolution", "discarded");
		if (e == NULL || json_array_append_new(out, e) != 0) {
			rv = ra_oom(&c);
			break;
		}
	}
	ra_call_free(&c);
	return rv < 0 ? -1 : 0;
}
