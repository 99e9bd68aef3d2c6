/* A replica when its primary fails, against real primaries on loopback:
 * a primary down (reads go on, a new replica cannot open), restarted at the
 * same address or another, swapped for another database at the same
 * address, refusing tokens (none, malformed, expired; a valid one in the URI
 * or REPLITE_AUTH_TOKEN), and a misbehaving primary (a fake HTTP server in a
 * thread) sending bad frames: nothing applied, the error reported.
 *
 * Each test is its own test case: CK_RUN_CASE=test_primary_down runs one.
 * No assertion depends on timing: waits poll with deadlines of several
 * seconds. */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "base/dbsum.h"
#include "fixture.h"
#include "wal/walfmt.h"
#include "replica_fixture.h"
#include "replica_test_helpers.h"
#include "server_fixture.h"

/* ---------------------------------------------------------------------- */
/* 1. failures */

START_TEST(test_primary_down)
{
	struct server_fixture srv;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char *path2 = fixture_path(dir, "never.db");
	char url[64], hostport[64], msg[1024];
	json_t *status;
	const char *last;
	sqlite3 *db, *db2;
	char *err = NULL;

	server_fixture_start(&srv, NULL);
	snprintf(url, sizeof url, "%s", srv.url);
	snprintf(hostport, sizeof hostport, "%s", url + strlen("http://"));
	rfx_primary_exec(url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
			      "INSERT INTO t(b) VALUES (1), (2)");
	db = rfx_open(path, url, "sync_interval=0");
	db2 = rfx_open(path, url, "sync_interval=0");
	server_fixture_stop(&srv);

	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	rth_exec_fails(db, "SELECT replite_sync()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, hostport);
	RFX_ASSERT_HAS(msg, "cannot reach the primary");
	status = rfx_status_json(db2);
	last = json_string_value(json_object_get(status, "last_error"));
	ck_assert_ptr_nonnull(last);
	RFX_ASSERT_HAS(last, hostport);
	json_decref(status);
	rth_exec_fails(db2, "PRAGMA replite_sync", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, hostport);
	/* Reads keep working on the last state. */
	ck_assert_int_eq(fixture_query_int(db2, "SELECT sum(b) FROM t"), 3);
	fixture_assert_integrity(db);
	sqlite3_close(db2);
	sqlite3_close(db);

	/* A closed replica reopens (and reads) with the primary down. */
	db = rfx_open(path, NULL, NULL);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 2);
	sqlite3_close(db);

	/* A new replica cannot open: it has nothing to read. */
	ck_assert_int_ne(rfx_try_open(path2, url, NULL, &db, &err), SQLITE_OK);
	RFX_ASSERT_HAS(err, hostport);
	RFX_ASSERT_HAS(err, "never synced");
	free(err);

	free(path);
	free(path2);
	fixture_rmdir(dir);
}
END_TEST

/* The primary restarts: at the same address the background sync recovers by
 * itself; at another address, opening with the new URL records it. */
