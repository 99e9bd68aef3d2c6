/* Safety of the replica's write path against a real primary (DESIGN.md §3
 * "Write path" and "Crash safety", issue 4):
 *
 * - convergence: two replicas (separate files, separate processes) take
 *   turns writing (inserts, updates, deletes, DDL, VACUUM; explicit
 *   transactions and autocommit; one replica with live sync, one without);
 *   after each turn the writer's local state equals the primary's (the write
 *   is visible locally and durable on the primary when it returns); at the
 *   end both files and the primary hold the same rows, compared row by row,
 *   and pass PRAGMA integrity_check;
 *
 * - no lost updates: processes each with its own replica (and, in a
 *   variant, processes sharing one replica file plus a writer on the
 *   primary) increment one counter with retries on SQLITE_BUSY and
 *   SQLITE_BUSY_SNAPSHOT, some as a read-modify-write in a deferred
 *   transaction; every successful increment saw a distinct value, the values
 *   are exactly 1..total, and the primary and every replica end at total;
 *
 * - crash safety: a replica process writing transactions (small ones, and
 *   ones larger than one push request; autocommit and explicit) while other
 *   writers race it is killed with SIGKILL at random moments; the file left
 *   behind must recover (a copy without the -shm, and the file itself) to
 *   exactly a state the primary had, never to one it did not have, and
 *   syncing it again must make it equal to the primary.
 *
 * The crash workload is self-describing: every transaction appends a row to
 * the table log (its version V, kind, writer, a random nonce, blob sizes)
 * and moves the rest of the database deterministically from version V-1 to
 * V (transfers between accounts chosen by V, a padding blob and sometimes a
 * big blob holding patterns of V).  So the content of any committed state is
 * a function of its log, the log of any state of the primary is a prefix of
 * the primary's log, and a half-applied or foreign transaction shows.
 *
 * Other processes run this same executable (see main). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "fixture.h"
#include "include/replite.h"
#include "process_fixture.h"
#include "replica_fixture.h"
#include "server_fixture.h"
#include "sync/http_client.h"
#include "sync/replica_state.h"

/* ---------------------------------------------------------------------- */
/* common helpers */

/* Did another writer get there first (retry)? */
static int is_busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY;
}

/* Run statements as one explicit transaction (mode 1: BEGIN, 2: BEGIN
 * IMMEDIATE) or each in autocommit (mode 0), retrying on SQLITE_BUSY and
 * SQLITE_BUSY_SNAPSHOT (a transaction from its start).  0, or -1 with
 * err. */
static int run_retrying(sqlite3 *db, char *const *stmts, int n, int mode,
			int *retries, char *err, size_t err_len)
{
	const char *failed = NULL;
	int i, rc;

	if (mode == 0) {
		for (i = 0; i < n; i++) {
			while ((rc = sqlite3_exec(db, stmts[i], NULL, NULL,
						  NULL)) != SQLITE_OK) {
				if (!is_busy(rc) || ++*retries > 1000) {
					snprintf(err, err_len,
						 "%.200s: %s (%d)", stmts[i],
						 sqlite3_errmsg(db), rc);
					return -1;
				}
			}
		}
		return 0;
	}
	for (;;) {
		rc = sqlite3_exec(db, mode == 1 ? "BEGIN" : "BEGIN IMMEDIATE",
				  NULL, NULL, NULL);
		failed = "BEGIN";
		for (i = 0; rc == SQLITE_OK && i < n; i++) {
			rc = sqlite3_exec(db, stmts[i], NULL, NULL, NULL);
			failed = stmts[i];
		}
		if (rc == SQLITE_OK) {
			rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			failed = "COMMIT";
		}
		if (rc == SQLITE_OK)
			return 0;
		snprintf(err, err_len, "%.200s: %s (%d)", failed,
			 sqlite3_errmsg(db), rc);
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		if (!is_busy(rc) || ++*retries > 1000)
			return -1;
	}
}

/* ====================================================================== */
/* 1: two replicas writing alternately converge */

#define ALT_STEPS 40

/* What a writer checks after its turn, on its replica and on the primary:
 * works whatever the schema is at the moment. */
#define STEP_DIGEST_SQL                                                        \
	"SELECT (SELECT count(*) || ':' || total(n) || ':' || "                \
	"total(length(data)) || ':' || ifnull(max(id), 0) || ':' || "          \
	"total(length(k)) FROM items) || '|' || (SELECT count(*) FROM tags) "  \
	"|| '|' || (SELECT group_concat(name, ',') FROM (SELECT name FROM "    \
	"sqlite_schema ORDER BY name))"

#define SCHEMA_SQL                                                             \
	"SELECT group_concat(type || ' ' || name || ' ' || tbl_name || ' ' "   \
	"|| "                                                                  \
	"ifnull(sql, ''), char(10)) FROM (SELECT * FROM sqlite_schema ORDER "  \
	"BY type, name)"

static const char *const ALT_SCHEMA =
    "CREATE TABLE items(id INTEGER PRIMARY KEY, k TEXT NOT NULL, n INTEGER "
    "NOT NULL, data BLOB);"
    "CREATE TABLE tags(item INTEGER NOT NULL, tag TEXT NOT NULL, PRIMARY "
    "KEY(item, tag)) WITHOUT ROWID;"
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE "
    "i < 60) INSERT INTO items(k, n, data) SELECT 'seed' || i, i, "
    "randomblob(i * 37) FROM c";

/* The statements of turn step by writer id (the DDL at fixed steps, so
 * that each writer changes the schema the other one uses).  *mode: 0
 * autocommit, 1 BEGIN, 2 BEGIN IMMEDIATE; *vacuum: run VACUUM after. */
static int alt_statements(int id, int step, uint64_t seed, char **stmts,
			  int max, int *mode, int *vacuum)
{
	static const int sizes[] = {0, 16, 700, 3000, 9000, 20000};
	uint64_t rng = (seed ^ ((uint64_t)step * 0x9E3779B97F4A7C15ULL) ^
			((uint64_t)id << 40)) |
		       1;
	int n = 0, ops, i;

	*mode = (int)(pfx_rnd(&rng) % 3);
	*vacuum = step == 33;
	switch (step) {
	case 6:
		stmts[n++] = sqlite3_mprintf(
		    "CREATE TABLE extra(id INTEGER PRIMARY KEY, v TEXT NOT "
		    "NULL)");
		break;
	case 11:
		stmts[n++] = sqlite3_mprintf(
		    "ALTER TABLE items ADD COLUMN note TEXT DEFAULT 'none'");
		break;
	case 17:
		stmts[n++] =
		    sqlite3_mprintf("CREATE INDEX items_n ON items(n)");
		break;
	case 23:
		stmts[n++] = sqlite3_mprintf("DROP TABLE extra");
		break;
	case 29:
		stmts[n++] = sqlite3_mprintf(
		    "CREATE TABLE extra2 AS SELECT id, k FROM items WHERE id "
		    "%% 3 = 0");
		break;
	case 37:
		stmts[n++] = sqlite3_mprintf("DROP INDEX items_n");
		break;
	default:
		break;
	}
	ops = 3 + (int)(pfx_rnd(&rng) % 4);
	for (i = 0; i < ops && n < max - 3; i++) {
		uint64_t r = pfx_rnd(&rng) % 10;
		int rows, j;

		switch (r) {
		case 0:
		case 1:
		case 2:
		case 3:
			rows = 1 + (int)(pfx_rnd(&rng) % 5);
			for (j = 0; j < rows && n < max - 3; j++)
				stmts[n++] = sqlite3_mprintf(
				    "INSERT INTO items(k, n, data) VALUES "
				    "('c%d.s%d.%d', %d, randomblob(%d))",
				    id, step, j, (int)(pfx_rnd(&rng) % 1000),
				    sizes[pfx_rnd(&rng) % 6]);
			break;
		case 4:
		case 5:
			stmts[n++] = sqlite3_mprintf(
			    "UPDATE items SET n = n + %d, k = k || '.' WHERE "
			    "id "
			    "%% %d = %d",
			    1 + (int)(pfx_rnd(&rng) % 50),
			    3 + (int)(pfx_rnd(&rng) % 7),
			    (int)(pfx_rnd(&rng) % 3));
			break;
		case 6:
			stmts[n++] = sqlite3_mprintf(
			    "DELETE FROM items WHERE id %% %d = %d",
			    9 + (int)(pfx_rnd(&rng) % 9),
			    (int)(pfx_rnd(&rng) % 9));
			break;
		case 7:
			stmts[n++] = sqlite3_mprintf(
			    "INSERT OR REPLACE INTO tags(item, tag) SELECT id, "
			    "'t%d' FROM items WHERE id %% %d = 0",
			    (int)(pfx_rnd(&rng) % 20),
			    5 + (int)(pfx_rnd(&rng) % 10));
			break;
		case 8:
			/* Depends on the latest state. */
			stmts[n++] = sqlite3_mprintf(
			    "INSERT INTO items(k, n, data) SELECT k || '+', n "
			    "* "
			    "2 + %d, substr(data, 1, %d) FROM items WHERE id = "
			    "(SELECT max(id) FROM items)",
			    (int)(pfx_rnd(&rng) % 10),
			    (int)(pfx_rnd(&rng) % 5000));
			break;
		default:
			stmts[n++] = sqlite3_mprintf(
			    "UPDATE items SET data = randomblob(%d) WHERE id = "
			    "(SELECT min(id) FROM items WHERE n %% 5 = %d)",
			    sizes[pfx_rnd(&rng) % 6], (int)(pfx_rnd(&rng) % 5));
			break;
		}
	}
	if (step > 11)
		stmts[n++] = sqlite3_mprintf(
		    "UPDATE items SET note = 'c%d.s%d' WHERE id %% 7 = %d", id,
		    step, (int)(pfx_rnd(&rng) % 7));
	if (step > 6 && step < 23)
		stmts[n++] = sqlite3_mprintf(
		    "INSERT INTO extra(v) VALUES ('c%d.s%d')", id, step);
	return n;
}

