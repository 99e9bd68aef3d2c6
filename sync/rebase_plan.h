/* The rebase plan of an offline replica with conflict=rebase,
 * "app.db-replite-rebase" beside the database: the row changes of the local
 * transactions a conflict dropped, waiting to be re-applied on top of the
 * primary's state (docs/architecture.md "Offline writes").
 *
 * The plan is written whole, atomically (temp file, fsync, rename, fsync of
 * the directory), before the drop is published: a crash leaves the old plan
 * or the new one, never a part.  It is the only copy of the dropped
 * transactions once the drop is published, until each is re-applied as a
 * new local transaction; it is removed when all are.  While it exists no
 * pending record is pushed: the re-applied transactions are recognised by
 * their ids (rebase_plan_reapplied_id) in the outbox, which is emptied only
 * by pushes.
 *
 * The text is JSON Lines: a header line {"replite_rebase_plan": 1,
 * "entries": n}, then one line per transaction, oldest first:
 *
 *   {"id": "<32 hex digits>", "committed_unix_ms": t, "changes": [...]}
 *
 * with the changes as sync/rebase_apply.h takes them.
 *
 * An encrypted replica's plan (c given below) has the header line, with
 * "sealed": true, then one line: the entries' lines sealed together
 * (wal/cipher.h cipher_seal_text, AES-256-GCM, bound to the header line),
 * in base64.  The number of entries stays readable without the key. */
#ifndef REPLITE_SYNC_REBASE_PLAN_H
#define REPLITE_SYNC_REBASE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define REBASE_PLAN_SUFFIX "-replite-rebase"
#define REBASE_PLAN_FORMAT 1

/* c below: an encrypted replica's cipher, or NULL. */
struct cipher;

/* "db_path-replite-rebase", malloc'd (NULL when out of memory). */
char *rebase_plan_path(const char *db_path);

/* Does db_path have a plan?  1 or 0 (an error to stat counts as 1: the
 * cautious answer, since pushing while a plan exists could lose it). */
int rebase_plan_exists(const char *db_path);

/* The plan's entries as a JSON array in *entries (new reference; empty
 * when there is no plan).  Returns 0, or -1 with err naming the file: I/O
 * error, a plan that does not parse or lacks entries (never written
 * partly: it is corrupt, and said so), a sealed plan without c or that
 * does not authenticate, a plain one with c. */
int rebase_plan_read(const char *db_path, const struct cipher *c,
		     json_t **entries, char *err, size_t err_len);

/* The number of entries of db_path's plan (its header line only), 0 when
 * there is none or it cannot be read (status, not a decision). */
size_t rebase_plan_count(const char *db_path);

/* Replace the plan with entries (a JSON array), durably.  Returns 0, or -1
 * with err. */
int rebase_plan_write(const char *db_path, const struct cipher *c,
		      const json_t *entries, char *err, size_t err_len);

/* Remove the plan, durably (a missing plan is fine).  Returns 0, or -1 with
 * err. */
int rebase_plan_remove(const char *db_path, char *err, size_t err_len);

/* The id of the local transaction that re-applies the plan entry id: a
 * function of it alone, so a process that finds it in the outbox knows the
 * entry is done, and distinct from it, since the dropped record's id is
 * the state's last pushed id. */
void rebase_plan_reapplied_id(const uint8_t id[16], uint8_t out[16]);

/* Parse 32 hex digits into id.  Returns 0, or -1. */
int rebase_plan_parse_id(const char *hex, uint8_t id[16]);

#endif
