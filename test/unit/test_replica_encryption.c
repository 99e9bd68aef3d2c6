/* Encryption at rest (sync/replica_key.c, wal/cipher_vfs.h) against a real
 * primary: no byte of a row reaches any file beside the database in clear,
 * through bootstrap, live sync, local writes, checkpoints and a kill -9;
 * the stock SQLite cannot read the file; a wrong key, a missing key, or a
 * key for a plain replica are refused naming the case and change no byte;
 * the raw key form; connections of one process must agree on the key;
 * offline mode's outbox and conflict records are sealed too;
 * readers of an encrypted replica see whole transactions only; SQLite's
 * temporary files (a spilled sort, a temporary table, VACUUM's temporary
 * database) of a replica connection go down the whole stack (replite, the
 * WAL observer, the cipher VFS) to the default VFS, and hold no row in
 * clear when the replica is encrypted (the spy of temp_spy.h is the
 * default VFS the stack is built over). */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "replica_fixture.h"
#include "temp_spy.h"

#define KEY "encryption_key=correct%20horse%20battery"
#define RAW_KEY                                                                \
	"encryption_key=x'00112233445566778899aabbccddeeff"                    \
	"00112233445566778899aabbccddeeff'"

/* Every file beside the database (its name starts with the database's),
 * read whole: how many hold the n bytes at needle. */
static int files_holding_bytes(const char *db_path, const char *needle,
			       size_t n)
{
	char *dir = strdup(db_path), *slash = strrchr(dir, '/');
	const char *base = slash + 1;
	struct dirent *de;
	int found = 0;
	DIR *d;

	*slash = '\0';
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char *path, *text;
		size_t len, i;
		if (strncmp(de->d_name, base, strlen(base)) != 0)
			continue;
		path = fixture_path(dir, de->d_name);
		text = rfx_slurp(path, &len);
		for (i = 0; text != NULL && i + n <= len; i++) {
			if (memcmp(text + i, needle, n) == 0) {
				found++;
				break;
			}
		}
		free(text);
		free(path);
	}
	closedir(d);
	free(dir);
	return found;
}

static int files_holding(const char *db_path, const char *needle)
{
	return files_holding_bytes(db_path, needle, strlen(needle));
}

/* A digest of every file beside the database: sizes and bytes. */
static char *files_digest(const char *db_path)
{
	char *dir = strdup(db_path), *slash = strrchr(dir, '/');
	const char *base = slash + 1;
	struct dirent *de;
	char *out = calloc(1, 1), *grown;
	DIR *d;

	*slash = '\0';
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		char *path, *text, line[512];
		size_t len = 0, i;
		uint64_t h = 1469598103934665603ull;
		if (strncmp(de->d_name, base, strlen(base)) != 0)
			continue;
		path = fixture_path(dir, de->d_name);
		text = rfx_slurp(path, &len);
		for (i = 0; text != NULL && i < len; i++)
			h = (h ^ (uint8_t)text[i]) * 1099511628211ull;
		snprintf(line, sizeof line, "%s %zu %016llx\n", de->d_name, len,
			 (unsigned long long)h);
		grown = realloc(out, strlen(out) + strlen(line) + 1);
		ck_assert_ptr_nonnull(grown);
		out = strcat(grown, line);
		free(text);
		free(path);
	}
	closedir(d);
	free(dir);
	return out;
}

static void seed(const char *url)
{
	rfx_primary_exec(url, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
	rfx_primary_exec(url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 400) INSERT INTO t(v) SELECT "
			 "printf('PRIMARYMARK %d %.*c', i, 300, 'p') FROM n");
}

/* The writes of the workload: the replica's own, then the primary's. */
static void write_both(sqlite3 *db, const char *url)
{
	fixture_exec(db, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
			 "i + 1 FROM n WHERE i < 200) INSERT INTO t(v) SELECT "
			 "printf('LOCALMARK %d %.*c', i, 300, 'l') FROM n");
	rfx_primary_exec(url, "UPDATE t SET v = 'PRIMARYMARK again ' || id "
			      "WHERE id % 3 = 0");
	rfx_sync(db);
}

