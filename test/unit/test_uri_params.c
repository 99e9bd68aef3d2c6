/* The replica's options, read from real file names: each test opens a real
 * SQLite connection on a URI through a shim VFS whose xOpen parses the
 * zName SQLite gives it for the main database (as the replica VFS will) and
 * fails the open when the options are malformed.  The environment is a
 * table of the test, never the process environment. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fixture.h"
#include "vfs/uri_params.h"

#define SHIM_VFS "params_shim"

/* What the shim's xOpen saw for the last main database it opened. */
static struct {
	int calls;
	int rv;
	struct replica_options params;
	char err[512];
} seen;

/* The test's environment: NULL-terminated name/value pairs. */
static const char *test_env_vars[8][2];
static int test_env_lookups;

static const char *test_env(const char *name)
{
	int i;

	test_env_lookups++;
	for (i = 0; test_env_vars[i][0] != NULL; i++) {
		if (strcmp(test_env_vars[i][0], name) == 0)
			return test_env_vars[i][1];
	}
	return NULL;
}

static void set_env(int i, const char *name, const char *value)
{
	test_env_vars[i][0] = name;
	test_env_vars[i][1] = value;
}

static sqlite3_vfs shim;

static int shim_open(sqlite3_vfs *vfs, sqlite3_filename name,
		     sqlite3_file *file, int flags, int *out_flags)
{
	sqlite3_vfs *real = vfs->pAppData;

	if (flags & SQLITE_OPEN_MAIN_DB) {
		seen.calls++;
		replica_options_free(&seen.params);
		seen.err[0] = '\0';
		seen.rv = uri_params_parse(name, test_env, &seen.params,
					   seen.err, sizeof seen.err);
		if (seen.rv != 0) {
			file->pMethods = NULL;
			return SQLITE_CANTOPEN;
		}
	}
	return real->xOpen(real, name, file, flags, out_flags);
}

static char *dir;