START_TEST(test_primary_restart)
{
	struct rfx_durable d;
	int64_t start;
	json_t *status, *state;
	sqlite3 *db;

	rfx_durable_start(&d, NULL);
	rfx_primary_exec(d.srv.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
				    "INSERT INTO t(b) VALUES (1)");
	db = rfx_open(d.path, d.srv.url, "sync_interval=0.2");
	server_fixture_stop(&d.srv);

	/* Down: the background sync reports it, reads go on. */
	start = rfx_now_ms();
	for (;;) {
		const char *last;

		status = rfx_status_json(db);
		last = json_string_value(json_object_get(status, "last_error"));
		/* (The first error may be the primary's 503 as it stops.) */
		if (last != NULL && strstr(last, d.listen) != NULL)
			break;
		json_decref(status);
		ck_assert_msg(rfx_now_ms() - start < RTH_DEADLINE_MS,
			      "no last_error while the primary is down");
		rfx_sleep_ms(20);
	}
	RFX_ASSERT_HAS(json_string_value(json_object_get(status, "last_error")),
		       d.listen);
	json_decref(status);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);

	/* Back at the same address. */
	rfx_durable_restart(&d, 1);
	ck_assert_str_eq(d.srv.url, d.url);
	rfx_primary_exec(d.srv.url, "INSERT INTO t(b) VALUES (2)");
	rth_poll_until(db, "SELECT count(*) FROM t", 2, 20);
	rfx_sync(db);
	status = rfx_status_json(db);
	ck_assert(json_is_null(json_object_get(status, "last_error")));
	json_decref(status);
	sqlite3_close(db);
	server_fixture_stop(&d.srv);

	/* At another address (port 0 again). */
	rfx_durable_restart(&d, 0);
	rfx_primary_exec(d.srv.url, "INSERT INTO t(b) VALUES (3)");
	db = rfx_open(d.path, d.srv.url, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 3);
	sqlite3_close(db);
	state = rfx_state_json(d.path);
	ck_assert_str_eq(json_string_value(json_object_get(state, "sync_url")),
			 d.srv.url);
	json_decref(state);
	rfx_primary_exec(d.srv.url, "INSERT INTO t(b) VALUES (4)");
	db = rfx_open(d.path, NULL, "sync_interval=0");
	rfx_sync(db);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 4);
	fixture_assert_integrity(db);
	sqlite3_close(db);
	rfx_durable_stop(&d);
}
END_TEST

/* Another database answers at the primary's address while a replica is
 * open (a different primary started on the same port): the replica must
 * notice the database id, not apply its frames. */
