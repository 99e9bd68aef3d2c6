/* Helpers shared by the tests of sync/rebase_apply.h (test_rebase_apply.c
 * and test_rebase_apply_schema.c, one theme each): the state of a case
 * (set up and torn down by the checked fixture), changes written as
 * SELECTs of one row, applied through the JSON text of the rebase plan
 * file, and the result read back. */
#ifndef REPLITE_TEST_REBASE_APPLY_HELPERS_H
#define REPLITE_TEST_REBASE_APPLY_HELPERS_H

#include <jansson.h>
#include <sqlite3.h>

#include <check.h>

#include "sync/rebase_apply.h"

/* The "primary" the changes are applied to, and the scratch connection
 * the SELECTs of a change run on (both in memory). */
extern sqlite3 *rah_db, *rah_scratch;
/* The applier of the case: it keeps the rowid remaps of a run. */
extern struct rebase_apply *rah_ra;
/* The conflicts rebase_apply_txn recorded in the case. */
extern json_t *rah_conflicts;
/* The message of the last rah_apply that failed. */
extern char rah_err[512];

/* The checked fixture: a fresh state for every test, then freed. */
void rah_setup(void);
void rah_teardown(void);

/* A change of a table with a PRIMARY KEY: key, before and after are
 * SELECTs (NULL: none). */
json_t *rah_change(const char *table, const char *op, const char *key,
		   const char *before, const char *after);
/* A change of a table without a declared PRIMARY KEY: keyed by rowid. */
json_t *rah_change_rowid(const char *table, const char *op, long long rowid,
			 const char *before, const char *after);
/* Apply the changes (NULL-terminated; consumed) in a transaction of their
 * own on rah_db: committed when applied, else rolled back;
 * rebase_apply_txn's result. */
int rah_apply(json_t *first, ...);

/* Every row of sql on rah_db, its values joined by ",", rows by "|"
 * (sqlite3_free): what rah_assert_dump compares. */
char *rah_dump(const char *sql);

/* The rows of sql on rah_db are want (in rah_dump's form). */
#define rah_assert_dump(sql, want)                                             \
	do {                                                                   \
		char *got_ = rah_dump(sql);                                    \
		ck_assert_str_eq(got_, want);                                  \
		sqlite3_free(got_);                                            \
	} while (0)

#endif
