/* A backup: the database file of one state, streamed as an HTTP answer
 * (GET /v1/namespaces/NAME/backup on the admin listener, `replite db
 * backup`).
 *
 * The state's pages come from store_pages (store.h): the generation's
 * base.db and its frames up to the state, read from descriptors taken at
 * the start, so writers keep writing and the answer is still exactly that
 * state.  Pages 1..db_size are sent in order; a page no frame and no base
 * holds (the pending-byte page of a database over 1 GiB, which SQLite
 * never uses) is sent as zeros.  Page 1 is changed in one respect: its
 * header says rollback-journal mode (bytes 18/19 = 1) instead of WAL, so
 * the file is a plain database that opens anywhere, even read-only, with
 * no -wal or -shm beside it.
 *
 * Headers: X-Replite-Pages (db_size), X-Replite-State
 * ("GENERATION:FRAME"), X-Replite-Timestamp (RFC 3339, when the state was
 * committed).  A read that fails mid-way cuts the connection, so a client
 * never takes a truncated backup for a whole one. */
#ifndef REPLITE_BACKUP_H
#define REPLITE_BACKUP_H

#include "http.h"
#include "store.h"

/* Answer res with the backup of state `at` of s (500 when its files are
 * gone, e.g. retention removed the generation meanwhile). */
void backup_answer(struct store *s, const struct store_point *at,
		   struct http_response *res);

#endif