static void assert_no_marker(const char *path)
{
	ck_assert_int_eq(files_holding(path, "PRIMARYMARK"), 0);
	ck_assert_int_eq(files_holding(path, "LOCALMARK"), 0);
	ck_assert_int_eq(files_holding(path, "SQLite format 3"), 0);
}

/* The key, in any of its forms, is in none of the files beside the
 * database (the state file and key file included), not in
 * replite_status() (db, when given) and not in SQLite's log. */
static void assert_key_nowhere(const char *path, sqlite3 *db)
{
	/* Two words of KEY, RAW_KEY's hex and its first bytes as bytes (a
	 * text search cannot hold those: they start with a zero). */
	static const struct {
		const char *bytes;
		size_t len;
		int text;
	} forms[] = {
	    {"horse", 5, 1},
	    {"battery", 7, 1},
	    {"00112233445566778899aabbccddeeff", 32, 1},
	    {"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb", 12, 0},
	};
	char *status = db != NULL ? rfx_status_text(db) : NULL;
	size_t i;

	for (i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		ck_assert_msg(files_holding_bytes(path, forms[i].bytes,
						  forms[i].len) == 0,
			      "key form %zu in a file", i);
		if (!forms[i].text)
			continue;
		ck_assert_msg(!rfx_log_seen(forms[i].bytes),
			      "key text %s in SQLite's log", forms[i].bytes);
		ck_assert_msg(
		    status == NULL || strstr(status, forms[i].bytes) == NULL,
		    "key text %s in replite_status()", forms[i].bytes);
	}
	free(status);
}

/* The control: the same workload without a key leaves the markers in the
 * files, so the scan does find them when they are there. */