/* A writer: "w STEP" runs a turn and answers "ok RETRIES DIGEST"; "s"
 * syncs; "q" or EOF ends. */
static int alt_child_main(const char *path, const char *url, int id,
			  uint64_t seed, const char *extra)
{
	sqlite3 *db = pfx_child_open(path, url, extra);
	char line[256], err[1024];
	int step;

	while (fgets(line, sizeof line, stdin) != NULL) {
		if (sscanf(line, "w %d", &step) == 1) {
			char *stmts[64];
			int n, mode, vacuum, retries = 0, rc, i;
			sqlite3_stmt *st = NULL;

			n = alt_statements(id, step, seed, stmts, 64, &mode,
					   &vacuum);
			rc = run_retrying(db, stmts, n, mode, &retries, err,
					  sizeof err);
			for (i = 0; i < n; i++)
				sqlite3_free(stmts[i]);
			if (rc == 0 && vacuum) {
				char vacuum_sql[] = "VACUUM";
				char *v = vacuum_sql;

				rc = run_retrying(db, &v, 1, 0, &retries, err,
						  sizeof err);
			}
			if (rc != 0) {
				pfx_child_say("err %s\n", err);
				continue;
			}
			if (sqlite3_prepare_v2(db, STEP_DIGEST_SQL, -1, &st,
					       NULL) != SQLITE_OK ||
			    sqlite3_step(st) != SQLITE_ROW) {
				pfx_child_say("err digest: %s\n",
					      sqlite3_errmsg(db));
				sqlite3_finalize(st);
				continue;
			}
			pfx_child_say("ok %d %s\n", retries,
				      (const char *)sqlite3_column_text(st, 0));
			sqlite3_finalize(st);
		} else if (line[0] == 's') {
			char *msg = NULL;

			if (sqlite3_exec(db, "SELECT replite_sync()", NULL,
					 NULL, &msg) != SQLITE_OK)
				pfx_child_say("err sync: %s\n", msg);
			else
				pfx_child_say("ok\n");
			sqlite3_free(msg);
		} else {
			break;
		}
	}
	if (sqlite3_close(db) != SQLITE_OK) {
		fprintf(stderr, "child: close: %s\n", sqlite3_errmsg(db));
		return 5;
	}
	return 0;
}

/* The SQL dumping every table of db's schema, row by row (each row as its
 * quoted values; rows sorted, so the order of the file does not matter). */
static char *dump_sql(sqlite3 *db)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	sqlite3_stmt *tables, *cols;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db,
			       "SELECT name FROM sqlite_schema WHERE type = "
			       "'table' AND name NOT LIKE 'sqlite_%' ORDER BY "
			       "name",
			       -1, &tables, NULL),
	    SQLITE_OK);
	sqlite3_str_appendall(q, "SELECT ''");
	while (sqlite3_step(tables) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(tables, 0);
		int j = 0;

		sqlite3_str_appendf(
		    q,
		    " || 'table %q ' || (SELECT count(*) || char(10) || "
		    "ifnull(group_concat(r, char(10)), '') FROM (SELECT ",
		    name);
		ck_assert_int_eq(sqlite3_prepare_v2(db,
						    "SELECT name FROM "
						    "pragma_table_info(?) "
						    "ORDER BY cid",
						    -1, &cols, NULL),
				 SQLITE_OK);
		sqlite3_bind_text(cols, 1, name, -1, SQLITE_TRANSIENT);
		while (sqlite3_step(cols) == SQLITE_ROW)
			sqlite3_str_appendf(
			    q, "%squote(\"%w\")", j++ ? " || ',' || " : "",
			    (const char *)sqlite3_column_text(cols, 0));
		sqlite3_finalize(cols);
		ck_assert_int_gt(j, 0);
		sqlite3_str_appendf(
		    q, " AS r FROM \"%w\" ORDER BY r)) || char(10)", name);
	}
	sqlite3_finalize(tables);
	return sqlite3_str_finish(q);
}

/* Compare two dumps line by line; fail naming the first difference. */
static void assert_same_lines(const char *a, const char *b, const char *what_a,
			      const char *what_b)
{
	int line = 1;
	const char *pa = a, *pb = b;

	while (*pa != '\0' || *pb != '\0') {
		size_t la = strcspn(pa, "\n"), lb = strcspn(pb, "\n");

		ck_assert_msg(la == lb && memcmp(pa, pb, la) == 0,
			      "line %d differs:\n%s: %.300s\n%s: %.300s", line,
			      what_a, *pa ? pa : "(end)", what_b,
			      *pb ? pb : "(end)");
		pa += la + (pa[la] == '\n');
		pb += lb + (pb[lb] == '\n');
		line++;
	}
}

