/* The statement timeout of Hrana connections (replite serve
 * --statement-timeout): a deadline while a statement steps, enforced by
 * SQLite's progress handler, and the error that names it (hrana.h). */
#include "hrana.h"

#include <inttypes.h>
#include <stdio.h>

#include "base/clock.h"

/* SQLite's progress handler, every few thousand virtual machine steps:
 * non-zero interrupts the statement (SQLITE_INTERRUPT). */
static int past_deadline(void *arg)
{
	struct hrana_conn *c = arg;

	if (c->deadline_ms == 0 || clock_monotonic_ms() < c->deadline_ms)
		return 0;
	c->timed_out = 1;
	return 1;
}

void hrana_statement_begins(struct hrana_conn *c)
{
	c->timed_out = 0;
	if (c->timeout_ms <= 0)
		return;
	c->deadline_ms = clock_monotonic_ms() + c->timeout_ms;
	sqlite3_progress_handler(c->db, 4096, past_deadline, c);
}

void hrana_statement_ends(struct hrana_conn *c)
{
	if (c->timeout_ms <= 0)
		return;
	sqlite3_progress_handler(c->db, 0, NULL, NULL);
	c->deadline_ms = 0;
}

json_t *hrana_statement_error(struct hrana_conn *c, int rc)
{
	char msg[256];

	if ((rc & 0xff) == SQLITE_INTERRUPT && c->timed_out) {
		snprintf(msg, sizeof msg,
			 "the statement ran longer than the server's statement "
			 "timeout (%" PRId64 " ms, replite serve "
			 "--statement-timeout) and was interrupted; what it "
			 "wrote was rolled back (in an explicit transaction, "
			 "the whole transaction)",
			 c->timeout_ms);
		return hrana_make_error(msg, "SQLITE_INTERRUPT");
	}
	return hrana_sqlite_error(c->db, rc);
}
