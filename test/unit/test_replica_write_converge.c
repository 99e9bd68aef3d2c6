/* Safety of the replica's write path against a real primary (DESIGN.md §3
 * "Write path", issue 4): convergence.  Two replicas (separate files,
 * separate processes) take turns writing (inserts, updates, deletes, DDL,
 * VACUUM; explicit transactions and autocommit; one replica with live sync,
 * one without); after each turn the writer's local state equals the
 * primary's (the write is visible locally and durable on the primary when
 * it returns); at the end both files and the primary hold the same rows,
 * compared row by row, and pass PRAGMA integrity_check.
 *
 * The other safety suites of the write path: test_replica_write_lost_updates
 * (no lost updates across processes) and test_replica_write_safety (crash
 * safety); their shared helpers: replica_write_safety_helpers.h.
 *
 * The writers run this same executable (see main). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <sqlite3.h>

#include "fixture.h"
#include "process_fixture.h"
#include "replica_fixture.h"
#include "replica_write_safety_helpers.h"

/* ---------------------------------------------------------------------- */
/* common helpers */

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
				if (!rws_is_busy(rc) || ++*retries > 1000) {
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
		if (!rws_is_busy(rc) || ++*retries > 1000)
			return -1;
	}
}

/* ====================================================================== */
/* two replicas writing alternately converge */

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

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 7 && strcmp(argv[1], "--alt-child") == 0)
		return alt_child_main(argv[2], argv[3], atoi(argv[4]),
				      strtoull(argv[5], NULL, 10), argv[6]);
	s = suite_create("replica_write_converge");
	tc = tcase_create("converge");
	tcase_set_timeout(tc, 200);
	tcase_add_test(tc, test_two_replicas_converge);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