START_TEST(test_two_replicas_converge)
{
	struct rfx_env env;
	uint64_t seed = pfx_seed_from_env();
	char *path[2], *log;
	struct pfx_proc p[2];
	double started = pfx_now_s();
	int retries[2] = {0, 0}, i, s;
	char line[4096], seed_text[32];
	char *schema_p, *dump_p, *q, *q2;
	int64_t rows;

	signal(SIGPIPE, SIG_IGN);
	rfx_env_start(&env, NULL);
	rfx_primary_exec(env.srv.url, ALT_SCHEMA);
	log = fixture_path(env.dir, "children.log");
	snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
	for (i = 0; i < 2; i++) {
		char name[16];
		/* A: no live sync, every write catches up at begin-write;
		 * B: live sync (a write may find itself known current). */
		const char *args[] = {
		    "--alt-child", NULL,
		    env.srv.url,   i == 0 ? "0" : "1",
		    seed_text,     i == 0 ? "sync_interval=0" : "-",
		    NULL};

		snprintf(name, sizeof name, "%c.db", 'a' + i);
		path[i] = fixture_path(env.dir, name);
		args[1] = path[i];
		pfx_proc_start(&p[i], args, log);
	}
	for (s = 0; s < ALT_STEPS; s++) {
		int c = s % 2, r;
		char *mine, *prim;

		if (s % 7 == 5) /* the primary moves on by itself too */
			rfx_primary_exec(
			    env.srv.url,
			    "INSERT INTO items(k, n, data) VALUES ('primary', "
			    "7, randomblob(300)); UPDATE items SET n = n - 1 "
			    "WHERE id % 4 = 1");
		pfx_proc_send(&p[c], "w %d\n", s);
		ck_assert_msg(pfx_proc_line(&p[c], line, sizeof line, 120000),
			      "writer %c died in step %d: %s", 'A' + c, s,
			      pfx_slurp(log));
		ck_assert_msg(strncmp(line, "ok ", 3) == 0,
			      "writer %c, step %d: %s", 'A' + c, s, line);
		r = atoi(line + 3);
		retries[c] += r;
		mine = strchr(line + 3, ' ');
		ck_assert_ptr_nonnull(mine);
		mine++;
		/* Read-your-writes, and durable on the primary. */
		prim = pfx_primary_text(env.srv.url, STEP_DIGEST_SQL);
		ck_assert_msg(strcmp(mine, prim) == 0,
			      "step %d: writer %c sees %s, the primary has %s",
			      s, 'A' + c, mine, prim);
		free(prim);
	}
	for (i = 0; i < 2; i++) {
		int status;

		pfx_proc_send(&p[i], "s\n");
		ck_assert_int_eq(pfx_proc_line(&p[i], line, sizeof line, 60000),
				 1);
		ck_assert_msg(strcmp(line, "ok") == 0, "sync of %c: %s",
			      'A' + i, line);
		pfx_proc_send(&p[i], "q\n");
		status = pfx_proc_finish(&p[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "writer %c ended with status %d: %s", 'A' + i,
			      status, pfx_slurp(log));
	}

	/* Both files, with plain SQLite, row by row against the primary. */
	schema_p = pfx_primary_text(env.srv.url, SCHEMA_SQL);
	dump_p = NULL;
	q = NULL;
	for (i = 0; i < 2; i++) {
		char what[64], *schema, *dump;
		sqlite3 *db;

		snprintf(what, sizeof what, "replica %c (plain SQLite)",
			 'A' + i);
		db = pfx_open_plain(path[i], 1, what);
		schema = pfx_local_text(db, SCHEMA_SQL);
		assert_same_lines(schema, schema_p, what, "primary");
		if (q == NULL) {
			q = dump_sql(db);
			dump_p = pfx_primary_text(env.srv.url, q);
		}
		dump = pfx_local_text(db, q);
		assert_same_lines(dump, dump_p, what, "primary");
		free(schema);
		free(dump);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	}
	q2 = pfx_primary_text(env.srv.url, "PRAGMA integrity_check");
	ck_assert_str_eq(q2, "ok");
	free(q2);
	rows = rfx_primary_query_int(env.srv.url, "SELECT count(*) FROM items");
	printf("converge: %d turns, %lld rows, %zu bytes of dump, retries A "
	       "%d B %d, %.1f s (seed %llu)\n",
	       ALT_STEPS, (long long)rows, strlen(dump_p), retries[0],
	       retries[1], pfx_now_s() - started, (unsigned long long)seed);
	fflush(stdout);
	/* Not vacuous: the DDL happened, and there is data. */
	ck_assert_ptr_nonnull(strstr(schema_p, "extra2"));
	ck_assert_ptr_nonnull(strstr(schema_p, "note TEXT"));
	ck_assert_int_gt(rows, 20);
	sqlite3_free(q);
	free(dump_p);
	free(schema_p);
	free(path[0]);
	free(path[1]);
	free(log);
	rfx_env_stop(&env);
}
END_TEST

/* ====================================================================== */
/* 2: no lost updates */

/* UPDATE ... RETURNING the counter, run to its end: SQLITE_OK with the
 * value written in *v, or the code of the failure (with err). */
static int update_returning(sqlite3 *db, int64_t *v, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(
	    db, "UPDATE c SET v = v + 1 WHERE id = 1 RETURNING v", -1, &st,
	    NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*v = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	snprintf(err, err_len, "UPDATE: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

/* One increment: 0 autocommit UPDATE ... RETURNING, 1 read-modify-write
 * in a deferred transaction, 2 BEGIN IMMEDIATE + UPDATE ... RETURNING.
 * Returns SQLITE_OK with the value written, or the (extended) code of the
 * failure, the transaction rolled back. */
static int increment(sqlite3 *db, int mode, int64_t *value, char *err,
		     size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	int rc;

	if (mode == 0) {
		/* The commit happens when the statement ends. */
		rc = update_returning(db, &v, err, err_len);
		goto out;
	}
	rc = sqlite3_exec(db, mode == 1 ? "BEGIN" : "BEGIN IMMEDIATE", NULL,
			  NULL, NULL);
	snprintf(err, err_len, "BEGIN: %s", sqlite3_errmsg(db));
	if (rc != SQLITE_OK)
		goto out;
	if (mode == 1) {
		char sql[128];

		rc = sqlite3_prepare_v2(db, "SELECT v FROM c WHERE id = 1", -1,
					&st, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			v = sqlite3_column_int64(st, 0) + 1;
			rc = SQLITE_OK;
		}
		snprintf(err, err_len, "SELECT: %s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		if (rc != SQLITE_OK)
			goto out;
		snprintf(sql, sizeof sql, "UPDATE c SET v = %lld WHERE id = 1",
			 (long long)v);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		snprintf(err, err_len, "UPDATE: %s", sqlite3_errmsg(db));
	} else {
		rc = update_returning(db, &v, err, err_len);
	}
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	snprintf(err, err_len, "COMMIT: %s", sqlite3_errmsg(db));
out:
	if (rc != SQLITE_OK) {
		rc = sqlite3_extended_errcode(db) ? sqlite3_extended_errcode(db)
						  : rc;
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	*value = v;
	return rc;
}

/* An incrementer: opens its replica, says "ready", waits for "go", then
 * makes m increments, answering "v VALUE MODE" for each and "done
 * SUCCESSES BUSY BUSY_SNAPSHOT" at the end ("err ..." on another error). */
static int counter_child_main(const char *path, const char *url, int m,
			      uint64_t seed, const char *extra)
{
	sqlite3 *db = pfx_child_open(path, url, extra);
	uint64_t rng = seed | 1;
	int ok = 0, busy = 0, snap = 0;
	char line[64], err[512];

	pfx_child_say("ready\n");
	if (fgets(line, sizeof line, stdin) == NULL)
		return 0;
	while (ok < m) {
		int mode = (int)(pfx_rnd(&rng) % 3), rc;
		int64_t v;

		rc = increment(db, mode, &v, err, sizeof err);
		if (rc == SQLITE_OK) {
			ok++;
			pfx_child_say("v %lld %d\n", (long long)v, mode);
		} else if (rc == SQLITE_BUSY_SNAPSHOT) {
			snap++;
		} else if (is_busy(rc)) {
			busy++;
		} else {
			pfx_child_say("err mode %d: %s (%d)\n", mode, err, rc);
			sqlite3_close(db);
			return 3;
		}
	}
	pfx_child_say("done %d %d %d\n", ok, busy, snap);
	if (sqlite3_close(db) != SQLITE_OK)
		return 5;
	return 0;
}

/* Increments on the primary over Hrana, from a thread. */
struct hrana_incr {
	const char *url;
	int n;
	int64_t *values;
	int done;
	char err[512];
	pthread_t thread;
};

static void *hrana_incr_main(void *arg)
{
	struct hrana_incr *h = arg;
	struct http_client *c = pfx_primary_client(h->url);
	uint64_t rng = (uint64_t)h->n * 77 + 5;

	for (h->done = 0; h->done < h->n; h->done++) {
		char *text = NULL;

		if (pfx_primary_run(
			c,
			"UPDATE c SET v = v + 1 WHERE id = 1 RETURNING "
			"v",
			1, &text, h->err, sizeof h->err) != 0)
			break;
		h->values[h->done] = strtoll(text, NULL, 10);
		free(text);
		rfx_sleep_ms((long)(pfx_rnd(&rng) % 20));
	}
	http_client_free(c);
	return NULL;
}

/* n_procs incrementer processes making m increments each, on n_files
 * replica files (process i uses file i % n_files), plus hrana increments
 * on the primary. */
static void run_counter(int n_procs, int n_files, int m, int hrana)
{
	struct rfx_env env;
	uint64_t seed = pfx_seed_from_env();
	int total = n_procs * m + hrana, i, n_values = 0;
	int64_t *values = calloc((size_t)total + 1, sizeof *values);
	int *by = calloc((size_t)total + 1, sizeof *by);     /* -1: Hrana */
	int *seen = calloc((size_t)total + 1, sizeof *seen); /* by + 2 */
	struct pfx_proc *p = calloc((size_t)n_procs, sizeof *p);
	int modes[3] = {0, 0, 0}, busy = 0, snap = 0;
	struct hrana_incr h = {0};
	double started = pfx_now_s();
	char **paths, *log, line[512];
	int64_t final;

	ck_assert_ptr_nonnull(values);
	ck_assert_ptr_nonnull(seen);
	ck_assert_ptr_nonnull(by);
	ck_assert_ptr_nonnull(p);
	signal(SIGPIPE, SIG_IGN);
	rfx_env_start(&env, NULL);
	rfx_primary_exec(env.srv.url,
			 "CREATE TABLE c(id INTEGER PRIMARY KEY, v INTEGER NOT "
			 "NULL); INSERT INTO c VALUES (1, 0)");
	log = fixture_path(env.dir, "children.log");
	paths = calloc((size_t)n_files, sizeof *paths);
	for (i = 0; i < n_files; i++) {
		char name[32];

		snprintf(name, sizeof name, "r%d.db", i);
		paths[i] = fixture_path(env.dir, name);
	}
	for (i = 0; i < n_procs; i++) {
		char m_text[16], seed_text[32];
		/* Half with live sync (known current: no catch-up at
		 * begin-write), half without. */
		const char *args[] = {"--counter-child",
				      paths[i % n_files],
				      env.srv.url,
				      m_text,
				      seed_text,
				      i % 2 ? "sync_interval=0" : "-",
				      NULL};

		snprintf(m_text, sizeof m_text, "%d", m);
		snprintf(seed_text, sizeof seed_text, "%llu",
			 (unsigned long long)(seed + (uint64_t)i * 1000003));
		pfx_proc_start(&p[i], args, log);
	}
	for (i = 0; i < n_procs; i++) {
		ck_assert_msg(pfx_proc_line(&p[i], line, sizeof line, 60000),
			      "incrementer %d did not start: %s", i,
			      pfx_slurp(log));
		ck_assert_str_eq(line, "ready");
	}
	for (i = 0; i < n_procs; i++)
		pfx_proc_send(&p[i], "go\n");
	if (hrana > 0) {
		h.url = env.srv.url;
		h.n = hrana;
		h.values = calloc((size_t)hrana, sizeof *h.values);
		ck_assert_int_eq(
		    pthread_create(&h.thread, NULL, hrana_incr_main, &h), 0);
	}
	for (i = 0; i < n_procs; i++) {
		int status, ok = -1, b = 0, sn = 0;

		while (pfx_proc_line(&p[i], line, sizeof line, 120000)) {
			long long v;
			int mode;

			if (sscanf(line, "v %lld %d", &v, &mode) == 2) {
				ck_assert_int_lt(n_values, total);
				by[n_values] = i;
				values[n_values++] = v;
				modes[mode]++;
			} else if (sscanf(line, "done %d %d %d", &ok, &b,
					  &sn) == 3) {
				break;
			} else {
				ck_abort_msg("incrementer %d: %s", i, line);
			}
		}
		ck_assert_msg(ok == m, "incrementer %d: %d increments: %s", i,
			      ok, pfx_slurp(log));
		busy += b;
		snap += sn;
		status = pfx_proc_finish(&p[i]);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "incrementer %d ended with status %d: %s", i,
			      status, pfx_slurp(log));
	}
	if (hrana > 0) {
		pthread_join(h.thread, NULL);
		ck_assert_msg(h.done == hrana, "hrana increments: %s", h.err);
		for (i = 0; i < hrana; i++) {
			by[n_values] = -1;
			values[n_values++] = h.values[i];
		}
		free(h.values);
	}

	/* Every successful increment wrote a distinct value: 1..total. */
	final =
	    rfx_primary_query_int(env.srv.url, "SELECT v FROM c WHERE id = 1");
	ck_assert_int_eq(n_values, total);
	for (i = 0; i < n_values; i++) {
		ck_assert_msg(values[i] >= 1 && values[i] <= total,
			      "an increment wrote %lld (total %d)",
			      (long long)values[i], total);
		ck_assert_msg(seen[values[i]] == 0,
			      "two successful increments both wrote %lld (by "
			      "incrementer %d and %d; -1: over Hrana): an "
			      "update was lost; the primary ends at %lld after "
			      "%d successful increments",
			      (long long)values[i], seen[values[i]] - 2, by[i],
			      (long long) final, total);
		seen[values[i]] = by[i] + 2;
	}
	ck_assert_int_eq(final, total);
	for (i = 0; i < n_files; i++) {
		sqlite3 *db =
		    rfx_open(paths[i], env.srv.url, "sync_interval=0");

		rfx_sync(db);
		ck_assert_int_eq(
		    fixture_query_int(db, "SELECT v FROM c WHERE id = 1"),
		    total);
		fixture_assert_integrity(db);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
		db = pfx_open_plain(paths[i], 1, paths[i]);
		ck_assert_int_eq(
		    fixture_query_int(db, "SELECT v FROM c WHERE id = 1"),
		    total);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	}
	printf("no lost updates: %d processes on %d replica file%s + %d "
	       "increments on the primary: %d increments (%d autocommit, %d "
	       "read-modify-write, %d immediate), %d retries after "
	       "SQLITE_BUSY, %d after SQLITE_BUSY_SNAPSHOT; final %lld; %.1f "
	       "s\n",
	       n_procs, n_files, n_files == 1 ? "" : "s", hrana, total,
	       modes[0], modes[1], modes[2], busy, snap, (long long) final,
	       pfx_now_s() - started);
	fflush(stdout);
	for (i = 0; i < n_files; i++)
		free(paths[i]);
	free(paths);
	free(log);
	free(values);
	free(by);
	free(seen);
	free(p);
	rfx_env_stop(&env);
}

START_TEST(test_no_lost_updates_own_files)
{
	run_counter(4, 4, 50, 0);
}
END_TEST

START_TEST(test_no_lost_updates_shared_file)
{
	run_counter(3, 1, 50, 30);
}
END_TEST

/* ====================================================================== */
/* 3: crash safety of a writing replica */

#define W_ACCOUNTS 200
#define W_INITIAL 1000
#define W_TOTAL ((int64_t)W_ACCOUNTS * W_INITIAL)
#define W_PAD 32
#define W_FILLER 900
#define W_FILLER_STAMP 1000000
#define OVERFLOW_BYTES 4092

enum { K_SMALL, K_MEDIUM, K_BIG };
enum { WRITER_HRANA = 1, WRITER_RIVAL = 2, WRITER_CHILD0 = 10 };

/* Every row of every table but the blob contents (checked against their
 * patterns separately), identical on the primary and on a replica. */
#define W_DIGEST_SQL                                                           \
	"SELECT (SELECT version FROM meta) || '|' || (SELECT group_concat(id " \
	"|| ':' || balance || ':' || version, ',') FROM (SELECT id, balance, " \
	"version FROM accounts ORDER BY id)) || '|' || ifnull((SELECT "        \
	"group_concat(id || ':' || ver || ':' || l, ',') FROM (SELECT id, "    \
	"ver, length(v) AS l FROM pad ORDER BY id)), '') || '|' || "           \
	"ifnull((SELECT group_concat(id || ':' || ver || ':' || length(v), "   \
	"',') FROM big), '') || '|' || (SELECT count(*) || ':' || "            \
	"ifnull(max(v), 0) || ':' || ifnull(sum(nonce % 1000003), 0) FROM "    \
	"log) || '|' || (SELECT group_concat(type || ' ' || name || ' ' || "   \
	"ifnull(sql, ''), ';') FROM (SELECT * FROM sqlite_schema ORDER BY "    \
	"name))"

#define W_LOG_SQL                                                              \
	"SELECT ifnull(group_concat(v || ',' || kind || ',' || writer || ',' " \
	"|| nonce || ',' || pad_len || ',' || big_len || ',' || auto, ';'), "  \
	"'') FROM (SELECT * FROM log ORDER BY v)"

struct wtxn {
	int64_t v;
	int kind, writer, autoc;
	int64_t nonce, pad_len, big_len;
};

struct wlog {
	struct wtxn *e;
	size_t n, cap;
};

struct wstate {
	int64_t version;
	int64_t bal[W_ACCOUNTS], ver[W_ACCOUNTS];
	int64_t pad_ver[W_PAD], pad_len[W_PAD]; /* -1: no row */
	int64_t big_ver, big_len;               /* -1: no row */
};

/* The two transfers of version v (account indexes 0-based). */
static void transfers(int64_t v, int from[2], int to[2], int amt[2])
{
	from[0] = (int)((v * 7919) % W_ACCOUNTS);
	to[0] = (int)((from[0] + 1 + v % (W_ACCOUNTS - 1)) % W_ACCOUNTS);
	amt[0] = (int)(v % 97 + 1);
	from[1] = (int)((v * 104729 + 17) % W_ACCOUNTS);
	to[1] = (int)((from[1] + 1 + (v * 31) % (W_ACCOUNTS - 1)) % W_ACCOUNTS);
	amt[1] = (int)(v % 53 + 1);
}

static void wstate_init(struct wstate *s)
{
	int i;

	memset(s, 0, sizeof *s);
	for (i = 0; i < W_ACCOUNTS; i++)
		s->bal[i] = W_INITIAL;
	for (i = 0; i < W_PAD; i++)
		s->pad_ver[i] = s->pad_len[i] = -1;
	s->big_ver = s->big_len = -1;
}

static void wstate_apply(struct wstate *s, const struct wtxn *t)
{
	int from[2], to[2], amt[2], i;

	transfers(t->v, from, to, amt);
	for (i = 0; i < 2; i++) {
		s->bal[from[i]] -= amt[i];
		s->bal[to[i]] += amt[i];
		s->ver[from[i]] = t->v;
		s->ver[to[i]] = t->v;
	}
	s->pad_ver[t->v % W_PAD] = t->v;
	s->pad_len[t->v % W_PAD] = t->pad_len;
	if (t->big_len > 0) {
		s->big_ver = t->v;
		s->big_len = t->big_len;
	}
	s->version = t->v;
}

static char *pattern(const char *len, const char *stamp)
{
	return sqlite3_mprintf(PFX_PATTERN_SQL, len, stamp, len);
}

static char *w_schema_sql(void)
{
	char *filler = pattern("900", "1000000 + i");
	char *pad = pattern("NEW.pad_len", "NEW.v");
	char *big = pattern("NEW.big_len", "NEW.v");
	char *sql = sqlite3_mprintf(
	    "BEGIN;"
	    "CREATE TABLE meta(id INTEGER PRIMARY KEY, version INTEGER NOT "
	    "NULL);"
	    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT "
	    "NULL, version INTEGER NOT NULL, filler BLOB);"
	    "CREATE TABLE pad(id INTEGER PRIMARY KEY, ver INTEGER NOT NULL, v "
	    "BLOB);"
	    "CREATE TABLE big(id INTEGER PRIMARY KEY, ver INTEGER NOT NULL, v "
	    "BLOB);"
	    "CREATE TABLE log(v INTEGER PRIMARY KEY, kind INTEGER NOT NULL, "
	    "writer INTEGER NOT NULL, nonce INTEGER NOT NULL, pad_len INTEGER "
	    "NOT NULL, big_len INTEGER NOT NULL, auto INTEGER NOT NULL);"
	    /* A transaction as one statement: INSERT INTO log with auto = 1
	     * (the same changes as the explicit form, see w_txn_sql). */
	    "CREATE TRIGGER log_apply AFTER INSERT ON log WHEN NEW.auto BEGIN "
	    "UPDATE meta SET version = NEW.v WHERE id = 1;"
	    "UPDATE accounts SET balance = balance - (NEW.v %% 97 + 1), "
	    "version = NEW.v WHERE id = (NEW.v * 7919) %% %d + 1;"
	    "UPDATE accounts SET balance = balance + (NEW.v %% 97 + 1), "
	    "version = NEW.v WHERE id = ((NEW.v * 7919) %% %d + 1 + NEW.v %% "
	    "%d) %% %d + 1;"
	    "UPDATE accounts SET balance = balance - (NEW.v %% 53 + 1), "
	    "version = NEW.v WHERE id = (NEW.v * 104729 + 17) %% %d + 1;"
	    "UPDATE accounts SET balance = balance + (NEW.v %% 53 + 1), "
	    "version = NEW.v WHERE id = ((NEW.v * 104729 + 17) %% %d + 1 + "
	    "(NEW.v * 31) %% %d) %% %d + 1;"
	    "INSERT OR REPLACE INTO pad(id, ver, v) VALUES (NEW.v %% %d, "
	    "NEW.v, %s);"
	    "INSERT OR REPLACE INTO big(id, ver, v) SELECT 1, NEW.v, %s WHERE "
	    "NEW.big_len > 0;"
	    "END;"
	    "INSERT INTO meta VALUES (1, 0);"
	    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
	    "WHERE i < %d) INSERT INTO accounts SELECT i, %d, 0, %s FROM c;"
	    "COMMIT",
	    W_ACCOUNTS, W_ACCOUNTS, W_ACCOUNTS - 1, W_ACCOUNTS, W_ACCOUNTS,
	    W_ACCOUNTS, W_ACCOUNTS - 1, W_ACCOUNTS, W_PAD, pad, big, W_ACCOUNTS,
	    W_INITIAL, filler);

	sqlite3_free(filler);
	sqlite3_free(pad);
	sqlite3_free(big);
	return sql;
}

/* A new transaction of the given kind (its version is decided when it
 * runs). */
static void w_make(uint64_t *rng, struct wtxn *t, int kind, int writer)
{
	memset(t, 0, sizeof *t);
	t->kind = kind;
	t->writer = writer;
	t->nonce = (int64_t)(pfx_rnd(rng) >> 2);
	if (kind == K_MEDIUM)
		t->pad_len =
		    (5 + (int64_t)(pfx_rnd(rng) % 40)) * OVERFLOW_BYTES -
		    (int64_t)(pfx_rnd(rng) % 2000);
	else
		t->pad_len = 1 + (int64_t)(pfx_rnd(rng) % 3000);
	/* More than 1024 pages: a push of several requests. */
	if (kind == K_BIG)
		t->big_len =
		    (1050 + (int64_t)(pfx_rnd(rng) % 1000)) * OVERFLOW_BYTES -
		    (int64_t)(pfx_rnd(rng) % 2000);
}

/* The one statement of the autocommit form (the trigger does the rest). */
static char *w_auto_sql(const struct wtxn *t)
{
	return sqlite3_mprintf(
	    "INSERT INTO log(v, kind, writer, nonce, pad_len, big_len, auto) "
	    "SELECT version + 1, %d, %d, %lld, %lld, %lld, 1 FROM meta WHERE "
	    "id = 1",
	    t->kind, t->writer, (long long)t->nonce, (long long)t->pad_len,
	    (long long)t->big_len);
}

/* The statements of the explicit form of t at version t->v. */
static int w_txn_sql(const struct wtxn *t, char **stmts)
{
	int from[2], to[2], amt[2], n = 0, i;
	char v[32], len[32];
	char *pat;

	transfers(t->v, from, to, amt);
	snprintf(v, sizeof v, "%lld", (long long)t->v);
	for (i = 0; i < 2; i++) {
		stmts[n++] = sqlite3_mprintf(
		    "UPDATE accounts SET balance = balance - %d, version = %s "
		    "WHERE id = %d",
		    amt[i], v, from[i] + 1);
		if (i == 0)
			stmts[n++] = sqlite3_mprintf(
			    "INSERT INTO log(v, kind, writer, nonce, pad_len, "
			    "big_len, auto) VALUES (%s, %d, %d, %lld, %lld, "
			    "%lld, 0)",
			    v, t->kind, t->writer, (long long)t->nonce,
			    (long long)t->pad_len, (long long)t->big_len);
		stmts[n++] = sqlite3_mprintf(
		    "UPDATE accounts SET balance = balance + %d, version = %s "
		    "WHERE id = %d",
		    amt[i], v, to[i] + 1);
	}
	snprintf(len, sizeof len, "%lld", (long long)t->pad_len);
	pat = pattern(len, v);
	stmts[n++] = sqlite3_mprintf(
	    "INSERT OR REPLACE INTO pad(id, ver, v) VALUES (%d, %s, %s)",
	    (int)(t->v % W_PAD), v, pat);
	sqlite3_free(pat);
	if (t->big_len > 0) {
		snprintf(len, sizeof len, "%lld", (long long)t->big_len);
		pat = pattern(len, v);
		stmts[n++] = sqlite3_mprintf(
		    "INSERT OR REPLACE INTO big(id, ver, v) VALUES (1, %s, %s)",
		    v, pat);
		sqlite3_free(pat);
	}
	stmts[n++] =
	    sqlite3_mprintf("UPDATE meta SET version = %s WHERE id = 1", v);
	return n;
}

/* Run t once on a replica connection: mode 0 autocommit, 1 BEGIN (read,
 * then write: the snapshot may be stale), 2 BEGIN IMMEDIATE.  Returns
 * SQLITE_OK or the extended code of the failure (rolled back). */
static int w_run(sqlite3 *db, struct wtxn *t, int mode, char *err,
		 size_t err_len)
{
	char *stmts[16];
	sqlite3_stmt *st = NULL;
	int rc, n, i;

	if (mode == 0) {
		char *sql = w_auto_sql(t);

		t->autoc = 1;
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		snprintf(err, err_len, "autocommit: %s", sqlite3_errmsg(db));
		sqlite3_free(sql);
		return rc == SQLITE_OK ? rc : sqlite3_extended_errcode(db);
	}
	t->autoc = 0;
	rc = sqlite3_exec(db, mode == 1 ? "BEGIN" : "BEGIN IMMEDIATE", NULL,
			  NULL, NULL);
	snprintf(err, err_len, "BEGIN: %s", sqlite3_errmsg(db));
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_prepare_v2(db, "SELECT version FROM meta WHERE id = 1", -1,
				&st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		t->v = sqlite3_column_int64(st, 0) + 1;
		rc = SQLITE_OK;
	}
	snprintf(err, err_len, "SELECT version: %s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		goto out;
	n = w_txn_sql(t, stmts);
	for (i = 0; i < n; i++) {
		if (rc == SQLITE_OK) {
			rc = sqlite3_exec(db, stmts[i], NULL, NULL, NULL);
			snprintf(err, err_len, "%.60s: %s", stmts[i],
				 sqlite3_errmsg(db));
		}
		sqlite3_free(stmts[i]);
	}
	if (rc == SQLITE_OK) {
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		snprintf(err, err_len, "COMMIT: %s", sqlite3_errmsg(db));
	}
out:
	if (rc != SQLITE_OK) {
		rc = sqlite3_extended_errcode(db);
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	return rc;
}

/* Commit hook of the crash writer: tell the parent which transaction is
 * being committed (pushed), for the statistics only. */
static struct wtxn *hook_txn;
static double hook_time;

static int on_commit_hook(void *arg)
{
	char line[96];
	int n;

	(void)arg;
	hook_time = pfx_now_s();
	if (hook_txn != NULL) {
		n = snprintf(line, sizeof line, "P %lld %d\n",
			     (long long)hook_txn->nonce, hook_txn->kind);
		if (write(1, line, (size_t)n) < 0) {
			/* The parent does not listen: fine. */
		}
	}
	return 0;
}

static void say_nonblocking(const char *s)
{
	if (write(1, s, strlen(s)) < 0) {
		/* statistics only */
	}
}

/* The process to be killed: writes transactions to its replica until
 * killed, retrying on SQLITE_BUSY(_SNAPSHOT).  It records nothing the test
 * relies on; it tells the parent "P NONCE KIND" when a commit starts and
 * "D" / "B" when it succeeded / lost (statistics). */
static int crash_writer_main(const char *path, const char *url, int writer,
			     uint64_t seed, const char *extra, int big_first)
{
	uint64_t rng = (seed ^ ((uint64_t)writer << 32)) | 1;
	sqlite3 *db;
	struct wtxn t;
	char err[512];
	int first = 1, commits = 0;

	fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
	db = pfx_child_open(path, url, extra);
	say_nonblocking("O\n"); /* open: see the kill delay */
	sqlite3_commit_hook(db, on_commit_hook, NULL);
	for (;;) {
		uint64_t r = pfx_rnd(&rng) % 100;
		int kind = r < 55 ? K_SMALL : r < 85 ? K_MEDIUM : K_BIG;
		int mode = (int)(pfx_rnd(&rng) % 3), rc;

		if (first && big_first)
			kind = K_BIG;
		first = 0;
		w_make(&rng, &t, kind, writer);
		hook_txn = &t;
		hook_time = 0;
		rc = w_run(db, &t, mode, err, sizeof err);
		hook_txn = NULL;
		if (rc == SQLITE_OK) {
			char line[32];

			commits++;
			/* How long the commit (push) took. */
			snprintf(line, sizeof line, "D %d\n",
				 hook_time > 0
				     ? (int)((pfx_now_s() - hook_time) * 1000)
				     : -1);
			say_nonblocking(line);
		} else if (is_busy(rc)) {
			say_nonblocking("B\n");
		} else {
			/* Any other error is a failure of the test (e.g. "no
			 * such table" here would mean this open returned a
			 * state older than the primary's schema). */
			sqlite3_stmt *st = NULL;

			sqlite3_prepare_v2(db, "SELECT replite_status()", -1,
					   &st, NULL);
			fprintf(stderr,
				"crash writer %d: %s (%d) after %d commits; "
				"replite_status: %s\n",
				writer, err, rc, commits,
				st != NULL && sqlite3_step(st) == SQLITE_ROW
				    ? (const char *)sqlite3_column_text(st, 0)
				    : "?");
			_exit(4);
		}
	}
	return 0;
}

/* A long-lived rival replica (its own file): "r" runs small and medium
 * transactions, "p" pauses (answered "paused" once no transaction is in
 * flight), EOF ends (answered "stats COMMITS LOST"). */
static int rival_main(const char *path, const char *url, uint64_t seed)
{
	uint64_t rng = seed | 1;
	sqlite3 *db = pfx_child_open(path, url, "-");
	int running = 0, commits = 0, lost = 0;
	char err[512];

	for (;;) {
		struct pollfd pf = {.fd = 0, .events = POLLIN};
		struct wtxn t;
		int rc;

		if (poll(&pf, 1, running ? 0 : -1) > 0) {
			char c;

			if (read(0, &c, 1) <= 0)
				break;
			if (c == 'r')
				running = 1;
			if (c == 'p') {
				running = 0;
				pfx_child_say("paused\n");
			}
			continue;
		}
		if (!running)
			continue;
		w_make(&rng, &t, pfx_rnd(&rng) % 4 == 0 ? K_MEDIUM : K_SMALL,
		       WRITER_RIVAL);
		rc = w_run(db, &t, (int)(pfx_rnd(&rng) % 3), err, sizeof err);
		if (rc == SQLITE_OK) {
			commits++;
		} else if (is_busy(rc)) {
			lost++;
		} else {
			fprintf(stderr, "rival: %s (%d)\n", err, rc);
			_exit(4);
		}
		rfx_sleep_ms((long)(pfx_rnd(&rng) % 30));
	}
	pfx_child_say("stats %d %d\n", commits, lost);
	if (sqlite3_close(db) != SQLITE_OK)
		return 5;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* reading and checking a state */

static void wlog_free(struct wlog *l)
{
	free(l->e);
	memset(l, 0, sizeof *l);
}

static void wlog_push(struct wlog *l, const struct wtxn *t)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->e = realloc(l->e, l->cap * sizeof *l->e);
		ck_assert_ptr_nonnull(l->e);
	}
	l->e[l->n++] = *t;
}

/* Parse the text of W_LOG_SQL. */
static void wlog_parse(const char *text, struct wlog *l)
{
	const char *p = text;

	memset(l, 0, sizeof *l);
	while (*p != '\0') {
		struct wtxn t;
		long long f[7];
		char *end;
		int i;

		for (i = 0; i < 7; i++) {
			f[i] = strtoll(p, &end, 10);
			ck_assert_msg(end != p, "bad log text at %.40s", p);
			p = end;
			if (i < 6) {
				ck_assert_int_eq(*p, ',');
				p++;
			}
		}
		t.v = f[0];
		t.kind = (int)f[1];
		t.writer = (int)f[2];
		t.nonce = f[3];
		t.pad_len = f[4];
		t.big_len = f[5];
		t.autoc = (int)f[6];
		wlog_push(l, &t);
		if (*p == ';')
			p++;
	}
}

static int wlog_has_nonce(const struct wlog *l, int64_t nonce)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (l->e[i].nonce == nonce)
			return 1;
	}
	return 0;
}

enum { WS_OK, WS_BAD, WS_EMPTY };

#define BAD(...)                                                               \
	do {                                                                   \
		snprintf(why, why_len, __VA_ARGS__);                           \
		out = WS_BAD;                                                  \
		goto done;                                                     \
	} while (0)

/* Read the whole state of db and check it is self-consistent: its log is
 * versions 1..V and every other row is what that log implies (blobs
 * included).  Fills *log.  Returns WS_OK, WS_EMPTY (no schema) or WS_BAD
 * with why; SQL errors fail the test. */
static int w_read_check(sqlite3 *db, struct wlog *log, char *why,
			size_t why_len)
{
	struct wstate model, s;
	sqlite3_stmt *st = NULL;
	int out = WS_OK, rc, rows;
	size_t i;

	memset(log, 0, sizeof *log);
	if (fixture_query_int(db, "SELECT count(*) FROM sqlite_schema") == 0)
		return WS_EMPTY;
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL),
			 SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT v, kind, writer, nonce, "
					    "pad_len, big_len, auto FROM log "
					    "ORDER BY v",
					    -1, &st, NULL),
			 SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct wtxn t;

		t.v = sqlite3_column_int64(st, 0);
		t.kind = sqlite3_column_int(st, 1);
		t.writer = sqlite3_column_int(st, 2);
		t.nonce = sqlite3_column_int64(st, 3);
		t.pad_len = sqlite3_column_int64(st, 4);
		t.big_len = sqlite3_column_int64(st, 5);
		t.autoc = sqlite3_column_int(st, 6);
		wlog_push(log, &t);
	}
	ck_assert_int_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	st = NULL;
	wstate_init(&model);
	for (i = 0; i < log->n; i++) {
		if (log->e[i].v != (int64_t)i + 1)
			BAD("log row %zu has version %lld", i,
			    (long long)log->e[i].v);
		wstate_apply(&model, &log->e[i]);
	}

	wstate_init(&s);
	s.version = fixture_query_int(db, "SELECT version FROM meta");
	ck_assert_int_eq(sqlite3_prepare_v2(db,
					    "SELECT id, balance, version, "
					    "filler FROM accounts ORDER BY id",
					    -1, &st, NULL),
			 SQLITE_OK);
	rows = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);

		if (id != rows + 1 || rows >= W_ACCOUNTS)
			BAD("account row %d has id %lld", rows, (long long)id);
		s.bal[rows] = sqlite3_column_int64(st, 1);
		s.ver[rows] = sqlite3_column_int64(st, 2);
		if (sqlite3_column_bytes(st, 3) != W_FILLER ||
		    !pfx_pattern_ok(sqlite3_column_blob(st, 3), W_FILLER,
				    W_FILLER_STAMP + id))
			BAD("account %lld: the filler is not its pattern",
			    (long long)id);
		rows++;
	}
	ck_assert_int_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	st = NULL;
	if (rows != W_ACCOUNTS)
		BAD("%d accounts", rows);

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT id, ver, v FROM pad", -1, &st, NULL),
	    SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		int64_t ver = sqlite3_column_int64(st, 1);
		int64_t len = sqlite3_column_bytes(st, 2);

		if (id < 0 || id >= W_PAD)
			BAD("pad row id %lld", (long long)id);
		s.pad_ver[id] = ver;
		s.pad_len[id] = len;
		if (!pfx_pattern_ok(sqlite3_column_blob(st, 2), len, ver))
			BAD("pad %lld (version %lld, %lld bytes): the blob is "
			    "not its pattern",
			    (long long)id, (long long)ver, (long long)len);
	}
	ck_assert_int_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	st = NULL;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT id, ver, v FROM big", -1, &st, NULL),
	    SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 0) != 1)
			BAD("big row id %lld",
			    (long long)sqlite3_column_int64(st, 0));
		s.big_ver = sqlite3_column_int64(st, 1);
		s.big_len = sqlite3_column_bytes(st, 2);
		if (!pfx_pattern_ok(sqlite3_column_blob(st, 2), s.big_len,
				    s.big_ver))
			BAD("big (version %lld): the blob is not its pattern",
			    (long long)s.big_ver);
	}
	ck_assert_int_eq(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	st = NULL;

	if (s.version != (int64_t)log->n)
		BAD("meta says version %lld, the log holds %zu transactions",
		    (long long)s.version, log->n);
	for (i = 0; i < W_ACCOUNTS; i++) {
		if (s.bal[i] != model.bal[i] || s.ver[i] != model.ver[i])
			BAD("version %lld: account %zu is %lld (version %lld), "
			    "its log says %lld (version %lld)",
			    (long long)s.version, i + 1, (long long)s.bal[i],
			    (long long)s.ver[i], (long long)model.bal[i],
			    (long long)model.ver[i]);
	}
	for (i = 0; i < W_PAD; i++) {
		if (s.pad_ver[i] != model.pad_ver[i] ||
		    s.pad_len[i] != model.pad_len[i])
			BAD("version %lld: pad %zu is version %lld (%lld "
			    "bytes), its log says %lld (%lld bytes)",
			    (long long)s.version, i, (long long)s.pad_ver[i],
			    (long long)s.pad_len[i],
			    (long long)model.pad_ver[i],
			    (long long)model.pad_len[i]);
	}
	if (s.big_ver != model.big_ver || s.big_len != model.big_len)
		BAD("version %lld: big is version %lld (%lld bytes), its log "
		    "says %lld (%lld bytes)",
		    (long long)s.version, (long long)s.big_ver,
		    (long long)s.big_len, (long long)model.big_ver,
		    (long long)model.big_len);
done:
	sqlite3_finalize(st);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	return out;
}

