/* The C side of the replica benchmarks (bench/replica.mjs, write.mjs and
 * offline.mjs run it), linking the replica directly (replite_register) with
 * the system SQLite.
 *
 *   replica_bench reads SYNC_URL DIR ROWS N ROUNDS
 *     Point reads (SELECT v FROM t WHERE id = ?, one prepared statement,
 *     random ids in [1, ROWS]) on four connections: a replica with
 *     sync_interval=0 (DIR/a.db), a replica with the default live sync
 *     (DIR/b.db), and a plain connection (default VFS) on each of the two
 *     files.  Each round runs N lookups on every connection, in an order
 *     that rotates between rounds; one JSON line per run.
 *
 *   replica_bench driver
 *     Connections driven by commands on stdin, one JSON answer line per
 *     command on stdout, times on CLOCK_MONOTONIC (the clock of Node's
 *     process.hrtime on Linux).  The commands apply to the current
 *     connection, slot 0 unless `conn` chose another:
 *       conn N            make slot N (0..7) the current connection
 *       open URI          open (a new replica file bootstraps here; a URI
 *                         without vfs=replite opens a stock SQLite
 *                         connection, default VFS, in the same process)
 *       exec SQL          run SQL (sqlite3_exec; e.g. a PRAGMA)
 *       text SQL          the first column of the first row, as text
 *       sync              SELECT replite_sync()
 *       status            SELECT replite_status()
 *       int SQL           the first column of the first row
 *       watch TARGET SQL  answer {"ready"}, then run SQL about every 0.1 ms
 *                         until it returns >= TARGET; answer the time seen
 *       inserts N SQL     run the write statement SQL N times in a row
 *                         (autocommit; ?1 bound to 0..N-1 when it has a
 *                         parameter), retrying at once a run that fails
 *                         with SQLITE_BUSY or SQLITE_BUSY_SNAPSHOT until
 *                         it commits; answer the elapsed ns, the retries
 *                         of each kind and each run's latency in us
 *                         (retries included)
 *       close
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "include/replite.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, sqlite3 *db)
{
	fprintf(stderr, "replica_bench: %s: %s\n", what,
		db != NULL ? sqlite3_errmsg(db) : "failed");
	exit(1);
}

/* Print s as a JSON string. */
static void json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static sqlite3 *open_uri(const char *uri, int flags, char *err, size_t len)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(uri, &db, flags | SQLITE_OPEN_URI, NULL);

	if (rc != SQLITE_OK) {
		snprintf(err, len, "open %s: %s", uri,
			 db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

/* ---------------------------------------------------------------------- */
/* reads */

struct reader {
	const char *name;
	sqlite3 *db;
	sqlite3_stmt *stmt;
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* CPU time of the calling thread: what a read costs, whatever else the
 * machine does meanwhile (wall time swings with preemption). */
static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* N lookups; returns the elapsed ns, each one's latency in lat, the
 * thread's CPU time in *cpu and a hash of the values read (the same ids give
 * the same hash on every connection). */
static uint64_t read_run(struct reader *r, long rows, long n, uint32_t *lat,
			 uint64_t *hash, uint64_t *cpu)
{
	uint64_t seed = 0x9e3779b97f4a7c15u, h = 1469598103934665603u;
	uint64_t cpu0 = thread_cpu_ns();
	uint64_t start = now_ns(), t0, t1 = start;
	long i;

	for (i = 0; i < n; i++) {
		sqlite3_int64 id = (sqlite3_int64)(xorshift(&seed) % rows) + 1;
		const unsigned char *v;
		int len;

		t0 = t1;
		sqlite3_bind_int64(r->stmt, 1, id);
		if (sqlite3_step(r->stmt) != SQLITE_ROW)
			die(r->name, r->db);
		v = sqlite3_column_text(r->stmt, 0);
		len = sqlite3_column_bytes(r->stmt, 0);
		h = (h ^ (uint64_t)len ^ (v != NULL ? v[len / 2] : 0)) *
		    1099511628211u;
		sqlite3_reset(r->stmt);
		t1 = now_ns();
		lat[i] = (uint32_t)(t1 - t0);
	}
	*hash = h;
	*cpu = thread_cpu_ns() - cpu0;
	return t1 - start;
}

/* Warm every connection up (its page cache, the OS cache), then rounds of
 * n lookups on each, in an order that rotates between rounds: one JSON
 * line per run, with the page-cache misses of the run.  Every connection
 * must read the same values.  0, or 1 after a message. */
static int interleave(struct reader *rd, int count, long rows, long n,
		      int rounds, uint32_t *lat)
{
	uint64_t expect = 0, h, cpu, ns;
	int i, k;

	for (i = 0; i < count; i++)
		read_run(&rd[i], rows, n / 4 > 0 ? n / 4 : 1, lat, &h, &cpu);
	for (k = 0; k < rounds; k++) {
		for (i = 0; i < count; i++) {
			struct reader *r = &rd[(i + k) % count];
			int misses = 0, hiwtr = 0;

			sqlite3_db_status(r->db, SQLITE_DBSTATUS_CACHE_MISS,
					  &misses, &hiwtr, 1);
			ns = read_run(r, rows, n, lat, &h, &cpu);
			sqlite3_db_status(r->db, SQLITE_DBSTATUS_CACHE_MISS,
					  &misses, &hiwtr, 1);
			if (k == 0 && i == 0)
				expect = h;
			else if (h != expect) {
				fprintf(stderr,
					"replica_bench: %s read other values "
					"than the first connection\n",
					r->name);
				return 1;
			}
			qsort(lat, (size_t)n, sizeof *lat, cmp_u32);
			printf("{\"conn\":\"%s\",\"round\":%d,\"n\":%ld,"
			       "\"ns\":%" PRIu64 ",\"cpu_ns\":%" PRIu64
			       ",\"p50_ns\":%" PRIu32 ",\"p99_ns\":%" PRIu32
			       ",\"misses\":%d}\n",
			       r->name, k, n, ns, cpu, lat[n / 2],
			       lat[(size_t)((double)n * 0.99)], misses);
			fflush(stdout);
		}
	}
	return 0;
}

static int cmd_reads(const char *url, const char *dir, long rows, long n,
		     int rounds)
{
	struct reader rd[4] = {{.name = "replica0"},
			       {.name = "replica_live"},
			       {.name = "plain0"},
			       {.name = "plain_live"}};
	const char *uris[4] = {
	    "file:%s/a.db?vfs=replite&sync_url=%s&sync_interval=0",
	    "file:%s/b.db?vfs=replite&sync_url=%s", "file:%s/a.db",
	    "file:%s/b.db"};
	uint32_t *lat = malloc((size_t)n * sizeof *lat);
	char err[1024];
	int i;

	if (lat == NULL)
		die("out of memory", NULL);
	for (i = 0; i < 4; i++) {
		char *uri = sqlite3_mprintf(uris[i], dir, url);
		/* The replicas first: they bootstrap their files. */
		int flags = i < 2 ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
				  : SQLITE_OPEN_READONLY;

		rd[i].db = open_uri(uri, flags, err, sizeof err);
		sqlite3_free(uri);
		if (rd[i].db == NULL) {
			fprintf(stderr, "replica_bench: %s\n", err);
			return 1;
		}
		if (sqlite3_prepare_v2(rd[i].db, "SELECT v FROM t WHERE id = ?",
				       -1, &rd[i].stmt, NULL) != SQLITE_OK)
			die(rd[i].name, rd[i].db);
	}
	if (interleave(rd, 4, rows, n, rounds, lat) != 0)
		return 1;
	for (i = 3; i >= 0; i--) {
		sqlite3_finalize(rd[i].stmt);
		sqlite3_close(rd[i].db);
	}
	free(lat);
	return 0;
}

/* Point reads through an encrypted and a plain replica of the same
 * primary, with a page cache of cache_kib KiB so that most reads miss it
 * and the page really comes from the file (decrypted, for the encrypted
 * one): interleaved rounds, each connection's reading-thread CPU time. */
static int cmd_enc_reads(const char *url, const char *dir, long rows, long n,
			 int rounds, long cache_kib)
{
	struct reader rd[2] = {{.name = "plain"}, {.name = "encrypted"}};
	const char *uris[2] = {
	    "file:%s/plain.db?vfs=replite&sync_url=%s&sync_interval=0",
	    "file:%s/enc.db?vfs=replite&sync_url=%s&sync_interval=0&"
	    "encryption_key=x'"
	    "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
	    "'"};
	uint32_t *lat = malloc((size_t)n * sizeof *lat);
	char err[1024], pragma[64];
	int i;

	if (lat == NULL)
		die("out of memory", NULL);
	snprintf(pragma, sizeof pragma, "PRAGMA cache_size=-%ld", cache_kib);
	for (i = 0; i < 2; i++) {
		char *uri = sqlite3_mprintf(uris[i], dir, url);
		rd[i].db =
		    open_uri(uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			     err, sizeof err);
		sqlite3_free(uri);
		if (rd[i].db == NULL) {
			fprintf(stderr, "replica_bench: %s\n", err);
			return 1;
		}
		if (sqlite3_exec(rd[i].db, pragma, NULL, NULL, NULL) !=
			SQLITE_OK ||
		    sqlite3_prepare_v2(rd[i].db, "SELECT v FROM t WHERE id = ?",
				       -1, &rd[i].stmt, NULL) != SQLITE_OK)
			die(rd[i].name, rd[i].db);
	}
	if (interleave(rd, 2, rows, n, rounds, lat) != 0)
		return 1;
	for (i = 1; i >= 0; i--) {
		sqlite3_finalize(rd[i].stmt);
		sqlite3_close(rd[i].db);
	}
	free(lat);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* driver */

static void reply_error(const char *msg)
{
	fputs("{\"ok\":false,\"error\":", stdout);
	json_string(stdout, msg);
	fputs("}\n", stdout);
	fflush(stdout);
}

/* Run sql, expecting a row; its first column as an integer (or text). */
static int query_one(sqlite3 *db, sqlite3_stmt *stmt, const char *sql,
		     sqlite3_int64 *value, char **text)
{
	sqlite3_stmt *own = NULL;
	int rc;

	if (stmt == NULL) {
		if (sqlite3_prepare_v2(db, sql, -1, &own, NULL) != SQLITE_OK)
			return -1;
		stmt = own;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		if (value != NULL)
			*value = sqlite3_column_int64(stmt, 0);
		if (text != NULL)
			*text = sqlite3_mprintf(
			    "%s", (const char *)sqlite3_column_text(stmt, 0));
	}
	if (sqlite3_reset(stmt) != SQLITE_OK)
		rc = SQLITE_ERROR;
	sqlite3_finalize(own);
	return rc == SQLITE_ROW ? 0 : -1;
}

static void cmd_watch(sqlite3 *db, char *args)
{
	struct timespec pause = {0, 20000};
	sqlite3_stmt *stmt = NULL;
	sqlite3_int64 target, v = 0;
	uint64_t deadline;
	char *sql;

	target = strtoll(args, &sql, 10);
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		reply_error(sqlite3_errmsg(db));
		return;
	}
	fputs("{\"ok\":true,\"ready\":true}\n", stdout);
	fflush(stdout);
	deadline = now_ns() + 60 * 1000000000ull;
	for (;;) {
		uint64_t t;

		if (query_one(db, stmt, NULL, &v, NULL) != 0) {
			reply_error(sqlite3_errmsg(db));
			break;
		}
		t = now_ns();
		if (v >= target) {
			printf("{\"ok\":true,\"seen_ns\":\"%" PRIu64 "\"}\n",
			       t);
			fflush(stdout);
			break;
		}
		if (t > deadline) {
			reply_error("watch: not visible after 60 s");
			break;
		}
		nanosleep(&pause, NULL);
	}
	sqlite3_finalize(stmt);
}

static void cmd_inserts(sqlite3 *db, char *args)
{
	sqlite3_stmt *stmt = NULL;
	long n, i, busy = 0, snapshot = 0;
	uint64_t start, t0, t1;
	uint32_t *lat;
	char *sql;

	n = strtol(args, &sql, 10);
	if (n <= 0) {
		reply_error("inserts: N must be positive");
		return;
	}
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		reply_error(sqlite3_errmsg(db));
		return;
	}
	lat = malloc((size_t)n * sizeof *lat);
	if (lat == NULL)
		die("out of memory", NULL);
	start = t1 = now_ns();
	for (i = 0; i < n; i++) {
		t0 = t1;
		if (sqlite3_bind_parameter_count(stmt) >= 1)
			sqlite3_bind_int64(stmt, 1, i);
		for (;;) {
			int rc = sqlite3_step(stmt), ext;

			if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
				sqlite3_reset(stmt);
				break;
			}
			ext = sqlite3_extended_errcode(db);
			sqlite3_reset(stmt);
			if (ext == SQLITE_BUSY_SNAPSHOT)
				snapshot++;
			else if ((ext & 0xff) == SQLITE_BUSY)
				busy++;
			else {
				reply_error(sqlite3_errmsg(db));
				goto out;
			}
		}
		t1 = now_ns();
		lat[i] = (uint32_t)((t1 - t0) / 1000);
	}
	printf("{\"ok\":true,\"n\":%ld,\"ns\":%" PRIu64
	       ",\"busy\":%ld,\"busy_snapshot\":%ld,\"lat_us\":[",
	       n, t1 - start, busy, snapshot);
	for (i = 0; i < n; i++)
		printf("%s%" PRIu32, i > 0 ? "," : "", lat[i]);
	fputs("]}\n", stdout);
	fflush(stdout);
out:
	free(lat);
	sqlite3_finalize(stmt);
}

