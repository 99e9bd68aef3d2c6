#include "sync/state_file.h"
#include "replica_fixture.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <jansson.h>

#include "fixture.h"
#include "include/replite.h"
#include "base/base64.h"
#include "base/hex.h"
#include "sync/http_client.h"
#include "wal/cipher.h"
#include "wal/cipher_vfs.h"

void rfx_env_start(struct rfx_env *e, const char *const *server_args)
{
	server_fixture_start(&e->srv, server_args);
	e->dir = fixture_tmpdir();
	e->path = fixture_path(e->dir, "app.db");
}

void rfx_env_stop(struct rfx_env *e)
{
	server_fixture_stop(&e->srv);
	free(e->path);
	fixture_rmdir(e->dir);
	e->path = NULL;
	e->dir = NULL;
}

void rfx_durable_start(struct rfx_durable *d, const char *extra)
{
	const char *args[] = {"--data-dir", NULL, extra, NULL};

	d->dir = fixture_tmpdir();
	d->data = fixture_path(d->dir, "primary");
	d->path = fixture_path(d->dir, "app.db");
	args[1] = d->data;
	server_fixture_start(&d->srv, args);
	snprintf(d->url, sizeof d->url, "%s", d->srv.url);
	snprintf(d->listen, sizeof d->listen, "%s", d->url + strlen("http://"));
}

void rfx_durable_restart(struct rfx_durable *d, int same_address)
{
	const char *args[] = {"--data-dir", d->data, "--listen", d->listen,
			      NULL};

	ck_assert_int_eq(d->srv.pid, 0);
	if (d->srv.dir != NULL) /* killed rather than stopped */
		fixture_rmdir(d->srv.dir);
	if (!same_address)
		args[2] = NULL;
	server_fixture_start(&d->srv, args);
}

void rfx_durable_stop(struct rfx_durable *d)
{
	server_fixture_stop(&d->srv);
	free(d->data);
	free(d->path);
	fixture_rmdir(d->dir);
	d->data = d->path = d->dir = NULL;
}

char *rfx_sync_error(sqlite3 *db)
{
	sqlite3_stmt *st;
	char *msg = NULL;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT replite_sync()", -1, &st, NULL),
	    SQLITE_OK);
	if (sqlite3_step(st) != SQLITE_ROW)
		msg = strdup(sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return msg;
}

static void register_once(void)
{
	static int done;

	if (!done) {
		ck_assert_int_eq(replite_register(), SQLITE_OK);
		done = 1;
	}
}

char *rfx_pipeline_body(const char *sql, int execute)
{
	json_t *req;
	char *body;

	if (execute)
		req =
		    json_pack("{s:[{s:s, s:{s:s}}, {s:s}]}", "requests", "type",
			      "execute", "stmt", "sql", sql, "type", "close");
	else
		req = json_pack("{s:[{s:s, s:s}, {s:s}]}", "requests", "type",
				"sequence", "sql", sql, "type", "close");
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return body;
}

/* POST a Hrana v2 pipeline running sql (with a bearer token when token is
 * not NULL); the result of its execute. */
static json_t *primary_pipeline(const char *url, const char *token,
				const char *sql, int want_rows)
{
	struct http_client_config cfg = {.base_url = url,
					 .auth_token = token,
					 .connect_timeout_ms = 5000,
					 .max_body = 64 << 20};
	struct http_client_response res = {0};
	struct http_client *c = NULL;
	json_t *doc, *first, *out;
	char err[512];
	char *body;
	int rc;

	ck_assert_msg(http_client_new(&cfg, &c, err, sizeof err) == 0, "%s",
		      err);
	body = rfx_pipeline_body(sql, want_rows);
	rc = http_client_request(c, "POST", "/v2/pipeline", body, strlen(body),
				 30000, &res, err, sizeof err);
	free(body);
	ck_assert_msg(rc == 0, "primary_exec(%s): %s", sql, err);
	ck_assert_msg(res.status == 200, "primary_exec(%s): HTTP %ld: %s", sql,
		      res.status, (char *)res.body);
	doc = json_loadb((const char *)res.body, res.len, 0, NULL);
	ck_assert_ptr_nonnull(doc);
	first = json_array_get(json_object_get(doc, "results"), 0);
	ck_assert_msg(strcmp(json_string_value(json_object_get(first, "type")),
			     "ok") == 0,
		      "primary refused %s: %s", sql, (char *)res.body);
	out = json_incref(json_object_get(first, "response"));
	json_decref(doc);
	http_client_response_free(&res);
	http_client_free(c);
	return out;
}