#undef BAD

/* local is a prefix of the primary's log: the same transactions. */
static void assert_log_prefix(const struct wlog *local,
			      const struct wlog *primary, const char *what)
{
	size_t i;

	ck_assert_msg(local->n <= primary->n,
		      "%s: the file holds version %zu, the primary only %zu: "
		      "a transaction the primary does not have",
		      what, local->n, primary->n);
	for (i = 0; i < local->n; i++) {
		const struct wtxn *a = &local->e[i], *b = &primary->e[i];

		ck_assert_msg(
		    a->v == b->v && a->kind == b->kind &&
			a->writer == b->writer && a->nonce == b->nonce &&
			a->pad_len == b->pad_len && a->big_len == b->big_len &&
			a->autoc == b->autoc,
		    "%s: version %lld is transaction %lld of writer %d "
		    "locally, transaction %lld of writer %d on the primary: a "
		    "transaction the primary does not have",
		    what, (long long)a->v, (long long)a->nonce, a->writer,
		    (long long)b->nonce, b->writer);
	}
}

/* Open path with plain SQLite; intact and self-consistent.  Returns its
 * version (-1: empty, if allowed) with its log in *log. */
static int64_t check_plain(const char *path, int allow_empty,
			   int checkpoint_on_close, const char *what, void *arg)
{
	struct wlog *log = arg;
	sqlite3 *db = pfx_open_plain(path, checkpoint_on_close, what);
	char why[512];
	int rc = w_read_check(db, log, why, sizeof why);

	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	if (rc == WS_EMPTY) {
		ck_assert_msg(allow_empty,
			      "%s: the database is empty, but its state file "
			      "says it holds frames of the primary",
			      what);
		return -1;
	}
	ck_assert_msg(rc == WS_OK, "%s: %s", what, why);
	return (int64_t)log->n;
}

