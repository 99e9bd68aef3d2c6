/* Fixtures shared by the unit tests: temporary directories and a runner. */
#ifndef REPLITE_TEST_FIXTURE_H
#define REPLITE_TEST_FIXTURE_H

#include <stdint.h>

#include <check.h>
#include <sqlite3.h>

/* A fresh empty directory under $TMPDIR; removed by fixture_rmdir(). */
char *fixture_tmpdir(void);
void fixture_rmdir(char *dir);
/* Path dir/name in a malloc'd string. */
char *fixture_path(const char *dir, const char *name);

/* The whole file at path, which must exist (malloc'd, one spare byte at
 * the end), its length in *len. */
uint8_t *fixture_read_file(const char *path, size_t *len);

/* SQL that must succeed: run it; the integer in the first column of its
 * first row; PRAGMA integrity_check says "ok". */
void fixture_exec(sqlite3 *db, const char *sql);
int64_t fixture_query_int(sqlite3 *db, const char *sql);
void fixture_assert_integrity(sqlite3 *db);

/* Run a suite, print Check's summary line, return the process exit code. */
int fixture_run(Suite *s);

#endif
