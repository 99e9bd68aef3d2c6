/* The limits of a running Hrana statement, enforced by SQLite's progress
 * handler: the statement timeout (replite serve --statement-timeout) and
 * the client's presence (a statement whose client disconnected is
 * interrupted: nobody will read its answer, and it may hold the write
 * lock); the errors that name them (hrana.h). */
#include "hrana.h"

#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "base/clock.h"

/* How often (progress-handler calls) the client's socket is looked at: a
 * system call every 8 x 4096 virtual machine steps. */
#define CLIENT_CHECK_EVERY 8

/* Is a WebSocket close frame (opcode 8) among the frames waiting in buf?
 * Client frames are masked: a 2-byte header, a 16- or 64-bit length when
 * the 7-bit one says 126 or 127, the 4-byte mask, the payload. */
static int has_close_frame(const uint8_t *buf, size_t n)
{
	size_t pos = 0;

	while (pos + 2 <= n) {
		uint64_t len = buf[pos + 1] & 0x7f;
		size_t hdr = 2 + ((buf[pos + 1] & 0x80) ? 4 : 0);
		unsigned i;

		if ((buf[pos] & 0x0f) == 0x8)
			return 1;
		if (len >= 126) {
			unsigned ext = len == 126 ? 2 : 8;
			if (pos + 2 + ext > n)
				return 0;
			for (len = 0, i = 0; i < ext; i++)
				len = len << 8 | buf[pos + 2 + i];
			hdr += ext;
		}
		if (len > n) /* beyond what was peeked */
			return 0;
		pos += hdr + (size_t)len;
	}
	return 0;
}

/* The peer closed the connection (or it failed): POLLRDHUP on a FIN.
 * Data waiting to be read (a pipelined request) is not a departure, except
 * a WebSocket close frame among it: a WebSocket client waits for the close
 * handshake with its socket open, so no FIN comes. */
static int client_gone(int fd, int ws)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
	uint8_t buf[4096];
	ssize_t n;

	if (poll(&p, 1, 0) != 1)
		return 0;
	if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
		return 1;
	if (!ws || !(p.revents & POLLIN))
		return 0;
	n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
	return n > 0 && has_close_frame(buf, (size_t)n);
}

/* SQLite's progress handler, every few thousand virtual machine steps:
 * non-zero interrupts the statement (SQLITE_INTERRUPT). */
static int must_stop(void *arg)
{
	struct hrana_conn *c = arg;

	if (c->deadline_ms != 0 && clock_monotonic_ms() >= c->deadline_ms) {
		c->timed_out = 1;
		return 1;
	}
	if (c->client_fd >= 0 && ++c->checks % CLIENT_CHECK_EVERY == 0 &&
	    client_gone(c->client_fd, c->client_ws)) {
		c->client_gone = 1;
		fprintf(stderr, "replite: the client of a running statement "
				"disconnected: the statement is interrupted "
				"(what it wrote is rolled back)\n");
		return 1;
	}
	return 0;
}

void hrana_statement_begins(struct hrana_conn *c)
{
	c->timed_out = 0;
	c->client_gone = 0;
	c->checks = 0;
	if (c->stats != NULL) {
		c->started_us = clock_monotonic_us();
		c->changes_before = sqlite3_total_changes64(c->db);
	}
	if (c->timeout_ms <= 0 && c->client_fd < 0)
		return;
	c->deadline_ms =
	    c->timeout_ms > 0 ? clock_monotonic_ms() + c->timeout_ms : 0;
	sqlite3_progress_handler(c->db, 4096, must_stop, c);
}

/* What the statement did, into c->stats (metrics.h). */
static void count_statement(struct hrana_conn *c, sqlite3_stmt *st, int rc,
			    uint64_t rows)
{
	struct metrics_sql *m = c->stats;

	if (rc == SQLITE_DONE)
		atomic_fetch_add_explicit(&m->statements, 1,
					  memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&m->errors, 1, memory_order_relaxed);
	if (c->timed_out)
		atomic_fetch_add_explicit(&m->timeouts, 1,
					  memory_order_relaxed);
	atomic_fetch_add_explicit(&m->rows_returned, rows,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(
	    &m->rows_written,
	    (uint64_t)(sqlite3_total_changes64(c->db) - c->changes_before),
	    memory_order_relaxed);
	atomic_fetch_add_explicit(&m->fullscan_steps,
				  (uint64_t)sqlite3_stmt_status(
				      st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0),
				  memory_order_relaxed);
	atomic_fetch_add_explicit(
	    &m->vm_steps,
	    (uint64_t)sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 0),
	    memory_order_relaxed);
	metrics_histogram_observe(&m->duration,
				  clock_monotonic_us() - c->started_us);
}

void hrana_statement_ends(struct hrana_conn *c, sqlite3_stmt *st, int rc,
			  uint64_t rows)
{
	sqlite3_progress_handler(c->db, 0, NULL, NULL);
	c->deadline_ms = 0;
	if (c->stats != NULL)
		count_statement(c, st, rc, rows);
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
	if ((rc & 0xff) == SQLITE_INTERRUPT && c->client_gone)
		return hrana_make_error(
		    "the client disconnected while the statement ran: it "
		    "was interrupted, and what it wrote rolled back",
		    "SQLITE_INTERRUPT");
	return hrana_sqlite_error(c->db, rc);
}