/* ---------------------------------------------------------------------- */
/* the writer on the primary (Hrana), a thread */

struct hwriter {
	const char *url;
	struct http_client *http;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	uint64_t rng;
	int run, stop, in_txn, failed;
	int64_t commits;
	char err[512];
};

static void *hwriter_main(void *arg)
{
	struct hwriter *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct wtxn t;
		char err[512], *sql;
		long pause;
		int rc;

		while (!w->stop && (!w->run || w->failed))
			pthread_cond_wait(&w->cond, &w->mu);
		if (w->stop)
			break;
		w_make(&w->rng, &t,
		       pfx_rnd(&w->rng) % 5 == 0 ? K_MEDIUM : K_SMALL,
		       WRITER_HRANA);
		pause = 5 + (long)(pfx_rnd(&w->rng) % 40);
		w->in_txn = 1;
		pthread_mutex_unlock(&w->mu);
		sql = w_auto_sql(&t);
		rc = pfx_primary_run(w->http, sql, 0, NULL, err, sizeof err);
		sqlite3_free(sql);
		pthread_mutex_lock(&w->mu);
		w->in_txn = 0;
		if (rc != 0) {
			w->failed = 1;
			snprintf(w->err, sizeof w->err, "%s", err);
		} else {
			w->commits++;
		}
		pthread_cond_broadcast(&w->cond);
		if (w->run && !w->stop) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += pause * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&w->cond, &w->mu, &ts);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static struct hwriter *hwriter_start(const char *url, uint64_t seed)
{
	struct hwriter *w = calloc(1, sizeof *w);

	ck_assert_ptr_nonnull(w);
	w->url = url;
	w->http = pfx_primary_client(url);
	w->rng = seed * 2 + 1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
	ck_assert_int_eq(pthread_create(&w->thread, NULL, hwriter_main, w), 0);
	return w;
}

