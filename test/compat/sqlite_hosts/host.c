/* A minimal SQLite host program for the extension's compatibility tests:
 * build.sh compiles it together with one SQLite amalgamation (3.31.1, 3.34.0,
 * the newest, ...), so the extension runs inside exactly that SQLite, as it
 * does inside programs that bundle their own (better-sqlite3, ...).
 *
 *   host EXTENSION [COMMAND...]
 *
 * Loads EXTENSION (a path; "-" loads nothing) into a ":memory:" connection,
 * then runs COMMANDs (or, with none, the lines of stdin, each as soon as it
 * is read):
 *
 *   .open URI     open URI (sqlite3_open_v2 with SQLITE_OPEN_URI), closing
 *                 the database open before
 *   .close        close the open database
 *   .sleep MS     wait MS milliseconds
 *   -- ...        (and empty lines) ignored
 *   anything else SQL (one or more statements) on the open database
 *
 * Prints one JSON object per step on stdout, flushed at once (a crash leaves
 * every finished step behind):
 *
 *   {"step":"host","libversion":"3.31.1","sourceid":"...","threadsafe":1}
 *   {"step":"load","path":"...","rc":0,"ok":true,"error":null}
 *   {"step":"open","uri":"...","rc":0,"ok":true,"error":null}
 *   {"step":"sql","sql":"...","rc":0,"ok":true,"error":null,"rows":[[1,"a"]]}
 *   {"step":"close","rc":0,"ok":true,"error":null}
 *   {"step":"done","failed":0}
 *
 * Values: integers and reals as numbers, text as strings, blobs as
 * "x'HEX'", NULL as null.  Messages of sqlite3_log() go to stderr.  Exit
 * status: 0 when every step succeeded, 1 otherwise (a failed load does not
 * stop the script). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sqlite3.h"

static int failed;

static void json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", stdout);
			break;
		case '\\':
			fputs("\\\\", stdout);
			break;
		case '\n':
			fputs("\\n", stdout);
			break;
		case '\r':
			fputs("\\r", stdout);
			break;
		case '\t':
			fputs("\\t", stdout);
			break;
		default:
			if (*p < 0x20)
				printf("\\u%04x", *p);
			else
				putchar(*p);
		}
	}
	putchar('"');
}

/* Ends a step's line: its result code and error text. */
static void end_step(int rc, const char *error)
{
	int ok = rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW;

	if (!ok)
		failed++;
	printf(",\"rc\":%d,\"ok\":%s,\"error\":", rc, ok ? "true" : "false");
	json_string(ok ? NULL : error);
	puts("}");
	fflush(stdout);
}

static void log_to_stderr(void *arg, int code, const char *msg)
{
	(void)arg;
	fprintf(stderr, "sqlite3_log(%d): %s\n", code, msg);
	fflush(stderr);
}

static void print_value(sqlite3_stmt *stmt, int i)
{
	const unsigned char *b;
	int n, k;

	switch (sqlite3_column_type(stmt, i)) {
	case SQLITE_INTEGER:
		printf("%lld", (long long)sqlite3_column_int64(stmt, i));
		break;
	case SQLITE_FLOAT:
		printf("%.17g", sqlite3_column_double(stmt, i));
		break;
	case SQLITE_TEXT:
		json_string((const char *)sqlite3_column_text(stmt, i));
		break;
	case SQLITE_BLOB:
		b = sqlite3_column_blob(stmt, i);
		n = sqlite3_column_bytes(stmt, i);
		fputs("\"x'", stdout);
		for (k = 0; k < n; k++)
			printf("%02X", b[k]);
		fputs("'\"", stdout);
		break;
	default:
		fputs("null", stdout);
	}
}

/* Runs every statement of sql, printing their rows; stops at the first
 * error. */