START_TEST(test_plain_replica_shows_markers)
{
	struct rfx_env e;
	sqlite3 *db;

	rfx_env_start(&e, NULL);
	seed(e.srv.url);
	db = rfx_open(e.path, e.srv.url, "sync_interval=0");
	ck_assert_int_eq(rfx_status_int(db, "encrypted"), 0);
	write_both(db, e.srv.url);
	ck_assert_int_gt(files_holding(e.path, "PRIMARYMARK"), 0);
	ck_assert_int_gt(files_holding(e.path, "LOCALMARK"), 0);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

START_TEST(test_no_marker_in_any_file)
{
	struct rfx_env e;
	sqlite3 *db, *plain;
	pid_t pid;
	int status, rc;

	rfx_env_start(&e, NULL);
	seed(e.srv.url);
	db = rfx_open(e.path, e.srv.url, KEY "&sync_interval=0");
	ck_assert_int_eq(rfx_status_int(db, "encrypted"), 1);
	assert_no_marker(e.path);
	write_both(db, e.srv.url);
	assert_no_marker(e.path);
	/* After a checkpoint, and with frames in the WAL again. */
	fixture_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	write_both(db, e.srv.url);
	assert_no_marker(e.path);
	rfx_assert_same_table(db, e.srv.url, "t", "v");
	rfx_assert_verified(db);
	fixture_assert_integrity(db);
	assert_key_nowhere(e.path, db);
	sqlite3_close(db);
	assert_no_marker(e.path);

	/* The stock SQLite cannot read it. */
	ck_assert_int_eq(
	    sqlite3_open_v2(e.path, &plain, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	rc = sqlite3_exec(plain, "SELECT count(*) FROM sqlite_schema", NULL,
			  NULL, NULL);
	ck_assert_int_eq(rc, SQLITE_NOTADB);
	sqlite3_close(plain);

	/* A process writing and syncing, killed: the files left have no
	 * marker either, and reopen whole with the key. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		sqlite3 *c = rfx_open(e.path, e.srv.url, KEY);
		write_both(c, e.srv.url);
		fixture_exec(c, "INSERT INTO t(v) VALUES ('LOCALMARK last')");
		_exit(0); /* as kill -9: nothing closed */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_no_marker(e.path);
	db = rfx_open(e.path, e.srv.url, KEY "&sync_interval=0");
	fixture_assert_integrity(db);
	rfx_sync(db);
	rfx_assert_same_table(db, e.srv.url, "t", "v");
	rfx_assert_verified(db);
	ck_assert_int_eq(fixture_query_int(db,
					   "SELECT count(*) FROM t WHERE v = "
					   "'LOCALMARK last'"),
			 1);
	/* SQLite's log has the reopen's WAL recovery: it is being kept. */
	ck_assert(rfx_log_seen("recovered"));
	assert_key_nowhere(e.path, db);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

static void expect_refusal(const char *path, const char *url, const char *extra,
			   const char *needle)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	ck_assert_int_ne(rfx_try_open(path, url, extra, &db, &err), SQLITE_OK);
	ck_assert_msg(err != NULL && strstr(err, needle) != NULL,
		      "expected \"%s\" in: %s", needle, err ? err : "?");
	/* Never the key. */
	ck_assert_ptr_null(strstr(err, "horse"));
	ck_assert_ptr_null(strstr(err, "wrong key text"));
	free(err);
}

START_TEST(test_wrong_missing_and_unwanted_keys_change_nothing)
{
	struct rfx_env e;
	char *before, *after, *plain_path, *plain_before;
	sqlite3 *db;

	rfx_env_start(&e, NULL);
	seed(e.srv.url);
	db = rfx_open(e.path, e.srv.url, KEY "&sync_interval=0");
	write_both(db, e.srv.url);
	sqlite3_close(db);
	before = files_digest(e.path);
	expect_refusal(e.path, e.srv.url,
		       "encryption_key=wrong%20key%20text&sync_interval=0",
		       "is not the one it was encrypted with");
	expect_refusal(e.path, e.srv.url, "sync_interval=0",
		       "is an encrypted replica");
	expect_refusal(e.path, e.srv.url, RAW_KEY "&sync_interval=0",
		       "is not the one it was encrypted with");
	after = files_digest(e.path);
	ck_assert_str_eq(after, before);
	free(after);
	assert_key_nowhere(e.path, NULL);

	/* A plain replica given a key. */
	plain_path = fixture_path(e.dir, "plain.db");
	db = rfx_open(plain_path, e.srv.url, "sync_interval=0");
	sqlite3_close(db);
	plain_before = files_digest(plain_path);
	expect_refusal(plain_path, e.srv.url, KEY,
		       "is a replica that is not "
		       "encrypted");
	after = files_digest(plain_path);
	ck_assert_str_eq(after, plain_before);
	free(after);

	/* The right key still opens it. */
	db = rfx_open(e.path, e.srv.url, KEY "&sync_interval=0");
	rfx_assert_same_table(db, e.srv.url, "t", "v");
	sqlite3_close(db);
	free(plain_before);
	free(plain_path);
	free(before);
	rfx_env_stop(&e);
}
END_TEST

/* x'<64 hex>' is a raw key; connections of one process share the
 * replica only with the same key. */
/* Does the file at path hold needle? */
static int file_holds(const char *path, const char *needle)
{
	size_t len = 0, n = strlen(needle), i;
	char *text = rfx_slurp(path, &len);
	int found = 0;

	for (i = 0; text != NULL && i + n <= len && !found; i++)
		found = memcmp(text + i, needle, n) == 0;
	free(text);
	return found;
}

/* Offline mode: the outbox holds the local transactions' pages until they
 * are pushed, and the conflict records hold the replica's and the
 * primary's rows; with a key (_i = 1) neither is in clear, nor is any
 * other file; the control (_i = 0, no key) finds both markers there. */
START_TEST(test_offline_files)
{
	const char *extra =
	    _i ? KEY "&offline=1&sync_interval=0" : "offline=1&sync_interval=0";
	struct rfx_durable d;
	char *outbox, *conflicts, *text;
	json_t *c;
	int64_t n;
	sqlite3 *db;

	rfx_durable_start(&d, NULL);
	seed(d.url);
	outbox = sqlite3_mprintf("%s-replite-outbox", d.path);
	conflicts = sqlite3_mprintf("%s-replite-conflicts", d.path);
	db = rfx_open(d.path, d.url, extra);
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "encrypted"), _i);
	/* Written while the primary is down: nothing is pushed (the push
	 * the commit wakes fails, and backs off). */
	server_fixture_stop(&d.srv);
	fixture_exec(db,
		     "UPDATE t SET v = 'LOCALMARK ' || id WHERE id % 5 = 0");
	fixture_exec(db, "INSERT INTO t(v) VALUES ('LOCALMARK new')");
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 2);
	ck_assert_int_eq(file_holds(outbox, "LOCALMARK"), !_i);
	if (_i)
		assert_no_marker(d.path);

	/* The primary moved under the pending transactions: the push is a
	 * conflict, the replica re-applies them on the primary's state
	 * (through the rebase plan) and records the rows it overwrote. */
	rfx_durable_restart(&d, 1);
	rfx_primary_exec(d.url, "UPDATE t SET v = 'PRIMARYMARK moved ' || id "
				"WHERE id % 10 = 0");
	rfx_sync(db);
	ck_assert_int_eq(rfx_status_int(db, "pending_transactions"), 0);
	n = rfx_status_int(db, "conflicts");
	ck_assert_int_eq(n, 40);
	c = rfx_conflicts(db);
	text = json_dumps(c, 0);
	ck_assert_ptr_nonnull(strstr(text, "LOCALMARK 10"));
	ck_assert_ptr_nonnull(strstr(text, "PRIMARYMARK moved 10"));
	free(text);
	json_decref(c);
	ck_assert_int_eq(file_holds(conflicts, "LOCALMARK"), !_i);
	ck_assert_int_eq(file_holds(conflicts, "PRIMARYMARK"), !_i);
	if (_i)
		assert_no_marker(d.path);
	/* Last push wins: the replica's rows, on the primary too. */
	ck_assert_int_eq(rfx_primary_query_int(d.url, "SELECT count(*) FROM t "
						      "WHERE v LIKE "
						      "'LOCALMARK%'"),
			 81);
	rfx_assert_same_table(db, d.url, "t", "v");
	rfx_assert_verified(db);
	sqlite3_close(db);

	/* Kept across a reopen, readable with the key only. */
	db = rfx_open(d.path, d.url, extra);
	ck_assert_int_eq(rfx_status_int(db, "conflicts"), n);
	sqlite3_close(db);
	if (_i)
		expect_refusal(d.path, d.url, "offline=1&sync_interval=0",
			       "is an encrypted replica");
	sqlite3_free(outbox);
	sqlite3_free(conflicts);
	rfx_durable_stop(&d);
}
END_TEST

