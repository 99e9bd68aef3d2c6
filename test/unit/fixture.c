#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *fixture_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *dir;

	if (base == NULL) {
		base = "/tmp";
	}
	if (asprintf(&dir, "%s/replite-test-XXXXXX", base) < 0) {
		abort();
	}
	if (mkdtemp(dir) == NULL) {
		abort();
	}
	return dir;
}

void fixture_rmdir(char *dir)
{
	char *cmd;

	if (asprintf(&cmd, "rm -rf '%s'", dir) >= 0) {
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", dir);
		}
		free(cmd);
	}
	free(dir);
}

char *fixture_path(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0) {
		abort();
	}
	return p;
}

int fixture_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