void rfx_primary_exec(const char *url, const char *sql)
{
	json_decref(primary_pipeline(url, NULL, sql, 0));
}

int64_t rfx_primary_query_int(const char *url, const char *sql)
{
	return rfx_primary_query_int_tok(url, NULL, sql);
}

int64_t rfx_primary_query_int_tok(const char *url, const char *token,
				  const char *sql)
{
	json_t *r = primary_pipeline(url, token, sql, 1);
	json_t *cell = json_array_get(
	    json_array_get(
		json_object_get(json_object_get(r, "result"), "rows"), 0),
	    0);
	const char *v = json_string_value(json_object_get(cell, "value"));
	int64_t out;

	ck_assert_msg(v != NULL, "rfx_primary_query_int(%s): no integer", sql);
	out = strtoll(v, NULL, 10);
	json_decref(r);
	return out;
}

char *rfx_uri(const char *db_path, const char *url, const char *extra)
{
	return sqlite3_mprintf(
	    "file:%s?vfs=replite%s%s%s%s", db_path, url ? "&sync_url=" : "",
	    url ? url : "", extra && extra[0] ? "&" : "", extra ? extra : "");
}

int rfx_try_open(const char *db_path, const char *url, const char *extra,
		 sqlite3 **db, char **errmsg)
{
	char *uri;
	int rc;

	register_once();
	uri = rfx_uri(db_path, url, extra);
	*db = NULL;
	*errmsg = NULL;
	rc = sqlite3_open_v2(
	    uri, db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
	sqlite3_free(uri);
	if (rc != SQLITE_OK) {
		*errmsg =
		    strdup(*db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		sqlite3_close(*db);
		*db = NULL;
	}
	return rc;
}

sqlite3 *rfx_open(const char *db_path, const char *url, const char *extra)
{
	sqlite3 *db;
	char *msg;
	int rc = rfx_try_open(db_path, url, extra, &db, &msg);

	ck_assert_msg(rc == SQLITE_OK, "cannot open replica %s: %s", db_path,
		      msg);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

int64_t rfx_sync(sqlite3 *db)
{
	return fixture_query_int(db, "SELECT replite_sync()");
}

int64_t rfx_status_int(sqlite3 *db, const char *field)
{
	char *sql = sqlite3_mprintf(
	    "SELECT json_extract(replite_status(), '$.%s')", field);
	int64_t v = fixture_query_int(db, sql);

	sqlite3_free(sql);
	return v;
}

char *rfx_status_text(sqlite3 *db)
{
	sqlite3_stmt *st;
	char *out;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT replite_status()", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

/* ---------------------------------------------------------------------- */
/* the stock SQLite on a replica's file */

int rfx_encrypted(void)
{
	const char *text = getenv("REPLITE_ENCRYPTION_KEY");

	return text != NULL && *text != '\0';
}

/* The cipher VFS replite registers (NULL when it cannot be). */
static sqlite3_vfs *cipher_vfs(void)
{
	if (replite_register() != SQLITE_OK)
		return NULL;
	return sqlite3_vfs_find("replite-cipher");
}

const char *rfx_plain_vfs(const char *path)
{
	const char *name = NULL;
	struct cipher *c;
	sqlite3_vfs *vfs;
	char err[256] = "";

	if (!rfx_encrypted())
		return NULL;
	vfs = cipher_vfs();
	c = rfx_key_cipher(path);
	if (vfs == NULL || c == NULL) {
		fprintf(stderr, "rfx_plain_vfs: %s: no cipher VFS or key\n",
			path);
		goto out;
	}
	/* A registration left from an earlier replica of the same path (a
	 * new one has a new salt) gives way. */
	while (cipher_vfs_add(vfs, path, c, REPLITE_PAGE_SIZE, err,
			      sizeof err) != 0) {
		if (cipher_vfs_remove(vfs, path) != 0) {
			fprintf(stderr, "rfx_plain_vfs: %s: %s\n", path, err);
			goto out;
		}
	}
	name = "replite-cipher";
out:
	cipher_free(c);
	/* Unknown: the open fails, naming the VFS. */
	return name != NULL ? name : "replite-cipher-unavailable";
}

void rfx_plain_vfs_release(const char *path)
{
	sqlite3_vfs *vfs;

	if (rfx_encrypted() && (vfs = cipher_vfs()) != NULL)
		cipher_vfs_remove(vfs, path);
}

sqlite3 *rfx_plain_open(const char *path, int flags)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags, rfx_plain_vfs(path));

	ck_assert_msg(rc == SQLITE_OK, "cannot open %s with plain SQLite: %s",
		      path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	return db;
}

int rfx_plain_close(sqlite3 *db)
{
	const char *name = db != NULL ? sqlite3_db_filename(db, "main") : NULL;
	char *path = name != NULL ? strdup(name) : NULL;
	int rc = sqlite3_close(db);

	if (path != NULL)
		rfx_plain_vfs_release(path);
	free(path);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* helpers shared by the replica tests */

int64_t rfx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rfx_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

char *rfx_slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	ck_assert_int_eq(fseek(fp, 0, SEEK_END), 0);
	n = ftell(fp);
	ck_assert_int_ge(n, 0);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
	buf[n] = '\0';
	fclose(fp);
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

int rfx_log_count(const struct server_fixture *srv, const char *needle)
{
	char *path = fixture_path(srv->dir, "server.log");
	char *text = rfx_slurp(path, NULL), *p;
	int n = 0;

	ck_assert_ptr_nonnull(text);
	for (p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	free(text);
	free(path);
	return n;
}

void rfx_primary_info(const char *url, const char *token, struct rfx_info *out)
{
	struct http_client_config cfg = {url, token, 5000, 1 << 20,
					 0,   NULL,  NULL};
	struct http_client_response res = {0};
	struct http_client *c = NULL;
	const char *id;
	json_t *doc;
	char err[512];

	ck_assert_msg(http_client_new(&cfg, &c, err, sizeof err) == 0, "%s",
		      err);
	ck_assert_msg(http_client_request(c, "GET", "/info", NULL, 0, 10000,
					  &res, err, sizeof err) == 0,
		      "GET /info: %s", err);
	ck_assert_int_eq(res.status, 200);
	doc = json_loadb((const char *)res.body, res.len, 0, NULL);
	ck_assert_ptr_nonnull(doc);
	out->generation = (uint32_t)json_integer_value(
	    json_object_get(doc, "current_generation"));
	out->max_frame_no =
	    (uint32_t)json_integer_value(json_object_get(doc, "max_frame_no"));
	out->oldest_generation = (uint32_t)json_integer_value(
	    json_object_get(doc, "oldest_generation"));
	id = json_string_value(json_object_get(doc, "database_id"));
	ck_assert_ptr_nonnull(id);
	snprintf(out->database_id, sizeof out->database_id, "%s", id);
	id = json_string_value(json_object_get(doc, "checksum"));
	snprintf(out->checksum, sizeof out->checksum, "%s", id ? id : "");
	json_decref(doc);
	http_client_response_free(&res);
	http_client_free(c);
}

char *rfx_digest_sql(const char *table, const char *row)
{
	char *sql = sqlite3_mprintf(
	    "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < 63), rows(r) AS MATERIALIZED (SELECT CAST(%s AS BLOB) "
	    "FROM %s) SELECT count(*) * 1000003 + coalesce(sum(h), 0) FROM "
	    "(SELECT length(r) * 7 + (SELECT coalesce(sum((i + 1) * "
	    "unicode(CAST(substr(r, 1 + i * (length(r) / 64 + 1), 1) AS "
	    "TEXT))), 0) FROM n WHERE i * (length(r) / 64 + 1) < length(r)) "
	    "AS h FROM rows)",
	    row, table);

	ck_assert_ptr_nonnull(sql);
	return sql;
}

void rfx_assert_same_table(sqlite3 *db, const char *url, const char *table,
			   const char *row)
{
	char *sql = rfx_digest_sql(table, row);
	int64_t local = fixture_query_int(db, sql);
	int64_t primary = rfx_primary_query_int(url, sql);

	ck_assert_msg(local == primary,
		      "table %s differs: replica digest %lld, primary %lld",
		      table, (long long)local, (long long)primary);
	sqlite3_free(sql);
}

json_t *rfx_status_json(sqlite3 *db)
{
	char *text = rfx_status_text(db);
	json_t *o = json_loads(text, 0, NULL);

	ck_assert_msg(json_is_object(o),
		      "replite_status() is not an object: %s", text);
	free(text);
	return o;
}

json_t *rfx_conflicts(sqlite3 *db)
{
	sqlite3_stmt *st;
	json_t *j;

	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT replite_conflicts()", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	j = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	ck_assert_msg(json_is_array(j), "replite_conflicts(): %s",
		      sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return j;
}

void rfx_assert_verified(sqlite3 *db)
{
	sqlite3_stmt *st;
	json_t *v;

	fixture_assert_integrity(db);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(db, "SELECT replite_verify()", -1, &st, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	ck_assert_msg(json_is_true(json_object_get(v, "match")), "verify: %s",
		      sqlite3_column_text(st, 0));
	json_decref(v);
	sqlite3_finalize(st);
}

json_t *rfx_state_json(const char *db_path)
{
	char *path = sqlite3_mprintf("%s-replite", db_path);
	char *text;
	size_t len;
	json_t *o;

	ck_assert_ptr_nonnull(path);
	o = NULL;
	if (state_file_read(path, &text, &len) == 0) {
		o = json_loadb(text, len, 0, NULL);
		free(text);
	}
	ck_assert_msg(json_is_object(o), "no valid state file %s", path);
	sqlite3_free(path);
	return o;
}

int64_t rfx_state_int(const char *db_path, const char *key)
{
	json_t *o = rfx_state_json(db_path);
	int64_t v;

	ck_assert_msg(json_is_integer(json_object_get(o, key)),
		      "state file: %s is not an integer", key);
	v = json_integer_value(json_object_get(o, key));
	json_decref(o);
	return v;
}

/* Run a shell command made of fmt and three strings; its exit status. */
static int run(const char *fmt, const char *a1, const char *a2, const char *a3)
{
	char *cmd;
	int rc;

	ck_assert_int_ge(asprintf(&cmd, fmt, a1, a2, a3), 0);
	rc = system(cmd);
	free(cmd);
	return rc;
}

char *rfx_make_ed25519_key(const char *dir, char **pub_path)
{
	char *key = fixture_path(dir, "key.pem");

	*pub_path = fixture_path(dir, "pub.pem");
	if (run("openssl genpkey -algorithm ed25519 -out '%s' 2>/dev/null && "
		"openssl pkey -in '%s' -pubout -out '%s'",
		key, key, *pub_path) != 0) {
		free(key);
		free(*pub_path);
		*pub_path = NULL;
		return NULL;
	}
	return key;
}

/* base64url without padding (malloc'd). */
static char *b64url(const void *p, size_t n)
{
	char *out = base64_encode(p, n, 1, 0);

	ck_assert_ptr_nonnull(out);
	return out;
}

char *rfx_sign_token(const char *dir, const char *key_pem, const char *claims)
{
	static const char header[] = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";
	char *h = b64url(header, strlen(header));
	char *c = b64url(claims, strlen(claims));
	char *msg_path = fixture_path(dir, "signing-input");
	char *sig_path = fixture_path(dir, "signature");
	char *signing, *sig, *s, *token;
	size_t sig_len;
	FILE *fp;

	ck_assert_int_ge(asprintf(&signing, "%s.%s", h, c), 0);
	fp = fopen(msg_path, "wb");
	ck_assert_ptr_nonnull(fp);
	fputs(signing, fp);
	fclose(fp);
	ck_assert_int_eq(run("openssl pkeyutl -sign -inkey '%s' -rawin -in "
			     "'%s' -out '%s'",
			     key_pem, msg_path, sig_path),
			 0);
	sig = rfx_slurp(sig_path, &sig_len);
	ck_assert_ptr_nonnull(sig);
	ck_assert_uint_eq(sig_len, 64);
	s = b64url(sig, sig_len);
	ck_assert_int_ge(asprintf(&token, "%s.%s", signing, s), 0);
	free(h);
	free(c);
	free(s);
	free(sig);
	free(signing);
	free(msg_path);
	free(sig_path);
	return token;
}

int rfx_env_start_auth(struct rfx_env *e, const char *test, char **key)
{
	const char *args[] = {"--auth-jwt-key-file", NULL, NULL};
	char *pub;

	unsetenv("REPLITE_AUTH_TOKEN");
	e->dir = fixture_tmpdir();
	*key = rfx_make_ed25519_key(e->dir, &pub);
	if (*key == NULL) {
		printf("%s: skipped (no openssl command)\n", test);
		fixture_rmdir(e->dir);
		e->dir = NULL;
		return 0;
	}
	args[1] = pub;
	server_fixture_start(&e->srv, args);
	free(pub);
	e->path = fixture_path(e->dir, "app.db");
	return 1;
}

/* SQLite's log (sqlite3_log, SQLITE_CONFIG_LOG), as applications that set
 * a log callback see it: the replica's messages are formatted, so a format
 * SQLite's printf reads otherwise than C's (its %z frees a string) fails
 * the suite, and tests can look for a message. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 16];
static size_t log_len;

static void log_callback(void *arg, int code, const char *msg)
{
	size_t n = strlen(msg) + 1;

	(void)arg;
	(void)code;
	pthread_mutex_lock(&log_mu);
	if (n < sizeof log_text) {
		if (log_len + n >= sizeof log_text)
			log_len = 0; /* the newest messages are kept */
		memcpy(log_text + log_len, msg, n);
		log_text[log_len + n - 1] = '\n';
		log_len += n;
		log_text[log_len] = '\0';
	}
	pthread_mutex_unlock(&log_mu);
}

int rfx_log_seen(const char *needle)
{
	int seen;

	pthread_mutex_lock(&log_mu);
	seen = strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_mu);
	return seen;
}

void rfx_log_capture(void)
{
	if (sqlite3_config(SQLITE_CONFIG_LOG, log_callback, NULL) != SQLITE_OK)
		fprintf(stderr, "rfx_log_capture: SQLite's log not set\n");
}

int rfx_run_tests(const char *name, const TTest *const *tests, size_t n)
{
	Suite *s = suite_create(name);
	size_t i;

	/* Before SQLite initialises: the log is configured once. */
	rfx_log_capture();

	for (i = 0; i < n; i++) {
		TCase *tc = tcase_create(tests[i]->name);

		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, tests[i]);
		suite_add_tcase(s, tc);
	}
	return fixture_run(s);
}

static void *reader_main(void *arg)
{
	struct rfx_reader *r = arg;
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(r->db, r->sql, -1, &st, NULL) != SQLITE_OK) {
		snprintf(r->first_bad, sizeof r->first_bad, "prepare: %s",
			 sqlite3_errmsg(r->db));
		r->bad++;
		return NULL;
	}
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		int rc = sqlite3_step(st);

		if ((rc != SQLITE_ROW ||
		     sqlite3_column_int64(st, 0) != r->want[0] ||
		     sqlite3_column_int64(st, 1) != r->want[1]) &&
		    r->bad++ == 0)
			snprintf(r->first_bad, sizeof r->first_bad,
				 "rc %d (%s), %lld and %lld", rc,
				 sqlite3_errmsg(r->db),
				 (long long)sqlite3_column_int64(st, 0),
				 (long long)sqlite3_column_int64(st, 1));
		sqlite3_reset(st);
		r->reads++;
	}
	sqlite3_finalize(st);
	return NULL;
}