START_TEST(test_primary_swapped)
{
	struct server_fixture a, b;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	char listen[64], msg[1024];
	const char *args[] = {"--listen", listen, NULL};
	struct rfx_info ia, ib;
	sqlite3 *db;
	int i;

	server_fixture_start(&a, NULL);
	snprintf(listen, sizeof listen, "%s", a.url + strlen("http://"));
	rfx_primary_exec(a.url, "CREATE TABLE t(a INTEGER PRIMARY KEY, b); "
				"INSERT INTO t(b) VALUES ('a')");
	rfx_primary_info(a.url, NULL, &ia);
	db = rfx_open(path, a.url, "sync_interval=0");
	ck_assert_int_eq(rfx_sync(db), ia.max_frame_no);
	server_fixture_stop(&a);

	server_fixture_start(&b, args);
	ck_assert_str_eq(b.url + strlen("http://"), listen);
	rfx_primary_exec(b.url, "CREATE TABLE other(x, y)");
	for (i = 0; i < 5; i++)
		rfx_primary_exec(b.url, "INSERT INTO other VALUES "
					"(randomblob(5000), 'b')");
	rfx_primary_info(b.url, NULL, &ib);
	ck_assert_str_ne(ia.database_id, ib.database_id);
	ck_assert_int_gt(ib.max_frame_no, ia.max_frame_no);

	if (sqlite3_exec(db, "SELECT replite_sync()", NULL, NULL, NULL) ==
	    SQLITE_OK) {
		/* Describe the damage for the report. */
		char integrity[256] = "?", names[256] = "";
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
				       NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			snprintf(integrity, sizeof integrity, "%s",
				 sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		if (sqlite3_prepare_v2(db,
				       "SELECT group_concat(name) FROM "
				       "sqlite_schema",
				       -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			snprintf(names, sizeof names, "%s",
				 sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		ck_abort_msg("the replica of %s synced from %s (another "
			     "database at the same address): frame_no now "
			     "%lld, tables now [%s], integrity_check: %s",
			     ia.database_id, ib.database_id,
			     (long long)rfx_state_int(path, "frame_no"), names,
			     integrity);
	}
	ck_assert_int_ne(sqlite3_errcode(db), SQLITE_OK);
	snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(db));
	RFX_ASSERT_HAS(msg, ia.database_id);
	RFX_ASSERT_HAS(msg, ib.database_id);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM t"), 1);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM sqlite_schema"), 1);
	fixture_assert_integrity(db);
	ck_assert_int_eq(rfx_state_int(path, "frame_no"), ia.max_frame_no);
	sqlite3_close(db);
	server_fixture_stop(&b);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

START_TEST(test_auth)
{
	struct rfx_env e;
	char *key, *path2, *err = NULL, *token, *extra;
	sqlite3 *db;

	if (!rfx_env_start_auth(&e, "test_auth", &key))
		return;
	path2 = fixture_path(e.dir, "env.db");

	/* No token. */
	ck_assert_int_ne(
	    rfx_try_open(e.path, e.srv.url, "sync_interval=0", &db, &err),
	    SQLITE_OK);
	RFX_ASSERT_HAS(err, "401");
	RFX_ASSERT_HAS(err, "token");
	free(err);
	/* A token that is not one. */
	ck_assert_int_ne(rfx_try_open(e.path, e.srv.url,
				      "sync_interval=0&auth_token=abc.def.ghi",
				      &db, &err),
			 SQLITE_OK);
	RFX_ASSERT_HAS(err, "401");
	RFX_ASSERT_HAS(err, "token");
	free(err);
	/* An expired one. */
	token = rfx_sign_token(e.dir, key, "{\"a\":\"ro\",\"exp\":1000}");
	ck_assert_int_ge(
	    asprintf(&extra, "sync_interval=0&auth_token=%s", token), 0);
	ck_assert_int_ne(rfx_try_open(e.path, e.srv.url, extra, &db, &err),
			 SQLITE_OK);
	RFX_ASSERT_HAS(err, "401");
	ck_assert_ptr_null(strstr(err, token)); /* secrets are not quoted */
	free(err);
	free(extra);
	free(token);

	/* A valid read-only token, in the URI. */
	token = rfx_sign_token(e.dir, key, "{\"a\":\"ro\"}");
	ck_assert_int_ge(
	    asprintf(&extra, "sync_interval=0&auth_token=%s", token), 0);
	db = rfx_open(e.path, e.srv.url, extra);
	ck_assert_int_ge(rfx_sync(db), 0);
	ck_assert_int_eq(
	    fixture_query_int(db, "SELECT count(*) FROM sqlite_schema"), 0);
	sqlite3_close(db);
	free(extra);
	/* And from REPLITE_AUTH_TOKEN. */
	ck_assert_int_eq(setenv("REPLITE_AUTH_TOKEN", token, 1), 0);
	db = rfx_open(path2, e.srv.url, "sync_interval=0");
	ck_assert_int_ge(rfx_sync(db), 0);
	sqlite3_close(db);
	unsetenv("REPLITE_AUTH_TOKEN");
	free(token);

	free(key);
	free(path2);
	rfx_env_stop(&e);
}
END_TEST

/* ---------------------------------------------------------------------- */
/* 2. a primary that sends bad frames */

enum fake_mode {
	FAKE_CAUGHT_UP, /* /sync: 400 {"generation": 1} */
	FAKE_TRUNCATED, /* /sync: a body that is not whole frames */
	FAKE_PAGE_ZERO, /* /sync: a frame for page 0 */
	FAKE_NO_COMMIT, /* /sync: a frame with no commit frame, then none */
};

struct fake_primary {
	int fd;
	char url[64];
	pthread_t thread;
	pthread_mutex_t mu;
	int stop;
	enum fake_mode mode;
	int syncs; /* /sync requests answered */
	char *image;
	size_t image_len;
};

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* extra: "" or one more header line ending in \r\n. */
static void reply_with(int fd, int status, const char *type, const char *extra,
		       const void *body, size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof head,
			 "HTTP/1.1 %d X\r\nContent-Type: %s\r\n%s"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
			 status, type, extra, len);

	send_all(fd, head, (size_t)n);
	send_all(fd, body, len);
}

static void reply(int fd, int status, const char *type, const void *body,
		  size_t len)
{
	reply_with(fd, status, type, "", body, len);
}

/* The fake's frames carry a checksum chain as a replite primary's do
 * (X-Replite-Chain), so that they fail only for what each mode breaks. */
static const uint32_t fake_salt[2] = {0x5a17, 0x5a18};
static const uint32_t fake_chain_in[2] = {0xc0ffee, 0xbeef};
#define FAKE_CHAIN_HEADER                                                      \
	"X-Replite-Chain: 1-00005a17-00005a18-00c0ffee-0000beef\r\n"

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void fake_serve(struct fake_primary *f, int fd)
{
	static const char info[] =
	    "{\"current_generation\":1,\"database_id\":\"fake-primary\","
	    "\"max_frame_no\":0,\"oldest_generation\":1}";
	static const char caught_up[] =
	    "{\"generation\":1,\"message\":\"no more frames\"}";
	char req[4096], path[1024];
	unsigned int gen, start, end;
	size_t got = 0;
	enum fake_mode mode;
	unsigned char *frames;

	while (got < sizeof req - 1) {
		ssize_t n = recv(fd, req + got, sizeof req - 1 - got, 0);
		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n") != NULL)
			break;
	}
	if (sscanf(req, "GET %1023s", path) != 1) {
		reply(fd, 405, "text/plain", "", 0);
		return;
	}
	path[strcspn(path, "?")] = '\0';
	if (strcmp(path, "/info") == 0) {
		reply(fd, 200, "application/json", info, strlen(info));
		return;
	}
	if (strcmp(path, "/export/1") == 0) {
		char sum[DBSUM_TEXT_SIZE], extra[64];
		dbsum_format(
		    dbsum_image((const uint8_t *)f->image, f->image_len, 4096),
		    sum);
		snprintf(extra, sizeof extra, "X-Replite-Checksum: %s\r\n",
			 sum);
		reply_with(fd, 200, "application/octet-stream", extra, f->image,
			   f->image_len);
		return;
	}
	if (sscanf(path, "/sync/%u/%u/%u", &gen, &start, &end) != 3) {
		reply(fd, 404, "application/json", "{}", 2);
		return;
	}
	pthread_mutex_lock(&f->mu);
	mode = f->mode;
	f->syncs++;
	pthread_mutex_unlock(&f->mu);
	/* Two frames' room: a valid page 2 image (page 2 of the export). */
	frames = calloc(2, 4120);
	if (frames == NULL)
		return;
	put32(frames, 2);
	memcpy(frames + 24, f->image + 4096, 4096);
	switch (mode) {
	case FAKE_CAUGHT_UP:
		reply(fd, 400, "application/json", caught_up,
		      strlen(caught_up));
		break;
	case FAKE_TRUNCATED:
		put32(frames + 4, 2); /* a commit frame, cut short */
		reply(fd, 200, "application/octet-stream", frames, 4120 + 100);
		break;
	case FAKE_PAGE_ZERO:
		put32(frames, 0);
		put32(frames + 4, 2);
		reply(fd, 200, "application/octet-stream", frames, 4120);
		break;
	case FAKE_NO_COMMIT:
		if (start == 1) {
			uint32_t chain[2] = {fake_chain_in[0],
					     fake_chain_in[1]};
			walfmt_frame_encode(1, fake_salt, chain, 2, 0,
					    frames + 24, 4096, frames);
			reply_with(fd, 200, "application/octet-stream",
				   FAKE_CHAIN_HEADER, frames, 4120);
		} else {
			reply(fd, 400, "application/json", caught_up,
			      strlen(caught_up));
		}
		break;
	}
	free(frames);
}

static void *fake_main(void *arg)
{
	struct fake_primary *f = arg;

	for (;;) {
		struct pollfd pfd = {f->fd, POLLIN, 0};
		int stop, c;

		pthread_mutex_lock(&f->mu);
		stop = f->stop;
		pthread_mutex_unlock(&f->mu);
		if (stop)
			break;
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		c = accept(f->fd, NULL, NULL);
		if (c < 0)
			continue;
		fake_serve(f, c);
		close(c);
	}
	return NULL;
}

static void fake_set_mode(struct fake_primary *f, enum fake_mode mode)
{
	pthread_mutex_lock(&f->mu);
	f->mode = mode;
	pthread_mutex_unlock(&f->mu);
}

/* A 4096-byte-page database with 3 rows in t, as the fake's image. */
static void fake_start(struct fake_primary *f, const char *dir)
{
	char *img_path = fixture_path(dir, "image.db");
	struct sockaddr_in addr = {0};
	socklen_t alen = sizeof addr;
	sqlite3 *db;

	memset(f, 0, sizeof *f);
	ck_assert_int_eq(sqlite3_open(img_path, &db), SQLITE_OK);
	fixture_exec(db, "PRAGMA page_size=4096; CREATE TABLE t(x); INSERT "
			 "INTO t VALUES (10), (20), (30)");
	sqlite3_close(db);
	f->image = rfx_slurp(img_path, &f->image_len);
	ck_assert_ptr_nonnull(f->image);
	ck_assert_uint_eq(f->image_len, 2 * 4096);
	free(img_path);

	f->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(f->fd, 0);
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&addr, sizeof addr), 0);
	ck_assert_int_eq(listen(f->fd, 16), 0);
	ck_assert_int_eq(getsockname(f->fd, (struct sockaddr *)&addr, &alen),
			 0);
	snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d",
		 ntohs(addr.sin_port));
	pthread_mutex_init(&f->mu, NULL);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake_primary *f)
{
	pthread_mutex_lock(&f->mu);
	f->stop = 1;
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	close(f->fd);
	pthread_mutex_destroy(&f->mu);
	free(f->image);
}