static void run_sql(sqlite3 *db, const char *sql)
{
	const char *tail = sql;
	sqlite3_stmt *stmt;
	int rc = SQLITE_OK, nrows = 0, i, n;

	printf("{\"step\":\"sql\",\"sql\":");
	json_string(sql);
	fputs(",\"rows\":[", stdout);
	if (db == NULL) {
		fputs("]", stdout);
		end_step(SQLITE_MISUSE, "no database is open");
		return;
	}
	while (rc == SQLITE_OK && tail != NULL && *tail != '\0') {
		stmt = NULL;
		rc = sqlite3_prepare_v2(db, tail, -1, &stmt, &tail);
		if (rc != SQLITE_OK || stmt == NULL)
			break; /* an error, or only whitespace or comments left
				*/
		n = sqlite3_column_count(stmt);
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			fputs(nrows++ ? ",[" : "[", stdout);
			for (i = 0; i < n; i++) {
				if (i > 0)
					putchar(',');
				print_value(stmt, i);
			}
			putchar(']');
		}
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
		sqlite3_finalize(stmt);
	}
	putchar(']');
	end_step(rc == SQLITE_OK ? SQLITE_OK : sqlite3_extended_errcode(db),
		 sqlite3_errmsg(db));
}

static void close_db(sqlite3 **db)
{
	int rc;

	if (*db == NULL)
		return;
	rc = sqlite3_close(*db);
	printf("{\"step\":\"close\"");
	end_step(rc, sqlite3_errstr(rc));
	if (rc == SQLITE_OK)
		*db = NULL;
}

static void open_db(sqlite3 **db, const char *uri)
{
	int rc;

	close_db(db);
	rc = sqlite3_open_v2(
	    uri, db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
	printf("{\"step\":\"open\",\"uri\":");
	json_string(uri);
	if (rc != SQLITE_OK) {
		end_step(*db ? sqlite3_extended_errcode(*db) : rc,
			 *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		sqlite3_close(*db);
		*db = NULL;
		return;
	}
	end_step(rc, NULL);
}

static void pause_ms(const char *arg)
{
	long ms = strtol(arg, NULL, 10);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	printf("{\"step\":\"sleep\",\"ms\":%ld", ms);
	end_step(SQLITE_OK, NULL);
}

static void run_command(sqlite3 **db, char *line)
{
	size_t n = strlen(line);

	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	while (*line == ' ' || *line == '\t')
		line++;
	if (*line == '\0' || strncmp(line, "--", 2) == 0)
		return;
	if (strncmp(line, ".open ", 6) == 0)
		open_db(db, line + 6);
	else if (strcmp(line, ".close") == 0)
		close_db(db);
	else if (strncmp(line, ".sleep ", 7) == 0)
		pause_ms(line + 7);
	else
		run_sql(*db, line);
}

static void load_extension(sqlite3 *mem, const char *path)
{
	char *err = NULL;
	int rc;

	printf("{\"step\":\"load\",\"path\":");
	json_string(path);
	rc = sqlite3_enable_load_extension(mem, 1);
	if (rc == SQLITE_OK)
		rc = sqlite3_load_extension(mem, path, NULL, &err);
	end_step(rc, err ? err : sqlite3_errmsg(mem));
	sqlite3_free(err);
}

int main(int argc, char **argv)
{
	sqlite3 *mem = NULL, *db = NULL;
	char *line = NULL;
	size_t cap = 0;
	int i, rc;

	if (argc < 2) {
		fprintf(stderr, "usage: %s EXTENSION|- [COMMAND...]\n",
			argv[0]);
		return 2;
	}
	sqlite3_config(SQLITE_CONFIG_LOG, log_to_stderr, NULL);
	printf("{\"step\":\"host\",\"libversion\":");
	json_string(sqlite3_libversion());
	printf(",\"sourceid\":");
	json_string(sqlite3_sourceid());
	printf(",\"threadsafe\":%d}\n", sqlite3_threadsafe());
	fflush(stdout);

	rc = sqlite3_open(":memory:", &mem);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "cannot open :memory: (%s)\n",
			sqlite3_errstr(rc));
		return 2;
	}
	if (strcmp(argv[1], "-") != 0)
		load_extension(mem, argv[1]);

	if (argc > 2) {
		for (i = 2; i < argc; i++)
			run_command(&db, argv[i]);
	} else {
		while (getline(&line, &cap, stdin) != -1)
			run_command(&db, line);
		free(line);
	}
	close_db(&db);
	sqlite3_close(mem);
	printf("{\"step\":\"done\",\"failed\":%d}\n", failed);
	fflush(stdout);
	return failed ? 1 : 0;
}
