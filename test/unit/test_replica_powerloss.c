/* Power loss under an offline replica (offline=1) against a real primary on
 * loopback.  With synchronous=FULL a local commit makes its outbox record
 * durable, but not the WAL: after a power loss the WAL may have lost its
 * last committed transactions while the outbox still holds their records.
 * The replica, opened again, must put those transactions back into the
 * local file (every commit that returned is still there, pages overwritten
 * by later lost transactions included) and push each to the primary exactly
 * once.
 *
 * A power loss is simulated by a crash image: while the writing connection
 * is still open (its writes in the page cache, as after kill -9), the
 * database, its -wal, the outbox and the state file (not the -shm, which
 * does not survive a reboot) are copied to another directory; there the WAL
 * is cut right after a commit frame, dropping its last transactions as an
 * unsynced WAL can lose them, and the copy is opened through replite.
 *
 * Each test is its own test case: CK_RUN_CASE=test_lost_some runs one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "include/replite.h"
#include "replica_fixture.h"
#include "server_fixture.h"
#include "sync/outbox.h"
#include "wal/cipher.h"
#include "sync/replica_state.h"

/* Only explicit syncs: nothing reaches the primary behind the test's back
 * (the original connection keeps its records pending). */
#define OFFLINE "offline=1&sync_interval=0"
#define N_TXNS 20
/* Every column of a row as text, for rfx_digest_sql (w and b may be
 * NULL). */
#define ROW "id || ',' || v || ',' || coalesce(w, '') || ',' || hex(b)"

#define WAL_HEADER_SIZE 32
#define WAL_FRAME_HEADER_SIZE 24

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[1] << 8 | p[0];
}

/* SQLite's WAL checksum over n bytes (a multiple of 8), carried on in s. */
static void wal_cksum(int big_endian, const uint8_t *p, size_t n, uint32_t s[2])
{
	size_t i;

	for (i = 0; i < n; i += 8) {
		s[0] += (big_endian ? get_be32(p + i) : get_le32(p + i)) + s[1];
		s[1] +=
		    (big_endian ? get_be32(p + i + 4) : get_le32(p + i + 4)) +
		    s[0];
	}
}

/* The committed transactions of the WAL at path as SQLite's recovery finds
 * them: the frames from the start whose salts are the header's and whose
 * checksum chain holds (frames left by an earlier use of the file, or torn,
 * end them).  ends[i] (at most max) is the file offset just past the commit
 * frame of transaction i + 1; returns how many there are. */
static size_t wal_commit_ends(const char *path, uint64_t *ends, size_t max)
{
	size_t len, off, n = 0;
	uint8_t *w = (uint8_t *)rfx_slurp(path, &len);
	uint32_t magic, page_size, s[2] = {0, 0};
	/* Encrypted mode: the checksums are of the pages in clear. */
	char *db = sqlite3_mprintf("%.*s", (int)(strlen(path) - 4), path);
	struct cipher *c = rfx_key_cipher(db);
	int be;

	sqlite3_free(db);

	ck_assert_msg(w != NULL, "no WAL %s", path);
	if (len < WAL_HEADER_SIZE) {
		free(w);
		cipher_free(c);
		return 0;
	}
	magic = get_be32(w);
	ck_assert_msg((magic & ~1u) == 0x377f0682u, "%s is not a WAL", path);
	be = magic & 1;
	page_size = get_be32(w + 8);
	wal_cksum(be, w, 24, s);
	ck_assert_msg(s[0] == get_be32(w + 24) && s[1] == get_be32(w + 28),
		      "the header of %s fails its checksum", path);
	for (off = WAL_HEADER_SIZE;
	     off + WAL_FRAME_HEADER_SIZE + page_size <= len;
	     off += WAL_FRAME_HEADER_SIZE + page_size) {
		const uint8_t *f = w + off;

		if (memcmp(f + 8, w + 16, 8) != 0)
			break;
		if (c != NULL)
			ck_assert_int_eq(
			    cipher_decrypt(
				c, CIPHER_SPACE_WAL,
				(off - WAL_HEADER_SIZE) /
					(WAL_FRAME_HEADER_SIZE + page_size) +
				    1,
				w + off + WAL_FRAME_HEADER_SIZE,
				w + off + WAL_FRAME_HEADER_SIZE, page_size),
			    0);
		wal_cksum(be, f, 8, s);
		wal_cksum(be, f + WAL_FRAME_HEADER_SIZE, page_size, s);
		if (s[0] != get_be32(f + 16) || s[1] != get_be32(f + 20))
			break;
		if (get_be32(f + 4) != 0) { /* db size after commit */
			ck_assert_uint_lt(n, max);
			ends[n++] = off + WAL_FRAME_HEADER_SIZE + page_size;
		}
	}
	free(w);
	cipher_free(c);
	return n;
}