void rfx_reader_start(struct rfx_reader *r, sqlite3 *db, const char *sql,
		      int64_t want0, int64_t want1)
{
	memset(r, 0, sizeof *r);
	r->db = db;
	r->sql = sql;
	r->want[0] = want0;
	r->want[1] = want1;
	ck_assert_int_eq(pthread_create(&r->thread, NULL, reader_main, r), 0);
}

void rfx_reader_stop(struct rfx_reader *r)
{
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	pthread_join(r->thread, NULL);
}

/* The ciphers rfx_key_cipher made, by salt: the passphrase's scrypt
 * (~90 ms, several times that under ASan) runs once per replica file and
 * process, not once per stock-SQLite reader the suites open.  The key text
 * is the environment's, the same for the whole process. */
#define KEY_CACHE_SIZE 16
static pthread_mutex_t key_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct key_cache_entry {
	uint8_t salt[CIPHER_SALT_SIZE];
	struct cipher *c;
} key_cache[KEY_CACHE_SIZE];
static unsigned key_cache_next;

/* A cipher of its own for salt under text: from the cache or made. */
static struct cipher *cached_cipher(const char *text,
				    const uint8_t salt[CIPHER_SALT_SIZE],
				    char *err, size_t err_len)
{
	struct key_cache_entry *slot;
	struct cipher_key key = {0};
	struct cipher *c = NULL;
	unsigned i;

	pthread_mutex_lock(&key_cache_mu);
	for (i = 0; i < KEY_CACHE_SIZE; i++) {
		if (key_cache[i].c != NULL &&
		    memcmp(key_cache[i].salt, salt, CIPHER_SALT_SIZE) == 0)
			break;
	}
	if (i < KEY_CACHE_SIZE) {
		cipher_dup(key_cache[i].c, &c, err, err_len);
		goto out;
	}
	if (cipher_key_parse(text, &key, err, err_len) != 0 ||
	    cipher_new(&key, salt, &c, err, err_len) != 0)
		goto out;
	slot = &key_cache[key_cache_next++ % KEY_CACHE_SIZE];
	cipher_free(slot->c);
	slot->c = NULL;
	if (cipher_dup(c, &slot->c, NULL, 0) == 0)
		memcpy(slot->salt, salt, CIPHER_SALT_SIZE);
out:
	pthread_mutex_unlock(&key_cache_mu);
	cipher_key_wipe(&key);
	return c;
}

struct cipher *rfx_key_cipher(const char *db_path)
{
	const char *text = getenv("REPLITE_ENCRYPTION_KEY");
	uint8_t salt[CIPHER_SALT_SIZE];
	struct cipher *c = NULL;
	char key_file[4096], err[256] = "";
	const char *salt_hex;
	json_t *j;

	if (text == NULL || *text == '\0')
		return NULL;
	/* No Check assertions: process suites call it in children. */
	snprintf(key_file, sizeof key_file, "%s-replite-key", db_path);
	j = json_load_file(key_file, 0, NULL);
	salt_hex = json_string_value(json_object_get(j, "salt"));
	if (salt_hex == NULL || hex_decode(salt_hex, salt, sizeof salt) != 0 ||
	    (c = cached_cipher(text, salt, err, sizeof err)) == NULL)
		fprintf(stderr, "rfx_key_cipher: %s: no key file or key (%s)\n",
			db_path, err);
	json_decref(j);
	return c;
}
