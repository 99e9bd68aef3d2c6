/* A real primary for tests: `replite serve` (the binary named by
 * $REPLITE_BIN) on 127.0.0.1 with an ephemeral port and a data directory of
 * its own, its stderr kept in a file beside it. */
#ifndef REPLITE_TEST_SERVER_FIXTURE_H
#define REPLITE_TEST_SERVER_FIXTURE_H

#include <sys/types.h>

struct server_fixture {
	char *dir; /* temporary directory holding data/ and server.log */
	pid_t pid;
	char url[64]; /* http://127.0.0.1:PORT */
};

/* Start a primary with extra command-line arguments (NULL-terminated, may
 * be NULL); aborts the test when it does not come up. */
void server_fixture_start(struct server_fixture *f, const char *const *args);
/* SIGTERM, wait, and require a clean exit; removes the directory. */
void server_fixture_stop(struct server_fixture *f);

#endif