static void copy_file(const char *from, const char *to)
{
	size_t len;
	char *data = rfx_slurp(from, &len);
	FILE *f;

	ck_assert_msg(data != NULL, "cannot read %s", from);
	f = fopen(to, "wb");
	ck_assert_msg(f != NULL, "cannot create %s", to);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	free(data);
}

/* The crash image of the replica at path in dir/app.db (its path,
 * malloc'd): what survives a power loss when every write so far reached the
 * disk.  The -shm is left behind: it lives in memory and does not survive,
 * so the reopened file recovers its WAL index from the WAL itself. */
static char *crash_image(const char *path, const char *dir)
{
	static const char *const suffixes[] = {"", "-wal", REPLICA_STATE_SUFFIX,
					       OUTBOX_SUFFIX};
	char *image = fixture_path(dir, "app.db");
	size_t i;

	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char *from = sqlite3_mprintf("%s%s", path, suffixes[i]);
		char *to = sqlite3_mprintf("%s%s", image, suffixes[i]);

		copy_file(from, to);
		sqlite3_free(from);
		sqlite3_free(to);
	}
	/* An encrypted replica's salt and key check go with it (written
	 * once, before its first page, and made durable then). */
	if (rfx_encrypted()) {
		char *from = sqlite3_mprintf("%s-replite-key", path);
		char *to = sqlite3_mprintf("%s-replite-key", image);

		copy_file(from, to);
		sqlite3_free(from);
		sqlite3_free(to);
	}
	return image;
}

/* Cut the WAL of the replica at image right after the commit frame of its
 * transaction total - lost (to its bare header when none is left): the last
 * lost transactions never reached the disk. */
static void cut_wal(const char *image, size_t lost)
{
	uint64_t ends[4096];
	char *wal = sqlite3_mprintf("%s-wal", image);
	size_t total = wal_commit_ends(wal, ends, 4096);
	uint64_t at;

	/* Every offline commit is in the WAL (no checkpoint restarted it
	 * meanwhile), so the cut drops offline transactions only. */
	ck_assert_uint_ge(total, N_TXNS);
	at = total == lost ? WAL_HEADER_SIZE : ends[total - lost - 1];
	ck_assert_int_eq(truncate(wal, (off_t)at), 0);
	ck_assert_uint_eq(wal_commit_ends(wal, ends, 4096), total - lost);
	sqlite3_free(wal);
}

/* The records in the outbox of the replica at path (*c: its cipher in
 * the encrypted mode, to free after closing *ob). */
static size_t outbox_records(const char *path, struct outbox_entry **entries,
			     struct outbox **ob, struct cipher **c)
{
	uint64_t end = 0;
	size_t n = 0;
	char err[512];

	*c = rfx_key_cipher(path);
	ck_assert_msg(
	    outbox_open(path, REPLITE_PAGE_SIZE, *c, ob, err, sizeof err) == 0,
	    "%s", err);
	ck_assert_msg(outbox_scan(*ob, OUTBOX_HEADER_SIZE, entries, &n, &end,
				  err, sizeof err) == 0,
		      "%s", err);
	return n;
}

/* Drop the last record of the outbox of the replica at image: its writer
 * lost power before the record was made durable, so its commit never
 * returned (and its commit frame is gone from the WAL too). */