/* A failed sync from the fake: the error names needle, nothing is applied,
 * reads still work. */
static void assert_bad_sync(sqlite3 *db, const char *path, const char *needle)
{
	json_t *status;
	const char *last;
	char msg[1024];

	rth_exec_fails(db, "SELECT replite_sync()", NULL, msg, sizeof msg);
	RFX_ASSERT_HAS(msg, needle);
	status = rfx_status_json(db);
	last = json_string_value(json_object_get(status, "last_error"));
	ck_assert_ptr_nonnull(last);
	RFX_ASSERT_HAS(last, needle);
	ck_assert_int_eq(rth_jint(status, "frame_no"), 0);
	json_decref(status);
	ck_assert_int_eq(rfx_state_int(path, "frame_no"), 0);
	ck_assert_int_eq(rfx_state_int(path, "frame_hwm"), 0);
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(x) FROM t"), 60);
	ck_assert_int_eq(fixture_query_int(db, "SELECT count(*) FROM "
					       "sqlite_schema"),
			 1);
	fixture_assert_integrity(db);
}

START_TEST(test_bad_frames)
{
	struct fake_primary f;
	char *dir = fixture_tmpdir();
	char *path = fixture_path(dir, "app.db");
	json_t *status, *state;
	sqlite3 *db;

	fake_start(&f, dir);
	db = rfx_open(path, f.url, "sync_interval=0");
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(x) FROM t"), 60);
	state = rfx_state_json(path);
	ck_assert_str_eq(
	    json_string_value(json_object_get(state, "database_id")),
	    "fake-primary");
	json_decref(state);

	fake_set_mode(&f, FAKE_TRUNCATED);
	assert_bad_sync(db, path, "not a multiple of the frame size");
	fake_set_mode(&f, FAKE_PAGE_ZERO);
	assert_bad_sync(db, path, "has page number 0");
	fake_set_mode(&f, FAKE_NO_COMMIT);
	assert_bad_sync(db, path, "no commit frame");

	/* A sane answer again: healthy. */
	fake_set_mode(&f, FAKE_CAUGHT_UP);
	ck_assert_int_eq(rfx_sync(db), 0);
	status = rfx_status_json(db);
	ck_assert(json_is_null(json_object_get(status, "last_error")));
	json_decref(status);
	ck_assert_int_eq(fixture_query_int(db, "SELECT sum(x) FROM t"), 60);
	sqlite3_close(db);
	fake_stop(&f);
	free(path);
	fixture_rmdir(dir);
}
END_TEST

/* Each test is a test case of its own, named after it. */
int main(void)
{
	const TTest *const tests[] = {test_primary_down, test_primary_restart,
				      test_primary_swapped, test_auth,
				      test_bad_frames};

	return rfx_run_tests("replica_failures", tests,
			     sizeof tests / sizeof tests[0]);
}
