/* Fixtures shared by the unit tests: temporary directories and a runner. */
#ifndef REPLITE_TEST_FIXTURE_H
#define REPLITE_TEST_FIXTURE_H

#include <check.h>

/* A fresh empty directory under $TMPDIR; removed by fixture_rmdir(). */
char *fixture_tmpdir(void);
void fixture_rmdir(char *dir);
/* Path dir/name in a malloc'd string. */
char *fixture_path(const char *dir, const char *name);

/* Run a suite, print Check's summary line, return the process exit code. */
int fixture_run(Suite *s);

#endif
