/* The replica state file, "app.db-replite" beside the database (DESIGN.md
 * §2): which primary the local file replicates and how far it is applied.
 *
 *   {"format":1,"database_id":"...","sync_url":"http://...","generation":G,
 *    "frame_no":N,"frame_hwm":M,"page_size":4096[,"bootstrapping":true][,"catching_up":true]
 *    [,"wal":{"frames":F,"salt":[S1,S2]}][,"checksum":"<16 hex>"]
 *    [,"as_of":"<RFC 3339>","as_of_request":"<TIME or G:F>"]}
 *
 * frame_no is the last frame of generation G known to be applied locally;
 * frame_hwm >= frame_no is the highest frame that MAY be in the local file
 * (raised and made durable before a batch is written, see DESIGN.md §3
 * "Crash safety").  The text is kept in sync/state_file.h's container
 * (checksummed versions overwritten in turn), so a crash leaves the old or
 * the new state, never a mix.  Unknown keys are ignored; a newer format is
 * refused. */
#ifndef REPLITE_REPLICA_STATE_H
#define REPLITE_REPLICA_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "sync/as_of.h"

#define REPLICA_STATE_FORMAT 1
#define REPLICA_STATE_SUFFIX "-replite"

struct replica_state {
	/* The primary's database id (malloc'd), or NULL if the primary did
	 * not report one (stored as JSON null). */
	char *database_id;
	char *sync_url;      /* malloc'd, non-empty */
	uint32_t generation; /* >= 1 */
	uint32_t frame_no;
	uint32_t frame_hwm; /* >= frame_no */
	uint32_t page_size; /* power of two in 512..65536 */
	/* A full image of generation is being (or was partly) applied: the
	 * local content is unknown until a full image is applied again
	 * (stored as "bootstrapping": true; absent = false). */
	int bootstrapping;
	/* A full image was applied but the frames after it have not all
	 * been: the content is consistent but may be far behind, so a new
	 * connection waits for a sync before reading (stored as
	 * "catching_up": true; absent = false). */
	int catching_up;
	/* Where the local WAL stood after the last batch this file received
	 * (stored as "wal": {"frames": N, "salt": [S1, S2]}; absent when
	 * unknown): a WAL found elsewhere, with no batch interrupted since,
	 * was written by something other than replite. */
	int wal_known;
	uint32_t wal_frames;
	uint32_t wal_salt[2];
	/* The whole-database checksum (base/dbsum.h) of the local content at
	 * frame_no (stored as "checksum": "<16 hex digits>"; absent when not
	 * known, as in files of older versions). */
	int has_checksum;
	uint64_t checksum;
	/* The offline outbox (sync/outbox.h), stored as "outbox":
	 * {"pushed": "<32 hex digits>", "discard": true} (absent: nothing
	 * pushed, no discard).  pushed names the last outbox record the
	 * primary acknowledged (or that was dropped): the records after it
	 * are pending, all of them when no record has that id.  discard: the
	 * pending records lost a conflict and are dropped with the next batch
	 * applied, which also restores the pages they changed.
	 *
	 * "batch": "<32 hex digits>" names the last record of the push in
	 * flight: the pending records up to it go to the primary as one
	 * transaction (sync/applier_offline.c), and every try sends exactly
	 * those, under the same id, until the primary acknowledges them or
	 * they are dropped.  Saved before the push is sent. */
	int has_pushed;
	uint8_t pushed_id[16];
	int discard;
	int has_batch;
	uint8_t batch_last[16];
	/* An as-of replica (URI as_of, sync/as_of.h): the file holds the
	 * primary's state as of as_of_request, which the primary resolved to
	 * generation/frame_no, a commit made at as_of_unix_ms; it is
	 * read-only and never syncs.  Stored as "as_of": "<RFC 3339 of
	 * as_of_unix_ms>" and "as_of_request": "<its canonical text>"
	 * (absent: a live replica). */
	int has_as_of;
	int64_t as_of_unix_ms;
	struct as_of as_of_request;
};

/* "db_path-replite" in a malloc'd string (NULL when out of memory). */
char *replica_state_path(const char *db_path);

/* Load and validate the state file at path into *st (which then owns its
 * strings; release with replica_state_free).  Returns 0 when loaded, 1 when
 * there is no state file (*st untouched), or -1 with err naming the file
 * and the cause (unreadable, not JSON, unknown format version, missing or
 * ill-typed field, inconsistent values); *st is untouched on -1 too. */
int replica_state_load(const char *path, struct replica_state *st, char *err,
		       size_t err_len);

/* Replace the state file at path with *st, atomically and durably.  *st
 * must be valid (asserted).  Returns 0, or -1 with err naming the file and
 * the cause. */
int replica_state_save(const char *path, const struct replica_state *st,
		       char *err, size_t err_len);
/* The same, atomically but without waiting for the disk (state_file.h,
 * "Durability"): only for a save whose loss leaves a state that still
 * describes the file, i.e. one that moves frame_no up to a frame_hwm
 * already durable. */
int replica_state_save_unsynced(const char *path,
				const struct replica_state *st, char *err,
				size_t err_len);

/* Release the strings of *st and zero it. */
void replica_state_free(struct replica_state *st);

/* May the local file described by *st sync against the primary at sync_url
 * whose /info reported database_id (NULL: none reported)?  Returns 0 if so:
 * same id, or no id recorded yet (the caller then records the primary's).
 * Returns -1 with err explaining the refusal when the ids differ, or when
 * an id is recorded but the primary reports none. */
int replica_state_check_primary(const struct replica_state *st,
				const char *database_id, const char *sync_url,
				char *err, size_t err_len);

/* May the file described by *st (at db_path) be opened with as_of want
 * (kind AS_OF_NONE: as a live replica)?  A live replica never becomes an
 * as-of one, nor the reverse, and an as-of replica only opens with an
 * as_of that names its state (as_of_names_state).  Returns 0, or -1 with
 * err saying what the file is and how to open it. */
int replica_state_check_as_of(const struct replica_state *st,
			      const struct as_of *want, const char *db_path,
			      char *err, size_t err_len);

#endif