static void hwriter_set(struct hwriter *w, int run)
{
	pthread_mutex_lock(&w->mu);
	w->run = run;
	pthread_cond_broadcast(&w->cond);
	while (!run && w->in_txn)
		pthread_cond_wait(&w->cond, &w->mu);
	ck_assert_msg(!w->failed, "the writer on the primary failed: %s",
		      w->err);
	pthread_mutex_unlock(&w->mu);
}

static void hwriter_stop(struct hwriter *w)
{
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	http_client_free(w->http);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w);
}

/* ---------------------------------------------------------------------- */
/* the trials */

struct crash_stats {
	int trials, fresh, two, targeted, targeted_hit, with_hrana, with_rival;
	int no_file, empty, hwm_ahead, advanced, late_commits;
	int killed_in_commit, killed_in_big_commit;
	int pending_nowhere, pending_primary_only, pending_both;
	int64_t child_commits, child_big_commits, child_lost, child_acked;
	int big_acked, big_ms_sum, big_ms_max, quiet;
	int64_t versions_recovered;
};

/* What a dead writer said: the commit in flight when it died (if any). */
struct child_report {
	int commits, lost;
	int big_commits, big_ms_sum, big_ms_max; /* commit durations */
	int pending;
	int64_t pending_nonce;
	int pending_kind;
	int64_t *acked;   /* nonces of commits that returned SQLITE_OK */
	int64_t *refused; /* nonces of commits that returned BUSY */
	int n_acked, n_refused;
};