static void drop_last_record(const char *image)
{
	struct outbox_entry *entries = NULL;
	struct outbox *ob;
	struct cipher *c;
	char err[512];
	size_t n = outbox_records(image, &entries, &ob, &c);

	ck_assert_uint_gt(n, 0);
	ck_assert_msg(
	    outbox_truncate(ob, entries[n - 1].offset, err, sizeof err) == 0,
	    "%s", err);
	free(entries);
	outbox_close(ob);
	cipher_free(c);
}

/* Transaction i (1-based) of a scenario: each inserts the row v = i.  With
 * mixed, three of the last five also change many pages: a 20 KB blob (its
 * overflow chain), long values in ten earlier rows (their leaf pages, then
 * split), and the blob replaced by a smaller one (its overflow pages freed
 * and reused), so the pages of lost transactions overwrite each other. */
static void write_txn(sqlite3 *db, int i, int mixed)
{
	char sql[512];

	if (mixed && i == 16)
		snprintf(sql, sizeof sql,
			 "INSERT INTO t(v, b) VALUES (%d, randomblob(20000))",
			 i);
	else if (mixed && i == 18)
		snprintf(sql, sizeof sql,
			 "BEGIN; INSERT INTO t(v) VALUES (%d); UPDATE t SET w "
			 "= printf('%%0500d', id * 7) WHERE id <= 10; COMMIT",
			 i);
	else if (mixed && i == 20)
		snprintf(sql, sizeof sql,
			 "BEGIN; INSERT INTO t(v) VALUES (%d); UPDATE t SET b "
			 "= randomblob(3000) WHERE v = 16; COMMIT",
			 i);
	else
		snprintf(sql, sizeof sql, "INSERT INTO t(v) VALUES (%d)", i);
	fixture_exec(db, sql);
}

/* The integer a query gives on the replica db, or (db NULL) on the
 * primary at url. */
static int64_t query(sqlite3 *db, const char *url, const char *sql)
{
	return db ? fixture_query_int(db, sql)
		  : rfx_primary_query_int(url, sql);
}

/* The rows are v = 1..n, each once, and nothing else: a transaction lost
 * shows as a row missing, one pushed twice as a row twice. */
static void assert_rows(sqlite3 *db, const char *url, int n, const char *when)
{
	char *in_sql = sqlite3_mprintf(
	    "SELECT count(*) FROM t WHERE v BETWEEN 1 AND %d", n);
	int64_t count = query(db, url, "SELECT count(*) FROM t");
	int64_t distinct = query(db, url, "SELECT count(DISTINCT v) FROM t");
	int64_t in_range = query(db, url, in_sql);

	sqlite3_free(in_sql);
	ck_assert_msg(count == n && distinct == n && in_range == n,
		      "%s, %s: %lld rows (%lld distinct, %lld in 1..%d), "
		      "expected v = 1..%d once each",
		      when, db ? "replica" : "primary", (long long)count,
		      (long long)distinct, (long long)in_range, n, n);
}

struct scenario {
	size_t lost_wal; /* commits cut off the end of the WAL */
	int lost_outbox; /* the last record cut off the outbox too */
	int mixed;       /* multi-page transactions (write_txn) */
};