#define DRIVER_SLOTS 8

static int cmd_driver(void)
{
	sqlite3 *slots[DRIVER_SLOTS] = {NULL};
	int cur = 0, i;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	while ((len = getline(&line, &cap, stdin)) > 0) {
		sqlite3 *db;
		char *args, *text = NULL;
		sqlite3_int64 v = 0;
		uint64_t t0;

		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		args = strchr(line, ' ');
		if (args != NULL)
			*args++ = '\0';
		else
			args = line + strlen(line);
		if (strcmp(line, "conn") == 0) {
			char *end;
			long n = strtol(args, &end, 10);

			if (end == args || *end != '\0' || n < 0 ||
			    n >= DRIVER_SLOTS) {
				reply_error("conn: N must be 0..7");
				continue;
			}
			cur = (int)n;
			fputs("{\"ok\":true}\n", stdout);
		} else if (strcmp(line, "open") == 0) {
			char err[1024];

			if (slots[cur] != NULL) {
				reply_error("already open");
				continue;
			}
			t0 = now_ns();
			slots[cur] = open_uri(
			    args, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    err, sizeof err);
			if (slots[cur] == NULL ||
			    query_one(slots[cur], NULL,
				      "SELECT count(*) FROM sqlite_schema", &v,
				      NULL) != 0) {
				reply_error(slots[cur] != NULL
						? sqlite3_errmsg(slots[cur])
						: err);
				sqlite3_close(slots[cur]);
				slots[cur] = NULL;
				continue;
			}
			printf("{\"ok\":true,\"ms\":%.3f}\n",
			       (double)(now_ns() - t0) / 1e6);
		} else if ((db = slots[cur]) == NULL) {
			reply_error("not open");
			continue;
		} else if (strcmp(line, "exec") == 0) {
			char *msg = NULL;

			if (sqlite3_exec(db, args, NULL, NULL, &msg) !=
			    SQLITE_OK) {
				reply_error(msg != NULL ? msg
							: sqlite3_errmsg(db));
				sqlite3_free(msg);
				continue;
			}
			fputs("{\"ok\":true}\n", stdout);
		} else if (strcmp(line, "text") == 0) {
			if (query_one(db, NULL, args, NULL, &text) != 0) {
				reply_error(sqlite3_errmsg(db));
				continue;
			}
			fputs("{\"ok\":true,\"value\":", stdout);
			json_string(stdout, text);
			fputs("}\n", stdout);
			sqlite3_free(text);
		} else if (strcmp(line, "sync") == 0) {
			t0 = now_ns();
			if (query_one(db, NULL, "SELECT replite_sync()", &v,
				      NULL) != 0) {
				reply_error(sqlite3_errmsg(db));
				continue;
			}
			printf("{\"ok\":true,\"ms\":%.3f,\"frame_no\":%lld}\n",
			       (double)(now_ns() - t0) / 1e6, (long long)v);
		} else if (strcmp(line, "status") == 0) {
			if (query_one(db, NULL, "SELECT replite_status()", NULL,
				      &text) != 0) {
				reply_error(sqlite3_errmsg(db));
				continue;
			}
			printf("{\"ok\":true,\"status\":%s}\n", text);
			sqlite3_free(text);
		} else if (strcmp(line, "int") == 0) {
			if (query_one(db, NULL, args, &v, NULL) != 0) {
				reply_error(sqlite3_errmsg(db));
				continue;
			}
			printf("{\"ok\":true,\"value\":%lld}\n", (long long)v);
		} else if (strcmp(line, "watch") == 0) {
			cmd_watch(db, args);
			continue;
		} else if (strcmp(line, "inserts") == 0) {
			cmd_inserts(db, args);
			continue;
		} else if (strcmp(line, "close") == 0) {
			t0 = now_ns();
			sqlite3_close(db);
			slots[cur] = NULL;
			printf("{\"ok\":true,\"ms\":%.3f}\n",
			       (double)(now_ns() - t0) / 1e6);
		} else {
			reply_error("unknown command");
			continue;
		}
		fflush(stdout);
	}
	free(line);
	for (i = 0; i < DRIVER_SLOTS; i++)
		sqlite3_close(slots[i]);
	return 0;
}

int main(int argc, char **argv)
{
	if (replite_register() != SQLITE_OK) {
		fprintf(stderr, "replica_bench: replite_register failed\n");
		return 1;
	}
	if (argc == 7 && strcmp(argv[1], "reads") == 0)
		return cmd_reads(argv[2], argv[3], atol(argv[4]), atol(argv[5]),
				 atoi(argv[6]));
	if (argc == 8 && strcmp(argv[1], "enc-reads") == 0)
		return cmd_enc_reads(argv[2], argv[3], atol(argv[4]),
				     atol(argv[5]), atoi(argv[6]),
				     atol(argv[7]));
	if (argc == 2 && strcmp(argv[1], "driver") == 0)
		return cmd_driver();
	fprintf(stderr, "usage: replica_bench reads SYNC_URL DIR ROWS N "
			"ROUNDS\n       replica_bench enc-reads SYNC_URL DIR "
			"ROWS N ROUNDS CACHE_KIB\n       replica_bench "
			"driver\n");
	return 2;
}