static void report_line(struct child_report *r, const char *line)
{
	long long nonce;
	int kind;

	if (sscanf(line, "P %lld %d", &nonce, &kind) == 2) {
		r->pending = 1;
		r->pending_nonce = nonce;
		r->pending_kind = kind;
	} else if (line[0] == 'D') {
		r->commits++;
		if (r->pending && r->pending_kind == K_BIG) {
			int ms = atoi(line + 1);

			r->big_commits++;
			r->big_ms_sum += ms;
			r->big_ms_max = ms > r->big_ms_max ? ms : r->big_ms_max;
		}
		if (r->pending) {
			r->acked = realloc(r->acked, (size_t)(r->n_acked + 1) *
							 sizeof *r->acked);
			r->acked[r->n_acked++] = r->pending_nonce;
		}
		r->pending = 0;
	} else if (line[0] == 'B') {
		r->lost++;
		if (r->pending) {
			r->refused =
			    realloc(r->refused, (size_t)(r->n_refused + 1) *
						    sizeof *r->refused);
			r->refused[r->n_refused++] = r->pending_nonce;
		}
		r->pending = 0;
	}
}

static void rival_cmd(struct pfx_proc *rival, char c)
{
	char line[64];

	pfx_proc_send(rival, "%c\n", c);
	if (c == 'p') {
		ck_assert_msg(pfx_proc_line(rival, line, sizeof line, 60000),
			      "the rival replica died");
		ck_assert_str_eq(line, "paused");
	}
}

