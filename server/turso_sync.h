/* Turso Sync's pull on the primary: POST /pull-updates, as the
 * @tursodatabase/sync clients call it (schema: turso_sync.proto).  Their
 * pushes are Hrana batches on /v2/pipeline (hrana.c).
 *
 * A revision names a state of this primary as "DATABASE_ID:GEN:FRAME": the
 * state after frame FRAME of generation GEN.  A pull with no client
 * revision gets every page of the current state; with one, the newest image
 * of each page changed since, waiting up to long_poll_timeout_ms (at most
 * max_wait_s) when nothing changed.  A revision this primary cannot resolve
 * incrementally (another database's, or from a generation no longer kept)
 * gets every page, as the protocol prescribes; a malformed one, or one from
 * the future, gets 400.  The answer is streamed from store_pages, one
 * consistent state. */
#ifndef REPLITE_TURSO_SYNC_H
#define REPLITE_TURSO_SYNC_H

#include "http.h"
#include "store.h"

void turso_sync_pull(struct store *s, int max_wait_s, struct http_request *req,
		     struct http_response *res);

#endif