START_TEST(test_raw_key_and_shared_opens)
{
	struct rfx_env e;
	sqlite3 *a, *b;

	rfx_env_start(&e, NULL);
	seed(e.srv.url);
	a = rfx_open(e.path, e.srv.url, RAW_KEY "&sync_interval=0");
	b = rfx_open(e.path, e.srv.url, RAW_KEY);
	ck_assert_int_eq(fixture_query_int(b, "SELECT count(*) FROM t"), 400);
	expect_refusal(e.path, e.srv.url, KEY, "with another key");
	expect_refusal(e.path, e.srv.url, "sync_interval=0", "without its key");
	/* Rekeying in place is refused with the way to do it. */
	{
		char *err = NULL;
		ck_assert_int_ne(
		    sqlite3_exec(b, "PRAGMA replite_rekey='zebra new'", NULL,
				 NULL, &err),
		    SQLITE_OK);
		ck_assert_ptr_nonnull(err);
		ck_assert_ptr_nonnull(strstr(err, "open a new replica file"));
		ck_assert(rfx_log_seen("not re-encrypted in place"));
		/* Neither the new key. */
		ck_assert_ptr_null(strstr(err, "zebra"));
		ck_assert(!rfx_log_seen("zebra"));
		sqlite3_free(err);
	}
	assert_key_nowhere(e.path, b);
	sqlite3_close(b);
	sqlite3_close(a);
	assert_no_marker(e.path);
	assert_key_nowhere(e.path, NULL);
	a = rfx_open(e.path, e.srv.url, RAW_KEY "&sync_interval=0");
	ck_assert_int_eq(fixture_query_int(a, "SELECT count(*) FROM t"), 400);
	sqlite3_close(a);
	rfx_env_stop(&e);
}
END_TEST