START_TEST(test_crash_safety)
{
	int trials = pfx_env_int("REPLITE_CRASH_TRIALS", 50);
	uint64_t seed = pfx_seed_from_env(), rng;
	struct crash_stats cs = {0};
	struct rfx_env env;
	char *copy_path, *log, *rival_path;
	char path[1024], state_path[1100], what[160];
	char seed_text[32], line[256], *schema;
	double started = pfx_now_s();
	int64_t before = -1;
	uint8_t *recovered;
	struct hwriter *hw;
	struct pfx_proc rival;
	int t, status;

	signal(SIGPIPE, SIG_IGN);
	rng = seed | 1;
	printf("crash safety of writes: %d trials, seed %llu "
	       "(REPLITE_CRASH_TRIALS, REPLITE_SAFETY_SEED)\n",
	       trials, (unsigned long long)seed);
	fflush(stdout);
	rfx_env_start(&env, NULL);
	schema = w_schema_sql();
	rfx_primary_exec(env.srv.url, schema);
	sqlite3_free(schema);
	copy_path = fixture_path(env.dir, "copy.db");
	log = fixture_path(env.dir, "children.log");
	rival_path = fixture_path(env.dir, "rival.db");
	snprintf(seed_text, sizeof seed_text, "%llu",
		 (unsigned long long)(seed + 99));
	{
		const char *args[] = {"--rival", rival_path, env.srv.url,
				      seed_text, NULL};
		pfx_proc_start(&rival, args, log);
	}
	hw = hwriter_start(env.srv.url, seed);
	recovered = calloc(1 << 20, 1);
	ck_assert_ptr_nonnull(recovered);
	path[0] = '\0';

	for (t = 0; t < trials; t++) {
		int fresh = t % 6 == 0;
		int two = t % 5 == 3;
		int targeted = !two && t % 4 == 1;
		/* Some trials without other writers: large transactions
		 * rarely win a race against them. */
		int quiet = t % 8 == 5;
		int use_hrana = !quiet && t % 3 != 1;
		int use_rival = !quiet && t % 3 != 0;
		struct child_report rep[2];
		struct pfx_proc kid[2];
		struct wlog plog, llog, clog;
		struct replica_state st = {0};
		int n_kids = two ? 2 : 1, loaded, allow_empty, k, rc;
		int64_t v_orig, primary_v;
		long delay[2];
		pid_t pids[2];
		char *ptext, *pd, *rd, err[512];
		sqlite3 *db;
		size_t i;

		if (fresh) {
			if (path[0] != '\0')
				pfx_remove_db_files(path);
			snprintf(path, sizeof path, "%s/r%d.db", env.dir, t);
			before = -1;
			cs.fresh++;
		}
		snprintf(state_path, sizeof state_path, "%s-replite", path);
		cs.two += two;
		cs.with_hrana += use_hrana;
		cs.with_rival += use_rival;
		cs.targeted += targeted;
		cs.quiet += quiet;

		/* Others write while the replica process writes. */
		if (use_hrana)
			hwriter_set(hw, 1);
		if (use_rival)
			rival_cmd(&rival, 'r');
		rfx_sleep_ms((long)(pfx_rnd(&rng) % 30));
		memset(rep, 0, sizeof rep);
		for (k = 0; k < n_kids; k++) {
			char writer[16], kseed[32];
			const char *args[] = {
			    "--crash-writer",
			    path,
			    env.srv.url,
			    writer,
			    kseed,
			    pfx_rnd(&rng) % 3 == 0 ? "sync_interval=0" : "-",
			    targeted ? "big" : "-",
			    NULL};

			snprintf(writer, sizeof writer, "%d",
				 WRITER_CHILD0 + 2 * t + k);
			snprintf(kseed, sizeof kseed, "%llu",
				 (unsigned long long)pfx_rnd(&rng));
			pfx_proc_start(&kid[k], args, log);
			delay[k] = (long)(pfx_rnd(&rng) % 301);
		}
		if (targeted) {
			/* Kill it while it commits a transaction larger
			 * than one push request. */
			double until = pfx_now_s() + 10;

			while (pfx_now_s() < until &&
			       pfx_proc_line(
				   &kid[0], line, sizeof line,
				   (int)((until - pfx_now_s()) * 1000) + 1)) {
				report_line(&rep[0], line);
				if (rep[0].pending &&
				    rep[0].pending_kind == K_BIG) {
					cs.targeted_hit++;
					break;
				}
			}
			delay[0] = (long)(pfx_rnd(&rng) % 120);
		} else if (t % 2 == 0) {
			/* Half of the trials count the delay from the open,
			 * so that the kills land among commits however long
			 * the open takes (AddressSanitizer, a loaded machine);
			 * the others also kill during the open. */
			double until = pfx_now_s() + 10;

			while (pfx_now_s() < until &&
			       pfx_proc_line(
				   &kid[0], line, sizeof line,
				   (int)((until - pfx_now_s()) * 1000) + 1)) {
				report_line(&rep[0], line);
				if (line[0] == 'O')
					break;
			}
		}
		for (k = 0; k < n_kids; k++)
			pids[k] = kid[k].pid;
		snprintf(what, sizeof what, "trial %d: a writer", t);
		pfx_kill_after(pids, delay, n_kids, what, log);
		for (k = 0; k < n_kids; k++) {
			while (pfx_proc_line(&kid[k], line, sizeof line, 0))
				report_line(&rep[k], line);
			close(kid[k].to);
			close(kid[k].from);
		}
		if (use_hrana)
			hwriter_set(hw, 0);
		if (use_rival)
			rival_cmd(&rival, 'p');

		/* The primary, still now. */
		ptext = pfx_primary_text(env.srv.url, W_LOG_SQL);
		wlog_parse(ptext, &plog);
		free(ptext);
		primary_v = (int64_t)plog.n;

		/* What the dead processes left. */
		loaded = pfx_left_state(state_path, t, &st, &allow_empty);
		cs.hwm_ahead += loaded == 0 && st.frame_hwm > st.frame_no;
		replica_state_free(&st);
		memset(&llog, 0, sizeof llog);
		memset(&clog, 0, sizeof clog);
		cs.no_file += !pfx_file_exists(path);
		v_orig =
		    pfx_check_crashed(path, copy_path, t, loaded, allow_empty,
				      before, check_plain, &clog, &llog);
		/* (iii) only transactions the primary has. */
		snprintf(what, sizeof what, "trial %d: after the kill", t);
		assert_log_prefix(&clog, &plog, what);
		assert_log_prefix(&llog, &plog, what);
		cs.empty += v_orig < 0;
		cs.advanced += v_orig > before;
		if (v_orig >= 0 && v_orig < (1 << 20) && !recovered[v_orig]) {
			recovered[v_orig] = 1;
			cs.versions_recovered++;
		}

		/* What the writers were told, against the primary: a commit
		 * that returned SQLITE_OK is there, one refused is not. */
		for (k = 0; k < n_kids; k++) {
			struct child_report *r = &rep[k];
			int j;

			for (j = 0; j < r->n_acked; j++)
				ck_assert_msg(
				    wlog_has_nonce(&plog, r->acked[j]),
				    "trial %d: transaction %lld returned "
				    "SQLITE_OK but the primary does not have "
				    "it",
				    t, (long long)r->acked[j]);
			for (j = 0; j < r->n_refused; j++)
				ck_assert_msg(
				    !wlog_has_nonce(&plog, r->refused[j]),
				    "trial %d: transaction %lld failed with "
				    "SQLITE_BUSY but the primary has it",
				    t, (long long)r->refused[j]);
			cs.child_acked += r->n_acked;
			cs.big_acked += r->big_commits;
			cs.big_ms_sum += r->big_ms_sum;
			if (r->big_ms_max > cs.big_ms_max)
				cs.big_ms_max = r->big_ms_max;
			cs.child_lost += r->lost;
			if (r->pending) {
				int on_primary =
				    wlog_has_nonce(&plog, r->pending_nonce);
				int local =
				    wlog_has_nonce(&llog, r->pending_nonce);

				cs.killed_in_commit++;
				cs.killed_in_big_commit +=
				    r->pending_kind == K_BIG;
				ck_assert_msg(on_primary || !local,
					      "trial %d: the file holds the "
					      "transaction being committed, "
					      "the primary does not",
					      t);
				if (!on_primary)
					cs.pending_nowhere++;
				else if (!local)
					cs.pending_primary_only++;
				else
					cs.pending_both++;
			}
			free(r->acked);
			free(r->refused);
		}
		for (i = 0; i < plog.n; i++) {
			if (plog.e[i].writer >= WRITER_CHILD0 + 2 * t) {
				cs.child_commits++;
				cs.child_big_commits += plog.e[i].kind == K_BIG;
			}
		}

		/* (iv) reopened as a replica and synced: exactly the
		 * primary.  A request a killed writer had sent may still
		 * commit on the primary after the kill: compare with the
		 * primary as it is after the sync, syncing again if it
		 * moved meanwhile. */
		db = rfx_open(path, env.srv.url, "sync_interval=0");
		snprintf(what, sizeof what, "trial %d: synced again", t);
		for (k = 0;; k++) {
			struct wlog pnow;
			int same;

			rfx_sync(db);
			ptext = pfx_primary_text(env.srv.url, W_LOG_SQL);
			wlog_parse(ptext, &pnow);
			free(ptext);
			pd = pfx_primary_text(env.srv.url, W_DIGEST_SQL);
			rd = pfx_local_text(db, W_DIGEST_SQL);
			wlog_free(&llog);
			rc = w_read_check(db, &llog, err, sizeof err);
			same = rc == WS_OK && llog.n == pnow.n &&
			       strcmp(pd, rd) == 0;
			if (same || k == 4) {
				ck_assert_msg(rc == WS_OK, "%s: %s", what, err);
				/* The primary's history only grows. */
				assert_log_prefix(&plog, &pnow,
						  "the primary's log");
				assert_log_prefix(&llog, &pnow, what);
				ck_assert_msg(llog.n == pnow.n,
					      "%s: version %zu, the primary is "
					      "at %zu",
					      what, llog.n, pnow.n);
				ck_assert_msg(strcmp(pd, rd) == 0,
					      "%s: the replica differs from "
					      "the primary:\nreplica "
					      "%.400s\nprimary %.400s",
					      what, rd, pd);
				cs.late_commits += pnow.n > plog.n;
				primary_v = (int64_t)pnow.n;
			}
			free(pd);
			free(rd);
			wlog_free(&pnow);
			if (same || k == 4)
				break;
			rfx_sleep_ms(50);
		}
		fixture_assert_integrity(db);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
		before = primary_v;
		wlog_free(&llog);
		wlog_free(&clog);
		wlog_free(&plog);
		cs.trials++;
	}

	/* The rival's replica, and the primary's own content. */
	status = pfx_proc_finish(&rival);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the rival ended with status %d: %s", status,
		      pfx_slurp(log));
	{
		sqlite3 *db =
		    rfx_open(rival_path, env.srv.url, "sync_interval=0");
		struct wlog l;
		char *pd, *rd, *sql, *p1, *p2, *p3, why[512];

		rfx_sync(db);
		ck_assert_msg(w_read_check(db, &l, why, sizeof why) == WS_OK,
			      "the rival's replica: %s", why);
		pd = pfx_primary_text(env.srv.url, W_DIGEST_SQL);
		rd = pfx_local_text(db, W_DIGEST_SQL);
		ck_assert_str_eq(pd, rd);
		p1 = pattern("length(v)", "ver");
		p2 = pattern("900", "1000000 + id");
		sql = sqlite3_mprintf(
		    "SELECT (SELECT count(*) FROM pad WHERE v IS NOT %s) + "
		    "(SELECT count(*) FROM big WHERE v IS NOT %s) + (SELECT "
		    "count(*) FROM accounts WHERE filler IS NOT %s)",
		    p1, p1, p2);
		p3 = pfx_primary_text(env.srv.url, sql);
		ck_assert_msg(strcmp(p3, "0") == 0,
			      "the primary holds %s blobs that are not their "
			      "pattern",
			      p3);
		free(pd);
		pd = pfx_primary_text(env.srv.url, "PRAGMA integrity_check");
		ck_assert_str_eq(pd, "ok");
		printf("  primary: %zu transactions (%lld over Hrana)\n", l.n,
		       (long long)hw->commits);
		sqlite3_free(sql);
		sqlite3_free(p1);
		sqlite3_free(p2);
		free(p3);
		free(pd);
		free(rd);
		wlog_free(&l);
		ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
	}
	printf("  %d trials in %.1f s: %d fresh files, %d with two writer "
	       "processes on the file, %d with the Hrana writer, %d with a "
	       "rival replica, %d with neither; %d targeted at a big commit "
	       "(%d found it)\n",
	       cs.trials, pfx_now_s() - started, cs.fresh, cs.two,
	       cs.with_hrana, cs.with_rival, cs.quiet, cs.targeted,
	       cs.targeted_hit);
	printf("  killed writers committed %lld transactions on the primary "
	       "(%lld larger than one push request), %lld returned "
	       "SQLITE_OK before the kill, %lld lost a race "
	       "(SQLITE_BUSY*)\n",
	       (long long)cs.child_commits, (long long)cs.child_big_commits,
	       (long long)cs.child_acked, (long long)cs.child_lost);
	if (cs.big_acked > 0)
		printf("  big commits (%d seen by the writer) took %d ms on "
		       "average, %d at most, from the commit hook to "
		       "SQLITE_OK\n",
		       cs.big_acked, cs.big_ms_sum / cs.big_acked,
		       cs.big_ms_max);
	printf("  kills during a commit: %d (%d of a big one): %d before the "
	       "primary had it, %d after the primary had it but before the "
	       "file did, %d after both had it\n",
	       cs.killed_in_commit, cs.killed_in_big_commit, cs.pending_nowhere,
	       cs.pending_primary_only, cs.pending_both);
	printf("  after the kill: %d no file yet, %d empty, %d with frame_hwm "
	       "> frame_no, %d advanced during the trial, %lld distinct "
	       "versions recovered; %d trials where the primary committed a "
	       "dead writer's request after the kill\n",
	       cs.no_file, cs.empty, cs.hwm_ahead, cs.advanced,
	       (long long)cs.versions_recovered, cs.late_commits);
	fflush(stdout);
	ck_assert_int_eq(cs.trials, trials);
	if (trials >= 20) {
		/* Not vacuous (a loose bound: a loaded machine, or ASan,
		 * fits fewer commits into the trials). */
		ck_assert_int_ge(cs.child_commits, 5);
		ck_assert_int_ge(cs.killed_in_commit, 1);
		ck_assert_int_ge(cs.advanced, 1);
	}
	hwriter_stop(hw);
	free(recovered);
	free(copy_path);
	free(rival_path);
	free(log);
	rfx_env_stop(&env);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 7 && strcmp(argv[1], "--alt-child") == 0)
		return alt_child_main(argv[2], argv[3], atoi(argv[4]),
				      strtoull(argv[5], NULL, 10), argv[6]);
	if (argc == 7 && strcmp(argv[1], "--counter-child") == 0)
		return counter_child_main(argv[2], argv[3], atoi(argv[4]),
					  strtoull(argv[5], NULL, 10), argv[6]);
	if (argc == 8 && strcmp(argv[1], "--crash-writer") == 0)
		return crash_writer_main(argv[2], argv[3], atoi(argv[4]),
					 strtoull(argv[5], NULL, 10), argv[6],
					 strcmp(argv[7], "big") == 0);
	if (argc == 5 && strcmp(argv[1], "--rival") == 0)
		return rival_main(argv[2], argv[3],
				  strtoull(argv[4], NULL, 10));
	s = suite_create("replica_write_safety");
	tc = tcase_create("converge");
	tcase_set_timeout(tc, 200);
	tcase_add_test(tc, test_two_replicas_converge);
	suite_add_tcase(s, tc);
	tc = tcase_create("counter");
	tcase_set_timeout(tc, 200);
	tcase_add_test(tc, test_no_lost_updates_own_files);
	tcase_add_test(tc, test_no_lost_updates_shared_file);
	suite_add_tcase(s, tc);
	tc = tcase_create("crashes");
	tcase_set_timeout(tc, 280);
	tcase_add_test(tc, test_crash_safety);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