static void run_scenario(const struct scenario *sc)
{
	struct rfx_durable d;
	struct outbox_entry *entries = NULL;
	struct outbox *ob;
	struct cipher *c;
	sqlite3 *db, *copy;
	char *image_dir, *image, *digest_sql, *msg;
	int64_t digest = 0;
	int committed = N_TXNS - (sc->lost_outbox ? 1 : 0);
	int i;

	rfx_durable_start(&d, NULL);
	db = rfx_open(d.path, d.url, OFFLINE);
	fixture_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER, w "
			 "TEXT, b BLOB)");
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);

	/* The primary is gone: the writes are local only, in the outbox. */
	server_fixture_stop(&d.srv);
	for (i = 1; i <= N_TXNS; i++)
		write_txn(db, i, sc->mixed);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), N_TXNS);
	digest_sql = rfx_digest_sql("t", ROW);
	digest = fixture_query_int(db, digest_sql);

	image_dir = fixture_path(d.dir, "crash");
	ck_assert_int_eq(mkdir(image_dir, 0700), 0);
	image = crash_image(d.path, image_dir);
	/* Closed only now (its close checkpoints the WAL), and before the
	 * primary is back: its records must not reach the primary. */
	sqlite3_close(db);
	ck_assert_uint_eq(outbox_records(image, &entries, &ob, &c), N_TXNS);
	if (sc->mixed) /* really multi-page (6, 5 and 6 pages) */
		for (i = 16; i <= 20; i += 2)
			ck_assert_uint_ge(entries[i - 1].n, 4);
	free(entries);
	outbox_close(ob);
	cipher_free(c);
	cut_wal(image, sc->lost_wal);
	if (sc->lost_outbox)
		drop_last_record(image);

	/* Opened with the primary unreachable: every commit that returned is
	 * there, read from the local file alone. */
	copy = rfx_open(image, d.url, OFFLINE);
	assert_rows(copy, NULL, committed, "reopened, primary down");
	fixture_assert_integrity(copy);
	if (sc->mixed && !sc->lost_outbox)
		ck_assert_msg(fixture_query_int(copy, digest_sql) == digest,
			      "reopened: the table differs from what the "
			      "writer committed");
	ck_assert_int_eq(rfx_status_int(copy, "pending_transactions"),
			 committed);

	/* Back: each reaches the primary once, and the file is the
	 * primary's. */
	rfx_durable_restart(&d, 1);
	msg = rfx_sync_error(copy);
	ck_assert_msg(msg == NULL, "replite_sync: %s", msg);
	ck_assert_int_eq(rfx_status_int(copy, "pending_transactions"), 0);
	ck_assert_int_eq(rfx_status_int(copy, "conflicts"), 0);
	assert_rows(NULL, d.url, committed, "after the push");
	rfx_assert_same_table(copy, d.url, "t", ROW);
	rfx_assert_verified(copy);
	sqlite3_close(copy);
	/* Opened again: nothing is put back or pushed a second time. */
	copy = rfx_open(image, d.url, OFFLINE);
	ck_assert_int_eq(rfx_status_int(copy, "pending_transactions"), 0);
	rfx_sync(copy);
	assert_rows(NULL, d.url, committed, "reopened after the push");
	assert_rows(copy, NULL, committed, "reopened after the push");
	rfx_assert_verified(copy);
	sqlite3_close(copy);

	sqlite3_free(digest_sql);
	free(image);
	free(image_dir);
	rfx_durable_stop(&d);
}

/* ---------------------------------------------------------------------- */

/* The WAL lost the last 5 of 20 commits: their records put them back. */
START_TEST(test_lost_some)
{
	const struct scenario sc = {.lost_wal = 5};

	run_scenario(&sc);
}
END_TEST

/* The WAL lost every offline commit (back to the pushed CREATE TABLE). */
START_TEST(test_lost_all)
{
	const struct scenario sc = {.lost_wal = N_TXNS};

	run_scenario(&sc);
}
END_TEST

/* Control: the WAL lost nothing (kill -9): nothing to put back. */
START_TEST(test_lost_none)
{
	const struct scenario sc = {0};

	run_scenario(&sc);
}
END_TEST

/* Lost transactions that write many pages and overwrite each other's: the
 * table comes back exactly as the writer committed it. */
START_TEST(test_lost_multi_page)
{
	const struct scenario sc = {.lost_wal = 5, .mixed = 1};

	run_scenario(&sc);
}
END_TEST

/* The last transaction lost both its record and its commit frame: it never
 * committed (its commit did not return), so it is neither put back nor
 * pushed. */
START_TEST(test_lost_record_too)
{
	const struct scenario sc = {.lost_wal = 1, .lost_outbox = 1};

	run_scenario(&sc);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_lost_some, test_lost_all,
				      test_lost_none, test_lost_multi_page,
				      test_lost_record_too};

	return rfx_run_tests("replica_powerloss", tests,
			     sizeof tests / sizeof tests[0]);
}