/* Readers of an encrypted replica under live sync see whole transactions:
 * the primary moves 1 from one row to the other, many times. */
struct reader {
	const char *path, *url;
	volatile int *stop;
	int reads, bad;
};

static void *read_invariant(void *arg)
{
	struct reader *r = arg;
	sqlite3 *db = rfx_open(r->path, r->url, KEY);

	while (!*r->stop) {
		if (fixture_query_int(db, "SELECT sum(n) FROM acct") != 1000)
			r->bad++;
		r->reads++;
	}
	sqlite3_close(db);
	return NULL;
}

START_TEST(test_readers_see_whole_transactions)
{
	struct rfx_env e;
	struct reader rd[3];
	pthread_t t[3];
	volatile int stop = 0;
	sqlite3 *db;
	int i;

	rfx_env_start(&e, NULL);
	rfx_primary_exec(e.srv.url, "CREATE TABLE acct(id INTEGER PRIMARY "
				    "KEY, n INTEGER, pad TEXT);"
				    "INSERT INTO acct VALUES (1, 1000, "
				    "randomblob(3000)), (2, 0, "
				    "randomblob(3000))");
	db = rfx_open(e.path, e.srv.url, KEY);
	for (i = 0; i < 3; i++) {
		rd[i] = (struct reader){e.path, e.srv.url, &stop, 0, 0};
		ck_assert_int_eq(
		    pthread_create(&t[i], NULL, read_invariant, &rd[i]), 0);
	}
	for (i = 0; i < 150; i++)
		/* One statement, one transaction: a sequence of two would
		 * commit (and be pulled) between them. */
		rfx_primary_exec(e.srv.url,
				 "UPDATE acct SET n = n + CASE id WHEN 1 THEN "
				 "-1 ELSE 1 END, pad = randomblob(3000)");
	rfx_sync(db);
	stop = 1;
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_gt(rd[i].reads, 0);
		ck_assert_int_eq(rd[i].bad, 0);
	}
	ck_assert_int_eq(fixture_query_int(db, "SELECT n FROM acct WHERE id "
					       "= 2"),
			 150);
	rfx_assert_verified(db);
	sqlite3_close(db);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* temporary files */

#define TEMP_MARKER "TEMPMARK"
#define TEMP_ROWS 12000

/* A spilled sort (no index serves the order: the random hex after the
 * marker), a temporary table and a VACUUM on a replica connection, with
 * temporary files on disk and small caches: what the spy saw.  Their
 * results come out right (the sort's order, the copy, the integrity). */
static void temp_workload(const char *path, const char *url, const char *key,
			  struct temp_spy_stats *sort,
			  struct temp_spy_stats *rest)
{
	char extra[256];
	char prev[256] = "";
	sqlite3_stmt *st;
	sqlite3 *db;
	int n = 0, rc;