static void write_file(const char *path, const char *text, size_t n)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fwrite(text, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

static void setup(void)
{
	sqlite3_vfs *real = sqlite3_vfs_find(NULL);

	ck_assert_ptr_nonnull(real);
	shim = *real;
	shim.zName = SHIM_VFS;
	shim.pNext = NULL;
	shim.pAppData = real;
	shim.xOpen = shim_open;
	ck_assert_int_eq(sqlite3_vfs_register(&shim, 0), SQLITE_OK);
	memset(&seen, 0, sizeof seen);
	memset(test_env_vars, 0, sizeof test_env_vars);
	test_env_lookups = 0;
	dir = fixture_tmpdir();
}

static void teardown(void)
{
	replica_options_free(&seen.params);
	sqlite3_vfs_unregister(&shim);
	fixture_rmdir(dir);
	dir = NULL;
}

/* Open file:DIR/a.db?vfs=params_shim&QUERY; returns SQLite's result code
 * with the shim's view of the file name in `seen`. */
static int open_uri(const char *query)
{
	char uri[1024];
	sqlite3 *db = NULL;
	int rc;

	snprintf(uri, sizeof uri, "file:%s/a.db?vfs=" SHIM_VFS "%s%s", dir,
		 query[0] != '\0' ? "&" : "", query);
	seen.calls = 0;
	rc = sqlite3_open_v2(
	    uri, &db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
	sqlite3_close(db);
	ck_assert_int_eq(seen.calls, 1);
	return rc;
}

static void assert_defaults_except_strings(const struct replica_options *p)
{
	ck_assert_int_eq(p->sync_interval_ms, 1000);
	ck_assert_int_eq(p->read_your_writes, 1);
	ck_assert_int_eq(p->offline, 0);
	ck_assert_int_eq(p->write_timeout_ms, 10000);
}

START_TEST(test_defaults)
{
	ck_assert_int_eq(open_uri(""), SQLITE_OK);
	ck_assert_int_eq(seen.rv, 0);
	ck_assert_ptr_null(seen.params.sync_url);
	ck_assert_ptr_null(seen.params.auth_token);
	ck_assert_ptr_null(seen.params.encryption_key);
	assert_defaults_except_strings(&seen.params);
	ck_assert_ptr_null(seen.params.tls_ca_file);
	/* The five variables were looked up (with REPLITE_OFFLINE and
	 * REPLITE_CA_FILE). */
	ck_assert_int_eq(test_env_lookups, 5);
}
END_TEST

START_TEST(test_every_parameter)
{
	ck_assert_int_eq(open_uri("sync_url=libsql://db.example.com/"
				  "&auth_token=tok.en-1"
				  "&encryption_key=s3cr%26t%20k"
				  "&sync_interval=0.5"
				  "&read_your_writes=0"
				  "&offline=1"
				  "&write_timeout=2.5"),
			 SQLITE_OK);
	ck_assert_int_eq(seen.rv, 0);
	ck_assert_str_eq(seen.params.sync_url, "https://db.example.com");
	ck_assert_str_eq(seen.params.auth_token, "tok.en-1");
	/* Percent-decoded by SQLite. */
	ck_assert_str_eq(seen.params.encryption_key, "s3cr&t k");
	ck_assert_int_eq(seen.params.sync_interval_ms, 500);
	ck_assert_int_eq(seen.params.read_your_writes, 0);
	ck_assert_int_eq(seen.params.offline, 1);
	ck_assert_int_eq(seen.params.write_timeout_ms, 2500);
}
END_TEST

/* SQLite's own URI parameters, and the application's that look like none
 * of ours, pass. */
START_TEST(test_other_parameters)
{
	ck_assert_int_eq(open_uri("sync_url=http://h&mode=rwc&cache=private"
				  "&psow=1&myapp=1&offset=3&sync=2&url=x"
				  "&token=t&interval=5"),
			 SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_str_eq(seen.params.sync_url, "http://h");
}
END_TEST

START_TEST(test_sync_url_forms)
{
	ck_assert_int_eq(open_uri("sync_url=http://127.0.0.1:8080"), SQLITE_OK);
	ck_assert_str_eq(seen.params.sync_url, "http://127.0.0.1:8080");
	ck_assert_int_eq(open_uri("sync_url=HTTPS://h.example//"), SQLITE_OK);
	ck_assert_str_eq(seen.params.sync_url, "https://h.example");
}
END_TEST

static const struct {
	const char *value;
	int64_t ms;
} durations[] = {
    {"0", 0},         {"1", 1000},
    {"0.5", 500},     {"2.25", 2250},
    {"007", 7000},    {"1.000", 1000},
    {"0.0001", 1},    {"1.0005", 1001},
    {"1.0000", 1000}, {"60", 60000},
    {"0.125", 125},   {"1.999", 1999},
    {"0.9999", 1000}, {"31536000", (int64_t)31536000 * 1000},
};

START_TEST(test_durations)
{
	char q[128];

	snprintf(q, sizeof q, "sync_interval=%s", durations[_i].value);
	ck_assert_int_eq(open_uri(q), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s: %s", q, seen.err);
	ck_assert_int_eq(seen.params.sync_interval_ms, durations[_i].ms);
	ck_assert_int_eq(seen.params.write_timeout_ms, 10000);

	if (durations[_i].ms == 0)
		return; /* write_timeout must be positive: see malformed */
	snprintf(q, sizeof q, "write_timeout=%s", durations[_i].value);
	ck_assert_int_eq(open_uri(q), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s: %s", q, seen.err);
	ck_assert_int_eq(seen.params.write_timeout_ms, durations[_i].ms);
	ck_assert_int_eq(seen.params.sync_interval_ms, 1000);
}
END_TEST

static const struct {
	const char *value;
	int b;
} booleans[] = {
    {"0", 0},  {"1", 1},   {"true", 1}, {"false", 0}, {"yes", 1}, {"no", 0},
    {"on", 1}, {"off", 0}, {"TRUE", 1}, {"Off", 0},   {"YeS", 1}, {"nO", 0},
};

START_TEST(test_booleans)
{
	char q[128];

	snprintf(q, sizeof q, "offline=%s", booleans[_i].value);
	ck_assert_int_eq(open_uri(q), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s: %s", q, seen.err);
	ck_assert_int_eq(seen.params.offline, booleans[_i].b);
	ck_assert_int_eq(seen.params.read_your_writes, 1);

	snprintf(q, sizeof q, "read_your_writes=%s", booleans[_i].value);
	ck_assert_int_eq(open_uri(q), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s: %s", q, seen.err);
	ck_assert_int_eq(seen.params.read_your_writes, booleans[_i].b);
	ck_assert_int_eq(seen.params.offline, 0);
}
END_TEST

START_TEST(test_env_fallbacks)
{
	set_env(0, "REPLITE_SYNC_URL", "libsql://env.example/");
	set_env(1, "REPLITE_AUTH_TOKEN", "env-token");
	set_env(2, "REPLITE_ENCRYPTION_KEY", "env-key");
	ck_assert_int_eq(open_uri("offline=1"), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_str_eq(seen.params.sync_url, "https://env.example");
	ck_assert_str_eq(seen.params.auth_token, "env-token");
	ck_assert_str_eq(seen.params.encryption_key, "env-key");
	ck_assert_int_eq(seen.params.offline, 1);
}
END_TEST

START_TEST(test_offline_and_conflict)
{
	/* REPLITE_OFFLINE when the URI has no offline=, which wins. */
	set_env(0, "REPLITE_OFFLINE", "yes");
	ck_assert_int_eq(open_uri(""), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_int_eq(seen.params.offline, 1);
	ck_assert_int_eq(seen.params.conflict, REPLICA_CONFLICT_REBASE);
	ck_assert_int_eq(open_uri("offline=0&conflict=DISCARD"), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_int_eq(seen.params.offline, 0);
	ck_assert_int_eq(seen.params.conflict, REPLICA_CONFLICT_DISCARD);
	ck_assert_int_eq(open_uri("conflict=rebase"), SQLITE_OK);
	ck_assert_int_eq(seen.params.conflict, REPLICA_CONFLICT_REBASE);
	/* Malformed: named, with the value and what is expected. */
	ck_assert_int_ne(open_uri("conflict=merge"), SQLITE_OK);
	ck_assert_ptr_nonnull(strstr(seen.err, "conflict 'merge'"));
	ck_assert_ptr_nonnull(strstr(seen.err, "rebase or discard"));
	set_env(0, "REPLITE_OFFLINE", "perhaps");
	ck_assert_int_ne(open_uri(""), SQLITE_OK);
	ck_assert_ptr_nonnull(strstr(seen.err, "(from REPLITE_OFFLINE)"));
	ck_assert_ptr_nonnull(strstr(seen.err, "'perhaps'"));
}
END_TEST

START_TEST(test_uri_over_env)
{
	char *uri_ca = fixture_path(dir, "uri-ca.pem");
	char query[1024];

	write_file(uri_ca, "x", 1);
	set_env(0, "REPLITE_SYNC_URL", "http://env.example");
	set_env(1, "REPLITE_AUTH_TOKEN", "env-token");
	set_env(2, "REPLITE_ENCRYPTION_KEY", "env-key");
	set_env(3, "REPLITE_CA_FILE", "/nonexistent/env-ca.pem");
	snprintf(query, sizeof query,
		 "sync_url=http://uri.example:9&auth_token=uri-token"
		 "&encryption_key=uri-key&tls_ca_file=%s",
		 uri_ca);
	ck_assert_int_eq(open_uri(query), SQLITE_OK);
	ck_assert_str_eq(seen.params.tls_ca_file, uri_ca);
	free(uri_ca);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_str_eq(seen.params.sync_url, "http://uri.example:9");
	ck_assert_str_eq(seen.params.auth_token, "uri-token");
	ck_assert_str_eq(seen.params.encryption_key, "uri-key");
	/* The environment was consulted only for what the URI lacks
	 * (offline). */
	ck_assert_int_eq(test_env_lookups, 1);
}
END_TEST

/* Empty in the URI: "none", overriding the environment.  Empty in the
 * environment: unset. */
START_TEST(test_empty_values)
{
	set_env(0, "REPLITE_AUTH_TOKEN", "env-token");
	set_env(1, "REPLITE_ENCRYPTION_KEY", "env-key");
	set_env(2, "REPLITE_SYNC_URL", "");
	ck_assert_int_eq(open_uri("auth_token=&encryption_key="), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_ptr_null(seen.params.sync_url);
	ck_assert_ptr_null(seen.params.auth_token);
	ck_assert_ptr_null(seen.params.encryption_key);

	set_env(0, "REPLITE_AUTH_TOKEN", "");
	set_env(1, "REPLITE_ENCRYPTION_KEY", "");
	ck_assert_int_eq(open_uri(""), SQLITE_OK);
	ck_assert_ptr_null(seen.params.auth_token);
	ck_assert_ptr_null(seen.params.encryption_key);
}
END_TEST

/* Without a URI (or without a name at all) only the environment counts. */
START_TEST(test_plain_and_null_names)
{
	char *path = fixture_path(dir, "plain.db?offline=maybe");
	struct replica_options p;
	char err[256];
	sqlite3 *db = NULL;

	set_env(0, "REPLITE_SYNC_URL", "http://env.example");
	ck_assert_int_eq(
	    sqlite3_open_v2(path, &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    SHIM_VFS),
	    SQLITE_OK);
	sqlite3_close(db);
	free(path);
	ck_assert_int_eq(seen.calls, 1);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_str_eq(seen.params.sync_url, "http://env.example");
	assert_defaults_except_strings(&seen.params);

	ck_assert_int_eq(uri_params_parse(NULL, test_env, &p, err, sizeof err),
			 0);
	ck_assert_str_eq(p.sync_url, "http://env.example");
	ck_assert_ptr_null(p.auth_token);
	assert_defaults_except_strings(&p);
	replica_options_free(&p);
	ck_assert_ptr_null(p.sync_url);
	/* Freeing twice (a zeroed struct) is harmless. */
	replica_options_free(&p);
}
END_TEST

/* The message the brief spells out, in full. */
START_TEST(test_sync_url_without_scheme_message)
{
	ck_assert_int_eq(open_uri("sync_url=example.com"), SQLITE_CANTOPEN);
	ck_assert_int_eq(seen.rv, -1);
	ck_assert_str_eq(seen.err,
			 "replite: sync_url 'example.com' is not a primary's "
			 "URL: it must start with http://, https:// or "
			 "libsql://");
}
END_TEST

static const struct {
	const char *query;
	const char *want[3]; /* substrings of the message */
} malformed[] = {
    {"sync_interval=abc",
     {"sync_interval 'abc'", "non-negative number of seconds", NULL}},
    {"sync_interval=-1", {"sync_interval '-1'", "non-negative", NULL}},
    {"sync_interval=1s", {"sync_interval '1s'", "is not a duration", NULL}},
    {"sync_interval=1.", {"sync_interval '1.'", "is not a duration", NULL}},
    {"sync_interval=.5", {"sync_interval '.5'", "is not a duration", NULL}},
    {"sync_interval=", {"sync_interval ''", "is not a duration", NULL}},
    {"sync_interval=1e3", {"sync_interval '1e3'", "not a duration", NULL}},
    /* The range is in the message (issue 15). */
    {"sync_interval=1e9",
     {"sync_interval '1e9'", "not a duration", "at most 31536000"}},
    /* Likely typos of our parameters are refused, naming the right one;
     * SQLite would ignore them and leave the option at its default. */
    {"syncUrl=http://h", {"unknown URI parameter 'syncUrl'", "sync_url", NULL}},
    {"sync_ur=http://h", {"'sync_ur'", "did you mean sync_url?", NULL}},
    {"authToken=t", {"'authToken'", "did you mean auth_token?", NULL}},
    {"AUTH_TOKEN=t", {"'AUTH_TOKEN'", "did you mean auth_token?", NULL}},
    {"sync-interval=1", {"'sync-interval'", "sync_interval", NULL}},
    {"syncinterval=1", {"'syncinterval'", "sync_interval", NULL}},
    {"readYourWrites=0", {"'readYourWrites'", "read_your_writes", NULL}},
    {"encryptionKey=k", {"'encryptionKey'", "encryption_key", NULL}},
    {"conflicts=rebase", {"'conflicts'", "did you mean conflict?", NULL}},
    {"ofline=1", {"'ofline'", "did you mean offline?", NULL}},
    {"write_timout=5", {"'write_timout'", "write_timeout", NULL}},
    {"tlsCaFile=/x", {"'tlsCaFile'", "did you mean tls_ca_file?", NULL}},
    {"tls_ca_fle=/x", {"'tls_ca_fle'", "did you mean tls_ca_file?", NULL}},
    {"tls_ca_file=/a&tls_ca_file=/b", {"tls_ca_file", "given 2 times", NULL}},
    {"sync_interval=%201", {"sync_interval ' 1'", "not a duration", NULL}},
    {"sync_interval=1%20", {"sync_interval '1 '", "not a duration", NULL}},
    {"sync_interval=%2B1", {"sync_interval '+1'", "not a duration", NULL}},
    {"sync_interval=0x10", {"sync_interval '0x10'", "not a duration", NULL}},
    {"sync_interval=1.2.3", {"sync_interval '1.2.3'", "not a duration", NULL}},
    {"sync_interval=31536001",
     {"sync_interval '31536001'", "too large", "at most 31536000"}},
    {"sync_interval=31536000.001",
     {"sync_interval '31536000.001'", "too large", NULL}},
    /* 2^64 + 5: would wrap to 5 without the overflow guard. */
    {"sync_interval=18446744073709551621",
     {"sync_interval '18446744073709551621'", "too large", NULL}},
    {"sync_interval=99999999999999999999999999",
     {"sync_interval '99999999999999999999999999'", "too large", NULL}},
    {"write_timeout=0", {"write_timeout '0'", "positive", NULL}},
    {"write_timeout=0.000", {"write_timeout '0.000'", "positive", NULL}},
    {"write_timeout=abc",
     {"write_timeout 'abc'", "positive number of seconds", NULL}},
    {"write_timeout=-5", {"write_timeout '-5'", "not a duration", NULL}},
    {"read_your_writes=2",
     {"read_your_writes '2'", "not a boolean",
      "0, 1, true, false, yes, no, on or off"}},
    {"offline=maybe", {"offline 'maybe'", "not a boolean", NULL}},
    {"offline=", {"offline ''", "not a boolean", NULL}},
    {"offline", {"offline ''", "not a boolean", NULL}},
    {"offline=truex", {"offline 'truex'", "not a boolean", NULL}},
    {"offline=%201", {"offline ' 1'", "not a boolean", NULL}},
    {"sync_url=ftp://h.example",
     {"sync_url 'ftp://h.example'", "http://, https:// or libsql://", NULL}},
    {"sync_url=", {"sync_url ''", "must start with", NULL}},
    {"sync_url=http://", {"sync_url 'http://'", "names no host", NULL}},
    {"sync_url=http:///path", {"sync_url", "names no host", NULL}},
    {"sync_url=http://h/%3Fa=1",
     {"sync_url 'http://h/?a=1'", "query or fragment", NULL}},
    {"auth_token=ab%0Acd",
     {"auth_token", "control character", "byte 0x0a at offset 2"}},
    {"auth_token=ab%0D", {"auth_token", "control character", "0x0d"}},
    {"sync_interval=1&sync_interval=2",
     {"sync_interval", "given 2 times", NULL}},
    {"offline=1&offline=1", {"offline", "given 2 times", NULL}},
    {"auth_token=a&auth_token=a&auth_token=b",
     {"auth_token", "given 3 times", NULL}},
    /* A failure after strings were allocated frees them (ASan checks). */
    {"sync_url=http://h&auth_token=t&encryption_key=k&offline=2",
     {"offline '2'", "not a boolean", NULL}},
};

START_TEST(test_malformed)
{
	const char *const *want = malformed[_i].want;
	int i;

	ck_assert_int_eq(open_uri(malformed[_i].query), SQLITE_CANTOPEN);
	ck_assert_msg(seen.rv == -1, "%s accepted", malformed[_i].query);
	ck_assert_msg(strncmp(seen.err, "replite: ", 9) == 0, "%s", seen.err);
	for (i = 0; i < 3 && want[i] != NULL; i++)
		ck_assert_msg(strstr(seen.err, want[i]) != NULL,
			      "%s: message \"%s\" lacks \"%s\"",
			      malformed[_i].query, seen.err, want[i]);
	/* Nothing is left in *out. */
	ck_assert_ptr_null(seen.params.sync_url);
	ck_assert_ptr_null(seen.params.auth_token);
	ck_assert_ptr_null(seen.params.encryption_key);
	ck_assert_int_eq(seen.params.sync_interval_ms, 0);
}
END_TEST

/* Bad values from the environment say where they came from; a secret is
 * never quoted. */
START_TEST(test_malformed_env)
{
	set_env(0, "REPLITE_SYNC_URL", "example.com");
	ck_assert_int_eq(open_uri(""), SQLITE_CANTOPEN);
	ck_assert_str_eq(seen.err,
			 "replite: sync_url (from REPLITE_SYNC_URL) "
			 "'example.com' is not a primary's URL: it must start "
			 "with http://, https:// or libsql://");

	set_env(0, "REPLITE_AUTH_TOKEN", "secret\r\nX-Evil: 1");
	ck_assert_int_eq(open_uri(""), SQLITE_CANTOPEN);
	ck_assert_msg(strstr(seen.err, "auth_token (from REPLITE_AUTH_TOKEN)"),
		      "%s", seen.err);
	ck_assert_msg(strstr(seen.err, "byte 0x0d at offset 6"), "%s",
		      seen.err);
	ck_assert_msg(strstr(seen.err, "secret") == NULL, "%s", seen.err);

	/* The URI's valid value wins over a bad variable. */
	ck_assert_int_eq(open_uri("auth_token=good"), SQLITE_OK);
	ck_assert_str_eq(seen.params.auth_token, "good");
}
END_TEST

/* tls_ca_file (REPLITE_CA_FILE): a readable file, kept as an absolute
 * path; a missing file or a directory is refused naming the parameter and
 * where the value came from; empty in the URI means the system's CAs. */
START_TEST(test_tls_ca_file)
{
	char *ca = fixture_path(dir, "ca.pem");
	char query[1024], cwd[4096], *want;

	write_file(ca, "x", 1);
	snprintf(query, sizeof query, "tls_ca_file=%s", ca);
	ck_assert_int_eq(open_uri(query), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_str_eq(seen.params.tls_ca_file, ca);

	set_env(0, "REPLITE_CA_FILE", ca);
	ck_assert_int_eq(open_uri(""), SQLITE_OK);
	ck_assert_str_eq(seen.params.tls_ca_file, ca);
	ck_assert_int_eq(open_uri("tls_ca_file="), SQLITE_OK);
	ck_assert_ptr_null(seen.params.tls_ca_file);

	/* Relative: made absolute against the current directory. */
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
	ck_assert_int_eq(chdir(dir), 0);
	ck_assert_int_eq(open_uri("tls_ca_file=ca.pem"), SQLITE_OK);
	ck_assert_int_eq(chdir(cwd), 0);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_int_gt(asprintf(&want, "%s/ca.pem", dir), 0);
	ck_assert_str_eq(seen.params.tls_ca_file, want);
	free(want);

	snprintf(query, sizeof query, "tls_ca_file=%s/missing.pem", dir);
	ck_assert_int_eq(open_uri(query), SQLITE_CANTOPEN);
	ck_assert_msg(strstr(seen.err, "replite: tls_ca_file '") != NULL &&
			  strstr(seen.err, "missing.pem' cannot be read: No "
					   "such file or directory") != NULL,
		      "%s", seen.err);
	snprintf(query, sizeof query, "tls_ca_file=%s", dir);
	ck_assert_int_eq(open_uri(query), SQLITE_CANTOPEN);
	ck_assert_msg(strstr(seen.err, "is a directory") != NULL, "%s",
		      seen.err);
	set_env(0, "REPLITE_CA_FILE", "/nonexistent/ca.pem");
	ck_assert_int_eq(open_uri(""), SQLITE_CANTOPEN);
	ck_assert_str_eq(seen.err,
			 "replite: tls_ca_file (from REPLITE_CA_FILE) "
			 "'/nonexistent/ca.pem' cannot be read: No "
			 "such file or directory");
	free(ca);
}
END_TEST

/* Keys are free-form: encryption_key is not restricted like a token. */
START_TEST(test_encryption_key_any_bytes)
{
	ck_assert_int_eq(open_uri("encryption_key=a%0Ab%01"), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_str_eq(seen.params.encryption_key, "a\nb\x01");
}
END_TEST

/* as_of: an RFC 3339 time (offsets, fractions truncated to the
 * millisecond) or GENERATION:FRAME; absent, a live replica; never from the
 * environment; refused with offline=1 in the URI, while REPLITE_OFFLINE does
 * not apply to it. */
START_TEST(test_as_of)
{
	static const int64_t t = 1796317200000; /* 2026-12-03T17:00:00Z */
	char text[AS_OF_TEXT_SIZE];

	set_env(0, "REPLITE_AS_OF", "1:1");
	ck_assert_int_eq(open_uri(""), SQLITE_OK);
	ck_assert_int_eq(seen.params.as_of.kind, AS_OF_NONE);

	ck_assert_int_eq(open_uri("as_of=2026-12-03T17:00:00Z"), SQLITE_OK);
	ck_assert_msg(seen.rv == 0, "%s", seen.err);
	ck_assert_int_eq(seen.params.as_of.kind, AS_OF_TIME);
	ck_assert_int_eq(seen.params.as_of.unix_ms, t);
	as_of_format(&seen.params.as_of, text);
	ck_assert_str_eq(text, "2026-12-03T17:00:00.000Z");

	/* SQLite decodes %2B; a literal + stays one. */
	ck_assert_int_eq(open_uri("as_of=2026-12-03T18:00:00.2509%2B01:00"),
			 SQLITE_OK);
	ck_assert_int_eq(seen.params.as_of.unix_ms, t + 250);
	ck_assert_int_eq(open_uri("as_of=2026-12-03T16:00:00-01:00"),
			 SQLITE_OK);
	ck_assert_int_eq(seen.params.as_of.unix_ms, t);
	ck_assert_int_eq(open_uri("as_of=2026-12-03T17:00:00"), SQLITE_OK);
	ck_assert_int_eq(seen.params.as_of.unix_ms, t);

	ck_assert_int_eq(open_uri("as_of=3:120"), SQLITE_OK);
	ck_assert_int_eq(seen.params.as_of.kind, AS_OF_FRAME);
	ck_assert_uint_eq(seen.params.as_of.generation, 3);
	ck_assert_uint_eq(seen.params.as_of.frame, 120);
	as_of_format(&seen.params.as_of, text);
	ck_assert_str_eq(text, "3:120");
	ck_assert_int_eq(open_uri("as_of=1:0"), SQLITE_OK);
	ck_assert_uint_eq(seen.params.as_of.frame, 0);

	/* An as-of replica is read-only: offline=1 contradicts it, the
	 * process-wide REPLITE_OFFLINE is not for it. */
	set_env(1, "REPLITE_OFFLINE", "1");
	ck_assert_int_eq(open_uri("as_of=1:0"), SQLITE_OK);
	ck_assert_int_eq(seen.params.offline, 0);
	ck_assert_int_eq(open_uri("as_of=1:0&offline=1"), SQLITE_CANTOPEN);
	ck_assert_str_eq(seen.err,
			 "replite: as_of and offline=1 exclude each other: an "
			 "as-of replica is read-only");
	ck_assert_int_eq(open_uri("as_of=1:0&offline=0"), SQLITE_OK);
}
END_TEST

static const char *const bad_as_of[] = {
    "as_of=",
    "as_of=now",
    "as_of=yesterday",
    "as_of=0:5",
    "as_of=3:",
    "as_of=:3",
    "as_of=-1:2",
    "as_of=%2B3:4",
    "as_of=%203:4",
    "as_of=3:4x",
    "as_of=3:4:5",
    "as_of=4294967296:1",
    "as_of=1:4294967296",
    "as_of=2026-02-30T00:00:00Z",
    "as_of=2026-12-03",
    "as_of=2026-12-03T17:00Z",
    "as_of=2026-12-03T17:00:00+1",
    "as_of=1969-12-31T23:59:59Z",
    "as_of=1%3A2&as_of=1%3A2",
    "asOf=1:2",
};

START_TEST(test_as_of_malformed)
{
	ck_assert_int_eq(open_uri(bad_as_of[_i]), SQLITE_CANTOPEN);
	ck_assert_msg(seen.rv == -1, "%s accepted", bad_as_of[_i]);
	ck_assert_msg(strstr(seen.err, "as_of") != NULL, "%s: %s",
		      bad_as_of[_i], seen.err);
	ck_assert_int_eq(seen.params.as_of.kind, AS_OF_NONE);
	if (strncmp(bad_as_of[_i], "as_of=", 6) == 0 &&
	    strchr(bad_as_of[_i], '&') == NULL)
		ck_assert_msg(strstr(seen.err,
				     "is not a time or a frame: "
				     "expected an RFC 3339 time") != NULL,
			      "%s: %s", bad_as_of[_i], seen.err);
}
END_TEST

/* A small err buffer is truncated, not overrun. */
START_TEST(test_small_err_buffer)
{
	struct replica_options p;
	sqlite3_filename name = sqlite3_create_filename(
	    "/x/a.db", "", "", 1, (const char *[]){"sync_interval", "abc"});
	char err[16];

	ck_assert_ptr_nonnull(name);
	memset(err, 'z', sizeof err);
	ck_assert_int_eq(uri_params_parse(name, test_env, &p, err, 8), -1);
	ck_assert_str_eq(err, "replite");
	ck_assert_int_eq(err[8], 'z');
	sqlite3_free_filename(name);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("uri_params");
	TCase *tc = tcase_create("uri_params");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_every_parameter);
	tcase_add_test(tc, test_other_parameters);
	tcase_add_test(tc, test_sync_url_forms);
	tcase_add_loop_test(tc, test_durations, 0,
			    sizeof durations / sizeof durations[0]);
	tcase_add_loop_test(tc, test_booleans, 0,
			    sizeof booleans / sizeof booleans[0]);
	tcase_add_test(tc, test_env_fallbacks);
	tcase_add_test(tc, test_uri_over_env);
	tcase_add_test(tc, test_offline_and_conflict);
	tcase_add_test(tc, test_empty_values);
	tcase_add_test(tc, test_plain_and_null_names);
	tcase_add_test(tc, test_sync_url_without_scheme_message);
	tcase_add_loop_test(tc, test_malformed, 0,
			    sizeof malformed / sizeof malformed[0]);
	tcase_add_test(tc, test_malformed_env);
	tcase_add_test(tc, test_tls_ca_file);
	tcase_add_test(tc, test_encryption_key_any_bytes);
	tcase_add_test(tc, test_small_err_buffer);
	tcase_add_test(tc, test_as_of);
	tcase_add_loop_test(tc, test_as_of_malformed, 0,
			    sizeof bad_as_of / sizeof bad_as_of[0]);
	suite_add_tcase(s, tc);
	return fixture_run(s);
}