	rfx_primary_exec(url,
			 "CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT)");
	rfx_primary_exec(url,
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
			 "SELECT i + 1 FROM n WHERE i < 12000) INSERT INTO "
			 "big SELECT i, printf('" TEMP_MARKER "-%06d-%s', "
			 "i, hex(randomblob(100))) FROM n");
	snprintf(extra, sizeof extra, "%s%ssync_interval=0", key,
		 key[0] ? "&" : "");
	db = rfx_open(path, url, extra);
	rfx_sync(db);
	fixture_exec(db, "PRAGMA temp_store=FILE; PRAGMA cache_size=10;"
			 "PRAGMA temp.cache_size=10");
	temp_spy_reset();
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT v FROM big ORDER BY "
					    "substr(v, 17)",
					    -1, &st, NULL),
			 SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0) + 16;
		ck_assert_msg(strcmp(prev, k) <= 0, "out of order at %d", n);
		snprintf(prev, sizeof prev, "%s", k);
		n++;
	}
	ck_assert_msg(rc == SQLITE_DONE, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	ck_assert_int_eq(n, TEMP_ROWS);
	temp_spy_get(sort);

	temp_spy_reset();
	fixture_exec(db, "CREATE TEMP TABLE tt AS SELECT * FROM big");
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM tt JOIN "
					       "big USING (id) WHERE tt.v = "
					       "big.v"),
			 TEMP_ROWS);
	fixture_exec(db, "DROP TABLE tt; VACUUM");
	fixture_assert_integrity(db);
	rfx_assert_same_table(db, url, "big", "v");
	sqlite3_close(db);
	temp_spy_get(rest);
	printf("replica_encryption: temp files (%s): sort %lld bytes, %lld "
	       "holding the marker; temp table and VACUUM %lld bytes, %lld "
	       "holding it\n",
	       key[0] ? "encrypted" : "plain",
	       (long long)temp_spy_total_bytes(sort),
	       (long long)temp_spy_total_holding(sort),
	       (long long)temp_spy_total_bytes(rest),
	       (long long)temp_spy_total_holding(rest));
	/* They were written (else nothing is shown), without a name and
	 * deleted on close. */
	ck_assert_int_gt(sort->bytes[TEMP_SPY_TEMP_JOURNAL], 1 << 20);
	ck_assert_int_gt(rest->bytes[TEMP_SPY_TEMP_DB], 1 << 20);
	ck_assert_int_eq(sort->named_or_kept + rest->named_or_kept, 0);
}

/* The control: a plain replica's temporary files reach the default VFS
 * with the rows in clear, so the spy under the stack sees them. */
START_TEST(test_plain_replica_temp_files_show_markers)
{
	struct temp_spy_stats sort, rest;
	struct rfx_env e;

	rfx_env_start(&e, NULL);
	temp_workload(e.path, e.srv.url, "", &sort, &rest);
	ck_assert_int_gt(sort.holding[TEMP_SPY_TEMP_JOURNAL], 0);
	ck_assert_int_gt(rest.holding[TEMP_SPY_TEMP_DB], 0);
	rfx_env_stop(&e);
}
END_TEST

START_TEST(test_no_marker_in_temp_files)
{
	struct temp_spy_stats sort, rest;
	struct rfx_env e;

	rfx_env_start(&e, NULL);
	temp_workload(e.path, e.srv.url, KEY, &sort, &rest);
	ck_assert_int_eq(temp_spy_total_holding(&sort), 0);
	ck_assert_int_eq(temp_spy_total_holding(&rest), 0);
	ck_assert_int_eq(sort.mapped + rest.mapped, 0);
	rfx_env_stop(&e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("replica_encryption");
	TCase *tc = tcase_create("encryption");

	/* The cases here give their keys themselves. */
	unsetenv("REPLITE_ENCRYPTION_KEY");
	/* Before SQLite initialises (temp_spy_register does). */
	rfx_log_capture();
	/* The default VFS before replite stacks over it (at the first open
	 * of each case's process). */
	if (temp_spy_register("temp-spy", 1, TEMP_MARKER) != SQLITE_OK)
		return EXIT_FAILURE;
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_plain_replica_shows_markers);
	tcase_add_test(tc, test_no_marker_in_any_file);
	tcase_add_test(tc, test_wrong_missing_and_unwanted_keys_change_nothing);
	tcase_add_loop_test(tc, test_offline_files, 0, 2);
	tcase_add_test(tc, test_raw_key_and_shared_opens);
	tcase_add_test(tc, test_readers_see_whole_transactions);
	tcase_add_test(tc, test_plain_replica_temp_files_show_markers);
	tcase_add_test(tc, test_no_marker_in_temp_files);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
